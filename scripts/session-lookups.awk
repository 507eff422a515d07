# The get_resource requests of a recorded session (kwctl's session YAML, as in bench/*/session.yml),
# in order, for the floor's `lookups` setting: one {"request": {...}, "fails": bool} JSON
# object per line, "fails" when the recorded response is an Error.
function flush() {
  if (!started) return
  printf "{\"request\":{\"api_version\":%s,\"kind\":%s,\"name\":%s,\"namespace\":%s,\"disable_cache\":%s,\"field_masks\":[%s]},\"fails\":%s}\n", \
    q(f["api_version"]), q(f["kind"]), q(f["name"]), (f["namespace"] == "null" || f["namespace"] == "" ? "null" : q(f["namespace"])), \
    (f["disable_cache"] == "" ? "false" : f["disable_cache"]), masks, (fails ? "true" : "false")
}
function q(s) { gsub(/"/, "\\\"", s); return "\"" s "\"" }
/^- type: Exchange/ { flush(); started = 1; section = ""; delete f; masks = ""; fails = 0; next }
/^  request: \|/ { section = "request"; next }
/^  response:/ { section = "response"; next }
section == "request" && /^    !/ { if ($0 !~ /!KubernetesGetResource/) { print "unsupported request " $0 > "/dev/stderr"; exit 3 } next }
section == "request" && /^    - / { sub(/^    - /, ""); masks = masks (masks == "" ? "" : ",") q($0); next }
section == "request" && /^    [a-z_]+:/ { line = $0; sub(/^    /, "", line); k = line; sub(/:.*/, "", k); v = line; sub(/^[a-z_]+: ?/, "", v); f[k] = v; next }
section == "response" && /^    type: / { fails = ($2 == "Error") }
END { flush() }
