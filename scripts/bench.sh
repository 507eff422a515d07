#!/usr/bin/env bash
# Benchmarks the policy against the floor module (a policy that parses the request and
# returns the object unchanged) on the scenarios in bench/, in both instance modes, and
# prints one table of ratios. Usage: scripts/bench.sh KWRUN POLICY.wasm FLOOR.wasm
set -euo pipefail
kwrun=$1 policy=$2 floor=$3
cd "$(dirname "$0")/.."
fresh_iterations=${BENCH_FRESH_ITERATIONS:-2000}
warm_iterations=${BENCH_WARM_ITERATIONS:-10000}
rounds=${BENCH_ROUNDS:-3}

# One kwrun bench run; prints "median lookups".
measure() { # module mode iterations dir [with-session]
  local module=$1 mode=$2 iterations=$3 dir=$4 session=${5:-}
  local args=(bench --request-path "$dir/request.json" --mode "$mode" --iterations "$iterations"
              --warmup 50 --output json --allow-context-aware)
  [ -n "$session" ] && args+=(--replay-host-capabilities-interactions "$dir/session.yml")
  [ -f "$dir/settings.json" ] && [ -n "$session" ] && args+=(--settings-path "$dir/settings.json")
  "$kwrun" "${args[@]}" "$module" 2>/dev/null | jq -r '"\(.median_us) \(.lookups_per_evaluation)"'
}

# Median of the per-round medians: rounds alternate policy and floor so that drift in
# machine load hits both alike.
median_of() { sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }

printf '%s\n' "cwii policy vs floor — $(date -u +%F), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(nproc) cores"
printf '%s\n' "fresh: new instance per evaluation (what the policy server pays); warm: one instance reused (the policy's own work)"
printf '%s\n' "ratio = policy median / floor median (targets: warm <= 1.5, fresh <= 1.1); medians of $rounds rounds; fresh $fresh_iterations, warm $warm_iterations evaluations per round"
echo
printf '| %-30s | %-5s | %6s | %12s | %11s | %7s |\n' scenario mode ratio "policy µs" "floor µs" lookups
printf '|%s|%s|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..32})" "-------" "--------" "--------------" "-------------" "---------"
for dir in bench/*/; do
  dir=${dir%/}; name=$(basename "$dir")
  for mode in warm fresh; do
    iterations=$warm_iterations; [ "$mode" = fresh ] && iterations=$fresh_iterations
    policy_runs=() floor_runs=() lookups=0
    for _ in $(seq "$rounds"); do
      read -r p lookups < <(measure "$policy" "$mode" "$iterations" "$dir" session)
      read -r f _ < <(measure "$floor" "$mode" "$iterations" "$dir")
      policy_runs+=("$p"); floor_runs+=("$f")
    done
    p=$(printf '%s\n' "${policy_runs[@]}" | median_of)
    f=$(printf '%s\n' "${floor_runs[@]}" | median_of)
    ratio=$(awk -v p="$p" -v f="$f" 'BEGIN {printf "%.2f", p / f}')
    printf '| %-30s | %-5s | %6s | %12s | %11s | %7s |\n' "$name" "$mode" "$ratio" "$p" "$f" "$lookups"
  done
done
echo
printf "policy.wasm: %s bytes (%.2f MiB); annotated: %s bytes; floor.wasm: %s bytes (%.2f MiB)\n" \
  "$(stat -c %s policy.wasm)" "$(awk -v b="$(stat -c %s policy.wasm)" "BEGIN {print b/1048576}")" "$(stat -c %s "$policy")" \
  "$(stat -c %s "$floor")" "$(awk -v b="$(stat -c %s "$floor")" 'BEGIN {print b/1048576}')"
