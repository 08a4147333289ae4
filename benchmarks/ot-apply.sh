#!/usr/bin/env bash
# Benchmarks of the OT hot paths, whole process, release build:
#  - collab-ot-apply replay of each trace in benchmarks/traces (load, gunzip, parse, replay)
#  - collab-ot-apply apply of automerge-paper streamed as 259,778 NDJSON op lines
# Usage: benchmarks/ot-apply.sh [RUNS]   (default 7). Prints a Markdown table for BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-7}
swift build -c release --product collab-ot-apply >/dev/null
bin=.build/release/collab-ot-apply
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
m() { python3 benchmarks/measure.py "$runs" "$@"; }

paper=benchmarks/traces/sequential/automerge-paper.json.gz
"$bin" replay --ops "$paper" > "$work/paper.ndjson"
lines=$(wc -l < "$work/paper.ndjson")
bytes=$(wc -c < "$work/paper.ndjson")

results=()
for t in benchmarks/traces/sequential/*.json.gz benchmarks/traces/concurrent/*.json.gz; do
    results+=("$(m "replay $(basename "$t" .json.gz)" - - -- "$bin" replay "$t")")
done
results+=("$(m "apply automerge-paper NDJSON" "$work/paper.ndjson" "$work/doc.txt" -- "$bin" apply)")
# Sanity: the streamed document equals the replayed one.
"$bin" replay "$paper" | cmp -s - "$work/doc.txt" || { echo "apply produced a different document" >&2; exit 1; }

echo "machine: $(nproc) cores, $(uname -m), $(date -u +%Y-%m-%d); runs per row: $runs"
echo
echo "| what | wall median (s) | wall min (s) | cpu median (s) | peak RSS (MiB) | rate |"
echo "|---|---|---|---|---|---|"
for r in "${results[@]}"; do
    python3 - "$r" "$lines" "$bytes" <<'PY'
import json, sys
r = json.loads(sys.argv[1]); lines = int(sys.argv[2]); size = int(sys.argv[3])
rate = ""
if r["label"].startswith("apply"):
    rate = f'{lines / r["wall_s"]["median"]:,.0f} lines/s ({size / r["wall_s"]["median"] / 1e6:.0f} MB/s)'
print(f'| {r["label"]} | {r["wall_s"]["median"]:.3f} | {r["wall_s"]["min"]:.3f} | {r["cpu_s"]["median"]:.3f} | {r["max_rss_mib"]:.1f} | {rate} |')
PY
done
