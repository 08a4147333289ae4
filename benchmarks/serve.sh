#!/usr/bin/env bash
# Benchmarks of collab-serve's hot path (commit + fdatasync + ack + broadcast), release build,
# server and clients in one process on loopback: the measurements in
# Tests/CollabServerTests/ServerHostTests.swift (ServerHostBenchmarks), skipped in normal test runs.
# Usage: benchmarks/serve.sh        Environment: COLLAB_BENCH_READERS (10), COLLAB_BENCH_WRITERS (32),
#        COLLAB_BENCH_DATA (a directory on the disk to measure; default a temporary one).
# (This is the in-process view; benchmarks/fanout.sh measures through real processes with collab-bench.)
set -euo pipefail
cd "$(dirname "$0")/.."
COLLAB_BENCH=1 swift test -c release -Xswiftc -enable-testing --scratch-path .build-bench \
    --disable-swift-testing --filter ServerHostBenchmarks 2>&1 | grep -E "^(bench|  )|measured|ops/s|p50|p99" || true
