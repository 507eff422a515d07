# Helpers for e2e.bats. They only use kwctl's own flags, so the suite runs unchanged with
# the bundled kwrun (default) and with the real kwctl (`make e2e-tests KWCTL=kwctl`).
#
# After `evaluate`/`scenario`:
#   $status, $output   exit code and stdout (ONE line of AdmissionResponse JSON)
#   $RESPONSE          file holding that line
#   $REQUEST           the request file that was evaluated
#   $BATS_TEST_TMPDIR/stderr   the runner's logs
# `mutated` then writes the patched pod to $POD (the request object with the patch applied).

REPO_ROOT="$(cd "$BATS_TEST_DIRNAME" && pwd)"
DATA="$REPO_ROOT/test_data"
KWCTL="${KWCTL:-$REPO_ROOT/target/tool/kwrun}"
POLICY="$REPO_ROOT/annotated-policy.wasm"

# kw ARGS...: `$KWCTL run ARGS annotated-policy.wasm`, stdout only (logs go to a file).
kw() {
  "$KWCTL" run "$@" "$POLICY" 2>"$BATS_TEST_TMPDIR/stderr"
}

# kw_all ARGS...: the same with stderr merged (for runs that must fail with a message).
kw_all() {
  "$KWCTL" run "$@" "$POLICY" 2>&1
}

# evaluate REQUEST [SESSION|-] [kwctl args...]: runs the policy on a request file.
evaluate() {
  REQUEST=$1
  local session=${2:--}
  shift 2 || shift $#
  local args=(--request-path "$REQUEST" --allow-context-aware)
  [ "$session" = - ] || args+=(--replay-host-capabilities-interactions "$session")
  run kw "${args[@]}" "$@"
  RESPONSE="$BATS_TEST_TMPDIR/response.json"
  POD="$BATS_TEST_TMPDIR/pod.json"
  printf '%s\n' "$output" >"$RESPONSE"
  if [ "$status" -ne 0 ]; then
    echo "runner exited with $status; stderr:" >&2
    tail -n 20 "$BATS_TEST_TMPDIR/stderr" >&2
  fi
}

# scenario NAME [kwctl args...]: runs the policy on test_data/NAME like `make run` does
# (request.json, session.yml, settings.json when present).
scenario() {
  local dir="$DATA/$1"
  shift
  local extra=()
  [ -f "$dir/settings.json" ] && extra+=(--settings-path "$dir/settings.json")
  local session=-
  [ -f "$dir/session.yml" ] && session="$dir/session.yml"
  evaluate "$dir/request.json" "$session" "${extra[@]}" "$@"
}

# The run exited 0 and printed exactly one line of JSON with the request's uid.
response_ok() {
  [ "$status" -eq 0 ] || { echo "exit status $status: $output" >&2; return 1; }
  [ "$(printf '%s\n' "$output" | wc -l)" -eq 1 ] || { echo "stdout is not one line: $output" >&2; return 1; }
  jq -e --arg uid "$(jq -r .uid "$REQUEST")" '.uid == $uid' "$RESPONSE" >/dev/null ||
    { echo "response is not JSON or uid differs: $output" >&2; return 1; }
}

# resp 'jq filter': the filter holds (truthy) on the response.
resp() {
  jq -e "$@" "$RESPONSE" >/dev/null || {
    echo "response check failed: $*" >&2
    jq . "$RESPONSE" >&2
    return 1
  }
}

# The decoded RFC 6902 patch (fails when the response has none).
patch_ops() {
  local encoded
  encoded=$(jq -r '.patch // empty' "$RESPONSE")
  [ -n "$encoded" ] || { echo "the response has no patch: $(cat "$RESPONSE")" >&2; return 1; }
  printf '%s' "$encoded" | base64 --decode
}

# Accepted with a JSONPatch; writes the patched pod to $POD.
mutated() {
  response_ok
  resp '.allowed == true and .patchType == "JSONPatch"'
  patch_ops >"$BATS_TEST_TMPDIR/patch.json"
  jq '.object' "$REQUEST" >"$BATS_TEST_TMPDIR/object.json"
  python3 "$DATA/apply-patch.py" "$BATS_TEST_TMPDIR/object.json" "$BATS_TEST_TMPDIR/patch.json" >"$POD"
}

# pod 'jq filter' [jq args...]: the filter holds on the patched pod.
pod() {
  jq -e "$@" "$POD" >/dev/null || {
    echo "pod check failed: $*" >&2
    jq -c . "$POD" | cut -c1-4000 >&2
    return 1
  }
}

# patch_has 'jq filter' [jq args...]: the filter holds on the decoded patch.
patch_has() {
  jq -e "$@" "$BATS_TEST_TMPDIR/patch.json" >/dev/null || {
    echo "patch check failed: $*" >&2
    jq -c . "$BATS_TEST_TMPDIR/patch.json" | cut -c1-4000 >&2
    return 1
  }
}

# Accepted without any change: no patch at all.
unchanged() {
  response_ok
  resp '.allowed == true and .patch == null and .patchType == null'
}

# Denied with exactly this message and code.
denied_with() {
  response_ok
  jq -e --arg m "$1" --argjson c "$2" \
    '.allowed == false and .status.message == $m and .status.code == $c and .patch == null' \
    "$RESPONSE" >/dev/null || {
    echo "expected denial ($2): $1" >&2
    jq . "$RESPONSE" >&2
    return 1
  }
}

# The response's warnings are exactly these lines, in order (none: `warnings_are`).
warnings_are() {
  local expected
  expected=$(jq -cn '$ARGS.positional' --args "$@")
  jq -e --argjson w "$expected" '(.warnings // []) == $w' "$RESPONSE" >/dev/null || {
    echo "expected warnings $expected" >&2
    jq '.warnings' "$RESPONSE" >&2
    return 1
  }
}

# One of the warnings is exactly this line.
has_warning() {
  jq -e --arg w "$1" '(.warnings // []) | index([$w]) != null' "$RESPONSE" >/dev/null || {
    echo "missing warning: $1" >&2
    jq '.warnings' "$RESPONSE" >&2
    return 1
  }
}

# The value of env var NAME in the container named C (containers or initContainers).
env_of() {
  jq -r --arg c "$1" --arg n "$2" \
    '[.spec.containers[], (.spec.initContainers // [])[] | select(.name == $c) | (.env // [])[] | select(.name == $n) | .value][0] // "<unset>"' \
    "$POD"
}

# request_from_pod SRC_REQUEST POD_FILE OUT: a second request whose object is the given pod.
request_from_pod() {
  jq --slurpfile pod "$2" '.object = $pod[0] | .uid = "0a1b2c3d-0000-4000-8000-999999999999"' "$1" >"$3"
}

# Runs the policy again on its own output (same lookups): it must change nothing.
assert_idempotent() {
  local session=$1
  shift
  local first_pod="$BATS_TEST_TMPDIR/first-pod.json"
  cp "$POD" "$first_pod"
  request_from_pod "$REQUEST" "$first_pod" "$BATS_TEST_TMPDIR/second-request.json"
  evaluate "$BATS_TEST_TMPDIR/second-request.json" "$session" "$@"
  unchanged
}

# The paths of the standard injected az mount/env (default mountRoot).
AZ_MOUNT='{"name":"cwii-az-token","mountPath":"/var/run/secrets/cwii.dev/az","readOnly":true}'
AZ_ENV='[{"name":"AZURE_CLIENT_ID","value":"11111111-1111-1111-1111-111111111111"},{"name":"AZURE_TENANT_ID","value":"22222222-2222-2222-2222-222222222222"},{"name":"AZURE_FEDERATED_TOKEN_FILE","value":"/var/run/secrets/cwii.dev/az/token"}]'
