#!/usr/bin/env bash
# Benchmarks the policy against floor modules (floor/: the least work a policy can do for a
# given answer) with `kwrun bench`, in both instance modes, and prints the tables of the
# README's Performance section.
#
#   scripts/bench.sh KWRUN POLICY.wasm FLOOR.wasm [table] [cost]
#
# table: every scenario in bench/*/ (each a request.json, optional session.yml and
#        settings.json). For each, the policy is run once for its answer; the *fair floor* is
#        the floor given that answer in its settings (the same mutated pod, warnings and audit
#        annotations, or no mutation at all) and the policy's lookups (the session's
#        requests, replayed from the same session), so the host does the same work for both:
#        the same lookups served, the same diff, base64 and response. The *answer floor* is
#        the fair floor without the lookups (the host's lookup cost then counts as the
#        policy's); the *echo floor* returns the request's pod unchanged. The four are
#        timed, fresh and warm, taking turns within each `kwrun bench --compare` run, over
#        several runs. The floor runs annotated with the policy's metadata, so that the host
#        grants and gates its lookups as it does the policy's.
# cost:  µs per evaluation against the number of containers (a three-provider pod with 1, 10,
#        50 and 200 containers, generated from bench/fifty-containers-triple) and of lookups
#        (0, 2, 4: bench/own-annotations-triple and bench/cost/lookups-*), with least-squares
#        slopes. All points of a series take turns in one run, so they share its load.
# Both sections by default. Effort: BENCH_ROUNDS (3) runs per scenario; in each, per module
# and mode, BENCH_SECONDS (1) of timed evaluations but at most BENCH_ITERATIONS (10000),
# after BENCH_WARMUP (50) untimed ones.
set -euo pipefail
kwrun=$1 policy=$2 floor=$3
shift 3
sections=("$@")
[ ${#sections[@]} -gt 0 ] || sections=(table cost)
cd "$(dirname "$0")/.."
command -v jq >/dev/null || { echo "bench.sh needs jq" >&2; exit 2; }
rounds=${BENCH_ROUNDS:-3}
seconds=${BENCH_SECONDS:-1}
iterations=${BENCH_ITERATIONS:-10000}
warmup=${BENCH_WARMUP:-50}
work=target/bench
rm -rf "$work"
mkdir -p "$work"
started=$(date +%s)

# Runs kwrun; on failure shows its stderr and stops the benchmark.
kw() {
  local log="$work/kwrun.log"
  if ! "$kwrun" "$@" 2>"$log"; then
    echo "bench.sh: kwrun $* failed:" >&2
    cat "$log" >&2
    exit 1
  fi
}

# The arguments naming a scenario's request, and for the policy its settings and session.
policy_args() { # dir
  local dir=$1
  local args=(--request-path "$dir/request.json" --allow-context-aware)
  [ -f "$dir/session.yml" ] && args+=(--replay-host-capabilities-interactions "$dir/session.yml")
  [ -f "$dir/settings.json" ] && args+=(--settings-path "$dir/settings.json")
  printf '%s\n' "${args[@]}"
}

# The session arguments of a scenario's fair floor: its session, when it has one.
floor_session_args() { # dir
  [ -f "$1/session.yml" ] && printf '%s\n' --allow-context-aware --replay-host-capabilities-interactions "$1/session.yml"
  return 0
}

# Runs the policy once, writes the answer floor's settings (the policy's answer) to
# $work/NAME/answer.json, the fair floor's (the answer and the session's lookups) to
# $work/NAME/fair.json and the answer's summary to $work/NAME/answer, and checks that both
# floors' AdmissionResponse is the policy's and that the fair floor makes the policy's lookups.
prepare_scenario() { # dir name
  local dir=$1 name=$2 out="$work/$2"
  mkdir -p "$out"
  mapfile -t args < <(policy_args "$dir")
  kw run --validation-response "${args[@]}" "$policy" >"$out/validation.json"
  jq -c '{mutatedObject: .mutated_object}
    + (if .accepted then {} else {accepted: false, message, code} end)
    + (if .audit_annotations then {auditAnnotations: .audit_annotations} else {} end)
    + (if .warnings then {warnings} else {} end)' "$out/validation.json" >"$out/answer.json"
  : >"$out/lookups"
  [ -f "$dir/session.yml" ] && awk -f scripts/session-lookups.awk "$dir/session.yml" >"$out/lookups"
  jq -c --slurpfile lookups "$out/lookups" '. + {lookups: $lookups}' "$out/answer.json" >"$out/fair.json"
  kw run "${args[@]}" "$policy" >"$out/policy-response.json"
  mapfile -t floor_args < <(floor_session_args "$dir")
  local floor_kind
  for floor_kind in answer fair; do
    kw run --request-path "$dir/request.json" --settings-path "$out/$floor_kind.json" "${floor_args[@]}" \
      "$annotated_floor" >"$out/$floor_kind-response.json"
    if ! diff <(jq -S . "$out/policy-response.json") <(jq -S . "$out/$floor_kind-response.json") >/dev/null; then
      echo "bench.sh: $name: the $floor_kind floor does not answer like the policy:" >&2
      diff <(jq -S . "$out/policy-response.json") <(jq -S . "$out/$floor_kind-response.json") >&2 || true
      exit 1
    fi
  done
  jq -r 'if .allowed | not then "denied"
    elif .patch then (.patch | @base64d | fromjson | "mutates, \(length) patch ops")
    else "unchanged" end' "$out/policy-response.json" >"$out/answer"
  printf '%s\n' "$(wc -c <"$out/fair.json")" >"$out/fair-bytes"
}

# Times policy, fair, answer and echo floor on a prepared scenario: in each round one
# `kwrun bench` run, fresh then warm, in which the four take turns of a few milliseconds
# (--compare), so that drift in machine load hits all alike. Appends
# "mode median lookups iterations" lines to $work/NAME/{policy,fair,answer,echo}.times.
time_scenario() { # dir name
  local dir=$1 name=$2 out="$work/$2"
  mapfile -t args < <(policy_args "$dir")
  : >"$out/policy.times"; : >"$out/fair.times"; : >"$out/answer.times"; : >"$out/echo.times"
  local fair answer echo round
  fair=$(spec "$annotated_floor" "$dir" "$out/fair.json" session)
  answer=$(spec "$annotated_floor" "$dir" "$out/answer.json")
  echo=$(spec "$annotated_floor" "$dir")
  for round in $(seq "$rounds"); do
    kw bench "${args[@]}" --compare "$fair" --compare "$answer" --compare "$echo" \
      --mode both --warmup "$warmup" --measurement-time "$seconds" --iterations "$iterations" \
      --output json "$policy" >"$work/bench.json"
    jq -r --arg policy "$policy" --arg fair "$fair" --arg answer "$answer" '
      (if .policy == $policy then "policy" elif .policy == $fair then "fair"
       elif .policy == $answer then "answer" else "echo" end)
      + " \(.mode) \(.median_us) \(.lookups_per_evaluation) \(.iterations)"' "$work/bench.json" |
      while read -r who rest; do echo "$rest" >>"$out/$who.times"; done
  done
}

# The best (least) of one module's per-run medians in one mode: the run least slowed by
# whatever else the machine was doing.
best_of() { # file mode
  awk -v m="$2" '$1 == m {print $2}' "$1" | sort -g | head -n 1
}
# The median over runs of policy median / floor median within the same run (the three take
# turns within a run, so each run's ratio is measured under one load).
paired_ratio() { # policy-file floor-file mode
  paste -d' ' <(awk -v m="$3" '$1 == m {print $2}' "$1") <(awk -v m="$3" '$1 == m {print $2}' "$2") |
    awk '{print $1 / $2}' | sort -g | awk '{v[NR]=$1} END {printf "%.2f", v[int((NR+1)/2)]}'
}
lookups_of() { awk -v m="$2" '$1 == m {print $3; exit}' "$1"; }
# "1.18 ✓" when RATIO <= TARGET, else "2.31 ✗".
judged() { awk -v r="$1" -v t="$2" 'BEGIN {printf "%s %s", r, (r + 0 <= t + 0) ? "✓" : "✗"}'; }

fresh_target=1.25 warm_target=2.0
header() {
  printf '%s\n' "cwii policy vs floors — $(date -u +%F), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at start"
  printf '%s\n' "fresh: new instance per evaluation (what the policy server pays); warm: one instance reused (the policy's own work)"
  printf '%s\n' "fair floor: the floor module giving the policy's own answer (same mutated pod, warnings, audit annotations; or no mutation) after making the policy's lookups (same requests, same session); answer floor: the same answer without the lookups; echo floor: returns the request's pod unchanged"
  printf '%s\n' "$rounds runs; in each the four modules take turns of 5 ms, each timed ${seconds} s per mode (at most $iterations evaluations) after $warmup untimed ones"
  printf '%s\n' "µs: median evaluation time of the best of the $rounds runs; ratio: median over the runs of the ratio of medians within a run"
}

table_section() {
  local dirs=() dir
  for dir in bench/*/; do [ -f "$dir/request.json" ] && dirs+=("${dir%/}"); done
  printf '%s\n' "targets: fresh <= ${fresh_target}x, warm <= ${warm_target}x the floor that gives the same answer (ratio vs fair floor)"
  echo
  printf '| %-28s | %-5s | %13s | %11s | %9s | %9s | %9s | %9s | %9s | %7s |\n' \
    scenario mode "vs fair floor" "vs answer" "vs echo" "policy µs" "fair µs" "answer µs" "echo µs" lookups
  printf '|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..30})" "-------" "---------------" \
    "-------------" "-----------" "-----------" "-----------" "-----------" "-----------" "---------"
  local met=0 total=0 name mode p f a e target
  for dir in "${dirs[@]}"; do
    name=$(basename "$dir")
    prepare_scenario "$dir" "$name"
    time_scenario "$dir" "$name"
    for mode in fresh warm; do
      p=$(best_of "$work/$name/policy.times" "$mode")
      f=$(best_of "$work/$name/fair.times" "$mode")
      a=$(best_of "$work/$name/answer.times" "$mode")
      e=$(best_of "$work/$name/echo.times" "$mode")
      if [ "$(lookups_of "$work/$name/policy.times" "$mode")" != "$(lookups_of "$work/$name/fair.times" "$mode")" ]; then
        echo "bench.sh: $name: the fair floor made $(lookups_of "$work/$name/fair.times" "$mode") lookups, the policy $(lookups_of "$work/$name/policy.times" "$mode")" >&2
        exit 1
      fi
      vs_fair=$(paired_ratio "$work/$name/policy.times" "$work/$name/fair.times" "$mode")
      vs_answer=$(paired_ratio "$work/$name/policy.times" "$work/$name/answer.times" "$mode")
      vs_echo=$(paired_ratio "$work/$name/policy.times" "$work/$name/echo.times" "$mode")
      target=$warm_target; [ "$mode" = fresh ] && target=$fresh_target
      total=$((total + 1))
      awk -v r="$vs_fair" -v t="$target" 'BEGIN {exit !(r + 0 <= t + 0)}' && met=$((met + 1))
      printf '| %-28s | %-5s | %13s | %11s | %9s | %9s | %9s | %9s | %9s | %7s |\n' "$name" "$mode" \
        "$(judged "$vs_fair" "$target")" "$vs_answer" "$vs_echo" "$p" "$f" "$a" "$e" \
        "$(lookups_of "$work/$name/policy.times" "$mode")"
    done
  done
  echo
  echo "targets met: $met of $total"
  echo
  echo "answers (what the floors return; their settings carry the answer, the fair floor's the lookups too):"
  for dir in "${dirs[@]}"; do
    name=$(basename "$dir")
    printf '  %-28s %s; fair floor settings %s bytes\n' "$name" "$(cat "$work/$name/answer")" "$(cat "$work/$name/fair-bytes")"
  done
}

# A three-provider pod with N containers: bench/fifty-containers-triple with its containers
# replaced by N of the same shape.
containers_scenario() { # n
  local n=$1 dir="$work/scenarios/containers-$1"
  mkdir -p "$dir"
  jq --argjson n "$n" '.object.spec.containers = [range($n) | {name: "c\(.)", image: "registry.local/app:1.0",
      ports: [{containerPort: (8080 + .)}], env: [{name: "MODE", value: "prod"}], resources: {requests: {cpu: "10m"}}}]' \
    bench/fifty-containers-triple/request.json >"$dir/request.json"
  cp bench/fifty-containers-triple/session.yml "$dir/session.yml"
  echo "$dir"
}

# Least-squares slope of "x y" lines.
slope() {
  awk '{n++; sx+=$1; sy+=$2; sxx+=$1*$1; sxy+=$1*$2}
    END {d = n*sxx - sx*sx; if (d == 0) print "n/a"; else printf "%.1f", (n*sxy - sx*sy) / d}'
}

# The --compare spec of a module on a scenario: its own request, and session and settings.
spec() { # module dir [settings-file] [with-session]
  local module=$1 dir=$2 settings=${3:-} session=${4:-}
  local text="module=$module,request=$dir/request.json"
  [ -n "$session" ] && [ -f "$dir/session.yml" ] && text+=",session=$dir/session.yml"
  [ -n "$settings" ] && text+=",settings=$settings"
  printf '%s' "$text"
}

# One series of the cost model. Every point's policy, fair floor and echo floor take turns
# in the same `kwrun bench` run (each point's policy with its own request, session and
# settings), so that the points are measured under the same load; BENCH_ROUNDS such runs.
cost_series() { # label unit "x dir" ...
  local label=$1 unit=$2
  shift 2
  local points=("$@") point x dir name
  : >"$work/labels"
  local compare=() first_dir=""
  for point in "${points[@]}"; do
    read -r x dir <<<"$point"
    name="cost-$label-$x"
    prepare_scenario "$dir" "$name"
    local settings=""
    [ -f "$dir/settings.json" ] && settings="$dir/settings.json"
    if [ -z "$first_dir" ]; then
      first_dir=$dir
      printf '%s\tpolicy %s\n' "$policy" "$x" >>"$work/labels"
    else
      compare+=(--compare "$(spec "$policy" "$dir" "$settings" session)")
      printf '%s\tpolicy %s\n' "$(spec "$policy" "$dir" "$settings" session)" "$x" >>"$work/labels"
    fi
    compare+=(--compare "$(spec "$annotated_floor" "$dir" "$work/$name/fair.json" session)")
    printf '%s\tfair %s\n' "$(spec "$annotated_floor" "$dir" "$work/$name/fair.json" session)" "$x" >>"$work/labels"
    compare+=(--compare "$(spec "$annotated_floor" "$dir")")
    printf '%s\techo %s\n' "$(spec "$annotated_floor" "$dir")" "$x" >>"$work/labels"
  done
  mapfile -t args < <(policy_args "$first_dir")
  : >"$work/series.times"
  local round
  for round in $(seq "$rounds"); do
    kw bench "${args[@]}" "${compare[@]}" --mode both --warmup "$warmup" \
      --measurement-time "$seconds" --iterations "$iterations" --output json "$policy" >"$work/bench.json"
    # "who x mode median" per module and mode.
    jq -r '"\(.policy)\t\(.mode) \(.median_us)"' "$work/bench.json" |
      awk -F'\t' 'NR == FNR {who[$1] = $2; next} {print who[$1], $2}' "$work/labels" - >>"$work/series.times"
  done
  printf '| %10s | %9s | %9s | %9s | %9s | %9s | %9s |\n' "$label" "policy" "fair" "echo" "policy" "fair" "echo"
  printf '| %10s | %9s | %9s | %9s | %9s | %9s | %9s |\n' "" "warm µs" "warm µs" "warm µs" "fresh µs" "fresh µs" "fresh µs"
  printf '|%s|%s|%s|%s|%s|%s|%s|\n' "------------" "-----------" "-----------" "-----------" "-----------" "-----------" "-----------"
  # The best run's median per module, point and mode: "mode who x value".
  awk '{k = $3 " " $1 " " $2; if (!(k in best) || $4 < best[k]) best[k] = $4}
    END {for (k in best) print k, best[k]}' "$work/series.times" >"$work/slopes"
  for point in "${points[@]}"; do
    read -r x _ <<<"$point"
    local row=() who mode
    for mode in warm fresh; do
      for who in policy fair echo; do
        row+=("$(awk -v m="$mode" -v w="$who" -v x="$x" '$1 == m && $2 == w && $3 == x {print $4}' "$work/slopes")")
      done
    done
    printf '| %10s | %9s | %9s | %9s | %9s | %9s | %9s |\n' "$x" "${row[@]}"
  done
  local line="slope (µs per $unit, least squares):"
  for mode in warm fresh; do
    for who in policy fair echo; do
      line+=" $who $mode $(awk -v m="$mode" -v w="$who" '$1 == m && $2 == w {print $3, $4}' "$work/slopes" | slope);"
    done
  done
  echo
  echo "${line%;}"
}

cost_section() {
  echo "cost model: µs per evaluation (median, best of $rounds runs) against the pod's containers and the policy's lookups"
  echo
  echo "three-provider pod from pod annotations (2 lookups: ServiceAccount, Namespace), N containers:"
  echo
  local points=() n
  for n in 1 10 50 200; do points+=("$n $(containers_scenario "$n")"); done
  cost_series containers container "${points[@]}"
  echo
  echo "three-provider pod, 1 container, every key answered by the pod (0), or all but one by the"
  echo "pod and that one by the namespace (2: ServiceAccount, Namespace; 4: ReplicaSet, Deployment too):"
  echo
  cost_series lookups lookup "0 bench/own-annotations-triple" "2 bench/cost/lookups-2" "4 bench/cost/lookups-4"
}

# The floor, annotated with the policy's metadata (same capabilities, same context-aware
# resources): without it the host would refuse its lookups.
annotated_floor="$work/floor.wasm"
kw annotate -m policy-metadata.yml -o "$annotated_floor" "$floor" >/dev/null
header
for section in "${sections[@]}"; do
  echo
  case $section in
    table) table_section ;;
    cost) cost_section ;;
    *) echo "bench.sh: unknown section $section (table, cost)" >&2; exit 2 ;;
  esac
done
echo
printf "policy.wasm: %s bytes (%.2f MiB); annotated: %s bytes; floor.wasm: %s bytes (%.2f MiB)\n" \
  "$(stat -c %s policy.wasm)" "$(awk -v b="$(stat -c %s policy.wasm)" "BEGIN {print b/1048576}")" "$(stat -c %s "$policy")" \
  "$(stat -c %s "$floor")" "$(awk -v b="$(stat -c %s "$floor")" 'BEGIN {print b/1048576}')"
echo "bench.sh took $(( $(date +%s) - started )) s; load average $(cut -d' ' -f1-3 /proc/loadavg) at the end"
