#!/usr/bin/env bash
# Benchmark of collab-presence, whole process, release build. The input is the automerge-paper
# trace's 259,778 committed ops (collab-ot-apply replay --ops) with a presence line from one of
# four members after each op (benchmarks/presence-stream.py): 519,558 lines, 57 MB.
#  - default: change lines (join/leave/presence/typing), reading a file (stream clock)
#  - --once: also follows the text, one roster line at the end
#  - --table off a terminal: a roster snapshot with line:column per visible change
#  - default through a pipe: the event loop and the wall clock, as behind collab-join
# Usage: benchmarks/presence.sh [RUNS]   (default 7; COLLAB_SCRATCH=DIR builds in DIR instead of
# .build). Prints a Markdown table for BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-7}
scratch=${COLLAB_SCRATCH:-.build}
swift build -c release --scratch-path "$scratch" --product collab-presence >/dev/null
swift build -c release --scratch-path "$scratch" --product collab-ot-apply >/dev/null
bin=$scratch/release/collab-presence
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
m() { python3 benchmarks/measure.py "$runs" "$@"; }

"$scratch/release/collab-ot-apply" replay --ops benchmarks/traces/sequential/automerge-paper.json.gz \
    | python3 benchmarks/presence-stream.py 4 > "$work/stream.ndjson"
lines=$(wc -l < "$work/stream.ndjson")
bytes=$(wc -c < "$work/stream.ndjson")

results=()
results+=("$(m "change lines (file)" "$work/stream.ndjson" "$work/changes.ndjson" -- "$bin")")
results+=("$(m "--once (file)" "$work/stream.ndjson" "$work/once.ndjson" -- "$bin" --once)")
results+=("$(m "--table off a terminal (file)" "$work/stream.ndjson" "$work/table.ndjson" -- "$bin" --table)")
results+=("$(m "change lines (pipe, event loop)" - - -- sh -c "cat '$work/stream.ndjson' | '$bin' > '$work/piped.ndjson'")")
# Sanity: the pipe and the file give the same lines when both use the stream's clock, and the
# roster at the end has the four members at the last revision.
cat "$work/stream.ndjson" | "$bin" --clock stream | cmp -s - "$work/changes.ndjson" \
    || { echo "piped and file outputs differ" >&2; exit 1; }
grep -q '"rev":259778,"members":\[' "$work/once.ndjson" || { echo "unexpected --once output" >&2; exit 1; }

echo "machine: $(nproc) cores, $(uname -m), $(date -u +%Y-%m-%d); input: $lines lines, $bytes bytes; runs per row: $runs"
echo "output lines: changes $(wc -l < "$work/changes.ndjson"), --table snapshots $(wc -l < "$work/table.ndjson")"
echo
echo "| what | wall median (s) | wall min (s) | cpu median (s) | peak RSS (MiB) | rate (median) |"
echo "|---|---|---|---|---|---|"
for r in "${results[@]}"; do
    python3 - "$r" "$lines" "$bytes" <<'PY'
import json, sys
r = json.loads(sys.argv[1]); lines = int(sys.argv[2]); size = int(sys.argv[3])
rate = f'{lines / r["wall_s"]["median"]:,.0f} lines/s ({size / r["wall_s"]["median"] / 1e6:.0f} MB/s)'
print(f'| {r["label"]} | {r["wall_s"]["median"]:.3f} | {r["wall_s"]["min"]:.3f} | {r["cpu_s"]["median"]:.3f} | {r["max_rss_mib"]:.1f} | {rate} |')
PY
done
