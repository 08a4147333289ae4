#!/usr/bin/env bash
# Throughput of collab-tap on a big capture, whole process, release build: the human view, --raw,
# --raw with filters, and --stats, reading a capture file (straight through) and a pipe (the event
# loop), writing to a regular file as a capture would.
# The capture: automerge-paper's 259,778 edits as committed op lines (collab-ot-apply replay --ops),
# each given a user (three, in turn) and a ts (1 ms apart), as a server would have sent them.
# Usage: benchmarks/tap.sh [RUNS]   (default 7). Prints a Markdown table for BENCHMARKS.md.
# Environment: SCRATCH, the build directory (default .build).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-7}
scratch=${SCRATCH:-.build}
swift build -c release --scratch-path "$scratch" --product collab-tap >/dev/null
swift build -c release --scratch-path "$scratch" --product collab-ot-apply >/dev/null
tap=$scratch/release/collab-tap
apply=$scratch/release/collab-ot-apply
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
m() { python3 benchmarks/measure.py "$runs" "$@"; }

"$apply" replay --ops --room paper benchmarks/traces/sequential/automerge-paper.json.gz | python3 -c '
import sys
users = ("ann", "bob", "carol")
for i, line in enumerate(sys.stdin):
    sys.stdout.write(line[:-2] + ",\"user\":\"%s\",\"ts\":%d}\n" % (users[i % 3], 1764000000000 + i))
' > "$work/capture.ndjson"
lines=$(wc -l < "$work/capture.ndjson")
bytes=$(wc -c < "$work/capture.ndjson")
# Sanity: --raw without filters is the capture itself.
"$tap" --raw < "$work/capture.ndjson" | cmp -s - "$work/capture.ndjson" || { echo "--raw changed the capture" >&2; exit 1; }

c="$work/capture.ndjson"
results=()
results+=("$(m "human view, file" "$c" "$work/out" -- "$tap")")
results+=("$(m "human view, pipe" - "$work/out" -- sh -c "cat '$c' | '$tap'")")
results+=("$(m "--raw, file" "$c" "$work/out" -- "$tap" --raw)")
results+=("$(m "--raw, pipe" - "$work/out" -- sh -c "cat '$c' | '$tap' --raw")")
results+=("$(m "--raw --type op --user ann" "$c" "$work/out" -- "$tap" --raw --type op --user ann)")
results+=("$(m "--stats, file" "$c" "$work/out" -- "$tap" --stats)")
results+=("$(m "(collab-ot-apply apply, for scale)" "$c" "$work/out" -- "$apply" apply)")

echo "machine: $(nproc) cores, $(uname -m), $(date -u +%Y-%m-%d); runs per row: $runs; capture: $lines lines, $bytes bytes"
echo
echo "| what | wall median (s) | wall min (s) | cpu median (s) | peak RSS (MiB) | lines/s (median) |"
echo "|---|---|---|---|---|---|"
for r in "${results[@]}"; do
    python3 - "$r" "$lines" "$bytes" <<'PY'
import json, sys
r = json.loads(sys.argv[1]); lines = int(sys.argv[2]); size = int(sys.argv[3])
med = r["wall_s"]["median"]
print(f'| {r["label"]} | {med:.3f} | {r["wall_s"]["min"]:.3f} | {r["cpu_s"]["median"]:.3f} | {r["max_rss_mib"]:.1f} | {lines / med:,.0f} ({size / med / 1e6:.0f} MB/s) |')
PY
done
