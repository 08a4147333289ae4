#!/usr/bin/env bash
# What TLS costs: the same collab-bench fan-out against a fresh release collab-serve over ws://
# and over wss:// (a throwaway CA and certificate made with openssl), alternating, so both see
# the same machine. Default load: 200 clients in one room, 10 writers at 20 ops/s (about 40,000
# deliveries/s), 2 s warm-up, 10 s measured.
# Usage: benchmarks/tls.sh [--runs N] [-- collab-bench options that override]
# Environment: COLLAB_SCRATCH (build directory, default .build-bench), COLLAB_BENCH_DATA.
# Prints a Markdown row per run and the medians per scheme.
set -euo pipefail
cd "$(dirname "$0")/.."
. benchmarks/build-release.sh
build_release collab-serve collab-bench
exec python3 benchmarks/tls.py --bin "$bin" "$@"
