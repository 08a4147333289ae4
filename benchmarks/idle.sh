#!/usr/bin/env bash
# What idle connections cost: collab-bench holds 10,000 idle WebSocket connections (100 rooms of
# 100) to a fresh release collab-serve for 5 s; the server's RSS before connecting and after (VmRSS
# from /proc), KiB per connection, and the generator's own RSS per connection.
# Usage: benchmarks/idle.sh [--redis] [--runs N] [-- collab-bench options that override]
#   --redis: two collab-serve --redis instances and a redis-server; clients split between them.
# Environment: COLLAB_SCRATCH (build directory, default .build-bench), COLLAB_BENCH_DATA.
set -euo pipefail
cd "$(dirname "$0")/.."
. benchmarks/build-release.sh
build_release collab-serve collab-bench
exec python3 benchmarks/collab-bench.py idle --bin "$bin" "$@"
