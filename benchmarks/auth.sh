#!/usr/bin/env bash
# What token checks cost at connect time: open server vs --auth-secret-file, alternately.
# Usage: benchmarks/auth.sh [--runs N] [--clients N]
# Environment: COLLAB_SCRATCH (build directory, default .build-bench).
set -euo pipefail
cd "$(dirname "$0")/.."
. benchmarks/build-release.sh
build_release collab-serve collab-bench
exec python3 benchmarks/auth.py --bin "$bin" "$@"
