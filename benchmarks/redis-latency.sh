#!/usr/bin/env bash
# Cross-instance latency of collab-serve --redis, release build: a redis-server and two collab-serve
# processes A and B (the binaries of this build; --redis instances need no data directory) sharing one
# room; writers on A, readers on B and on A, all WebSocket clients on one loop in the test process
# (Tests/CollabServerTests/RedisLatencyBenchmarks.swift, skipped in normal test runs).
# Per op it measures the time from the writer's send to its arrival at each reader on B
# (cross-instance: WebSocket to A, the commit script on Redis, PUBLISH, B's subscriber, B's
# WebSocket send, all on loopback), at each reader on A, and the writer's ack; then the same load
# against one collab-serve without Redis (embedded journal, fdatasync per loop iteration), so the
# ratio between the two comes from one invocation. The writers keep an open-loop schedule (op n is
# due at n / RATE whatever the acks do; one op in flight per writer, as the protocol requires, so a
# writer whose previous op is unacknowledged sends late, and that is reported). At the end every
# connection must have seen every op exactly once, in revision order, or the run fails.
# Usage: benchmarks/redis-latency.sh
# Environment: COLLAB_BENCH_RATE (1000 ops/s in total), COLLAB_BENCH_SECONDS (10 measured),
#   COLLAB_BENCH_WARMUP (2 s), COLLAB_BENCH_WRITERS (10, on A), COLLAB_BENCH_READERS_B (5),
#   COLLAB_BENCH_READERS_A (5), COLLAB_BENCH_REDIS_AOF=1 (redis-server with appendfsync always;
#   default no persistence), COLLAB_BENCH_SKIP_EMBEDDED=1 (the --redis run only).
# The machine is shared: each run prints how busy the whole machine was besides the benchmark.
set -euo pipefail
cd "$(dirname "$0")/.."
# Exit status: the test's (a lost or reordered op, or a process that did not start, fails it).
COLLAB_BENCH=1 swift test -c release -Xswiftc -enable-testing --scratch-path .build-bench \
    --disable-swift-testing --filter RedisLatencyBenchmarks 2>&1 | grep -E "^bench|error:|failed"
