#!/usr/bin/env bash
# What token checks cost at connect time: open server vs --auth-secret-file, alternately.
# Usage: benchmarks/auth.sh [--runs N] [--clients N]
# Environment: COLLAB_SCRATCH (build directory, default .build-bench).
set -euo pipefail
cd "$(dirname "$0")/.."
scratch=${COLLAB_SCRATCH:-.build-bench}
for product in collab-serve collab-bench; do
    if ! log=$(swift build -c release --scratch-path "$scratch" --product "$product" 2>&1); then
        echo "$log" >&2
        exit 1
    fi
done
exec python3 benchmarks/auth.py --bin "$scratch/release" "$@"
