#!/usr/bin/env bash
# The fan-out and idle benchmarks with two collab-serve --redis instances behind one redis-server
# (no persistence), the clients split between the instances (client i on instance i mod 2), so
# every room has writers and readers on both. Same loads as benchmarks/fanout.sh and
# benchmarks/idle.sh; the server CPU is A + B, redis-server's is shown beside it.
# Usage: benchmarks/redis-split.sh [--runs N]
set -euo pipefail
cd "$(dirname "$0")/.."
benchmarks/fanout.sh --redis "$@"
echo
benchmarks/idle.sh --redis "$@"
