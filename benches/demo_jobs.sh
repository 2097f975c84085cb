#!/usr/bin/env bash
# `make bench-demo`: the local executor's speed-up on the 2023 demo. Two cold runs back to back
# in fresh caches, `--jobs 1` then `--jobs 2` (libtorch one thread per stage in both); both
# reports must equal the committed one byte for byte. Prints
#   BENCH demo-jobs2 ours=<jobs-2 seconds> peer=<jobs-1 seconds> ratio=<jobs1/jobs2>
set -euo pipefail
BIN=${1:?binary}
RECIPE=${2:?recipe}
WORK=.cache/bench-demo
declare -A took
for jobs in 1 2; do
    rm -rf "$WORK/jobs$jobs"
    start=$(date +%s.%N)
    "$BIN" run "$RECIPE" --profile demo --jobs "$jobs" --quiet \
        --cache "$WORK/jobs$jobs/cache" --out "$WORK/jobs$jobs/report"
    end=$(date +%s.%N)
    took[$jobs]=$(awk "BEGIN { print $end - $start }")
    printf 'demo --jobs %s: %.1f s\n' "$jobs" "${took[$jobs]}" >&2
done
committed=reports/$(basename "$RECIPE" .yaml)/SHA256SUMS
for jobs in 1 2; do
    diff -q "$committed" "$WORK/jobs$jobs/report/SHA256SUMS" >/dev/null \
        || { echo "--jobs $jobs: the report differs from $committed" >&2; exit 1; }
done
printf 'BENCH demo-jobs2 ours=%.1f peer=%.1f ratio=%.3f\n' "${took[2]}" "${took[1]}" \
    "$(awk "BEGIN { print ${took[1]} / ${took[2]} }")"
