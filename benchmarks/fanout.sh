#!/usr/bin/env bash
# Fan-out through real processes: a release collab-serve and collab-bench, both on this machine.
# 1,000 clients in one room, 10 of them sending single-character inserts at 5 ops/s each on an
# open-loop schedule (about 50 ops/s, 50,000 deliveries/s), 2 s warm-up, 20 s measured; end-to-end
# latency percentiles, missing deliveries, the server's CPU per delivery and RSS (--server-pid).
# A fresh server per run (journals on tmpfs unless COLLAB_BENCH_DATA names a directory).
# Usage: benchmarks/fanout.sh [--redis] [--runs N] [-- collab-bench options that override]
#   --redis: two collab-serve --redis instances and a redis-server; clients split between them.
# Environment: COLLAB_SCRATCH (build directory, default .build-bench), COLLAB_BENCH_DATA.
# Prints a Markdown table (one row per run) and the medians; exit 1 if a run was not clean.
set -euo pipefail
cd "$(dirname "$0")/.."
. benchmarks/build-release.sh
build_release collab-serve collab-bench
exec python3 benchmarks/collab-bench.py fanout --bin "$bin" "$@"
