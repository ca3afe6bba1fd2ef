#!/usr/bin/env bash
# How long sluice-init takes to apply its rules in a fresh pod-like network namespace (lo up, so
# IPv4 and IPv6): RUNS runs (default 20), each in a new namespace; prints min, median and max.
# Usage, as root: bench/init-apply.sh [path/to/sluice-init] [sluice-init flags...]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/debug/sluice-init}
shift || true
bin=$(realpath "$bin")
runs=${RUNS:-20}
times=()
for i in $(seq "$runs"); do
  ns=slbench$$-$i
  ip netns add "$ns"
  trap 'ip netns del "$ns" 2>/dev/null || true' EXIT
  ip -n "$ns" link set lo up
  times+=("$(ip netns exec "$ns" bash -c '
    start=$EPOCHREALTIME
    "$0" "$@" 2>/dev/null
    end=$EPOCHREALTIME
    awk -v s="$start" -v e="$end" "BEGIN { printf \"%.1f\", (e - s) * 1000 }"' "$bin" "$@")")
  ip netns del "$ns"
  trap - EXIT
done
printf '%s\n' "${times[@]}" | sort -n | awk '{ t[NR] = $1 } END {
  printf "%d runs: min %.1f ms, median %.1f ms, max %.1f ms\n", NR, t[1], t[int((NR + 1) / 2)], t[NR] }'
