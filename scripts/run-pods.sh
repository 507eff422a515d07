#!/usr/bin/env bash
# Evaluates every bundled test pod (test_data/<scenario>/) through the policy module and
# prints, per pod, the decision, the warnings and the changes the policy makes.
# Usage: scripts/run-pods.sh KWCTL MODULE [SCENARIO...]
set -euo pipefail
kwctl=$1 module=$2
shift 2
cd "$(dirname "$0")/.."
scenarios=("$@")
if [ ${#scenarios[@]} -eq 0 ]; then
  for dir in test_data/*/; do [ -f "$dir/request.json" ] && scenarios+=("$(basename "$dir")"); done
fi
bold=$'\e[1m' dim=$'\e[2m' green=$'\e[32m' red=$'\e[31m' yellow=$'\e[33m' reset=$'\e[0m'
[ -t 1 ] || bold='' dim='' green='' red='' yellow='' reset=''

for name in "${scenarios[@]}"; do
  dir=test_data/$name
  args=(run --request-path "$dir/request.json" --allow-context-aware)
  [ -f "$dir/session.yml" ] && args+=(--replay-host-capabilities-interactions "$dir/session.yml")
  [ -f "$dir/settings.json" ] && args+=(--settings-path "$dir/settings.json")
  echo "${bold}== $name${reset}${dim} — $(cat "$dir/description" 2>/dev/null || true)${reset}"
  if ! out=$("$kwctl" "${args[@]}" "$module" 2>/tmp/cwii-run-stderr); then
    echo "   ${red}run failed:${reset} $(tail -n 3 /tmp/cwii-run-stderr)"
    echo
    continue
  fi
  if [ "$(jq -r .allowed <<<"$out")" != true ]; then
    echo "   ${red}DENIED${reset} ($(jq -r '.status.code // ""' <<<"$out")): $(jq -r '.status.message' <<<"$out")"
  elif [ "$(jq -r '.patch // empty' <<<"$out")" != "" ]; then
    echo "   ${green}ALLOWED, mutated${reset}"
  else
    echo "   ${green}ALLOWED, unchanged${reset}"
  fi
  jq -r '(.warnings // [])[] | "   \u001b[33mwarning\u001b[0m " + .' <<<"$out" | { [ -t 1 ] && cat || sed 's/\x1b\[[0-9;]*m//g'; }
  jq -r '(.auditAnnotations // {}) | to_entries[] | "   audit   \(.key): \(.value)"' <<<"$out"
  patch=$(jq -r '.patch // empty' <<<"$out")
  if [ -n "$patch" ]; then
    base64 --decode <<<"$patch" | jq -r '.[] | "   \(.op | .[0:3]) \(.path)  \(if has("value") then (.value | tojson | if length > 140 then .[0:137] + "..." else . end) else "" end)"'
  fi
  echo
done
