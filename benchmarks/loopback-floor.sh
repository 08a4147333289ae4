#!/usr/bin/env bash
# The kernel's floor under the fan-out benchmark: benchmarks/loopback-floor.c sends one small
# message per connection per round over 1,000 loopback TCP connections (one send() per recipient,
# as collab-serve does), 50 rounds/s = 50,000 messages/s, to a receiver process that waits with
# epoll or with poll() over all descriptors (as libwebsockets 4.1 does); then the same bytes with
# 2, 4 and 8 messages per send(), which is what batching ops per connection would buy. Prints each
# side's CPU time per message. No WebSocket, no JSON: what any server and load generator pay here.
# Usage: benchmarks/loopback-floor.sh [SECONDS]   (default 8 per row)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-8}
bin=$(mktemp)
trap 'rm -f "$bin"' EXIT
cc -O2 -o "$bin" benchmarks/loopback-floor.c
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for mode in epoll poll; do
    "$bin" 1000 120 50 "$seconds" "$mode"
done
for k in 2 4 8; do
    echo "-- $k messages of 120 bytes per send():"
    "$bin" 1000 $((120 * k)) "$(python3 -c "print(50 / $k)")" "$seconds" epoll "$k"
done
