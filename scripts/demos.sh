#!/usr/bin/env bash
# Runs the demo profile of every recipe given, all at once, each into OUT/<recipe id>, with one
# log per recipe; fails, showing the failed runs' log tails, if any run fails. The recipes
# together keep every core busy, where one after another would leave cores idle on each one's
# serial chain; so each run computes one stage at a time (JOBS, default 1) unless there are
# fewer recipes than cores.
#
# Usage: scripts/demos.sh BIN CACHE OUT RECIPE...
set -uo pipefail
bin=$1 cache=$2 out=$3
shift 3
cores=$(nproc)
jobs=${JOBS:-$(( $# >= cores ? 1 : cores / $# ))}
logs="$cache/../demo-logs"
mkdir -p "$logs"
declare -A pids
start=$(date +%s)
for recipe in "$@"; do
    id=$(basename "$recipe" .yaml)
    "$bin" run "$recipe" --profile demo --jobs "$jobs" --cache "$cache" --out "$out/$id" --quiet >"$logs/$id.log" 2>&1 &
    pids[$id]=$!
done
failed=()
for id in "${!pids[@]}"; do
    if wait "${pids[$id]}"; then
        echo "$id: demo report written to $out/$id"
    else
        failed+=("$id")
    fi
done
for id in "${failed[@]}"; do
    echo "== $id failed; the end of $logs/$id.log:" >&2
    tail -n 20 "$logs/$id.log" >&2
done
echo "all demos: $(( $(date +%s) - start )) s"
[ ${#failed[@]} -eq 0 ]
