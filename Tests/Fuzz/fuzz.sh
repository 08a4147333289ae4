#!/usr/bin/env bash
# Coverage-guided fuzzing of the input-facing code with libFuzzer (swiftc -sanitize=fuzzer,address).
#
#   Tests/Fuzz/fuzz.sh build                 build the three targets into .build/fuzz/
#   Tests/Fuzz/fuzz.sh run SECONDS [TARGET…]  build, then fuzz each target for SECONDS (default: all)
#   Tests/Fuzz/fuzz.sh repro TARGET FILE…    run a target once on saved inputs (a crash to replay)
#
# Targets: message (LineSplitter, Message.decode, re-encode/decode round trip), partial
# (DocumentEvent and MessageHeader agree with Message.decode), ot (TextOperation decoding, apply,
# invert, transform, compose, the sequencer, cursors). The properties are in
# Tests/CollabProtocolTests/FuzzChecks.swift, shared with the seeded fuzz tests of `swift test`.
#
# Seeds come from Tests/Fuzz/corpus/TARGET (checked in: hand-written hostile lines and every input
# that once crashed); what libFuzzer learns goes to .build/fuzz/corpus/TARGET, crash inputs to
# .build/fuzz/artifacts/. Exit status 1 when a target crashed, leaked, timed out or ran out of memory.
#
# The library is built by SwiftPM with the sanitizer flags in its own scratch directory, so
# the package's normal build is untouched; the entry point is linked against its objects.
set -euo pipefail
cd "$(dirname "$0")/../.."

out=.build/fuzz
mkdir -p "$out"
# Swift's own crash backtracer waits on the crashed process and hangs under libFuzzer/ASan.
export SWIFT_BACKTRACE=enable=no
spm=$out/spm/release
targets_all=(message partial ot)
# libFuzzer limits: an input taking more than 10 s is a hang, more than 2 GB a memory blow-up;
# inputs up to 64 KiB, so quadratic paths show up as slow units rather than hide in tiny inputs.
fuzz_flags=(-timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1)

build() {
    swift build -c release --target CollabProtocol --scratch-path "$out/spm" \
        -Xswiftc -sanitize=fuzzer,address -Xswiftc -g >"$out/build.log" 2>&1 ||
        { grep -v 'prohibited flag' "$out/build.log" >&2; return 1; }
    local objects=()
    for module in CollabProtocol CollabOT _RopeModule InternalCollectionsUtilities; do
        objects+=("$spm/$module.build/"*.o)
    done
    for target in "${targets_all[@]}"; do
        local define
        define=FUZZ_$(echo "$target" | tr a-z A-Z)
        swiftc -O -g -sanitize=fuzzer,address -parse-as-library -D "$define" \
            -I "$spm/Modules" -module-name CollabFuzz \
            Tests/Fuzz/FuzzMain.swift Tests/CollabProtocolTests/FuzzChecks.swift "${objects[@]}" \
            -o "$out/fuzz-$target" 2> >(grep -v "Cannot export local symbol '__asan" >&2)
    done
}

run() {
    local seconds=$1; shift
    local targets=("$@")
    [ ${#targets[@]} -gt 0 ] || targets=("${targets_all[@]}")
    mkdir -p "$out/artifacts"
    local status=0
    for target in "${targets[@]}"; do
        mkdir -p "$out/corpus/$target"
        echo "fuzz-$target: ${seconds}s"
        if ! "$out/fuzz-$target" "${fuzz_flags[@]}" -max_total_time="$seconds" \
            -artifact_prefix="$out/artifacts/$target-" \
            "$out/corpus/$target" "Tests/Fuzz/corpus/$target" 2>"$out/fuzz-$target.log"; then
            status=1
            echo "fuzz-$target failed; the end of $out/fuzz-$target.log:" >&2
            tail -n 40 "$out/fuzz-$target.log" >&2
        fi
        grep -E '^(#[0-9]+.*DONE|stat::number_of_executed_units|stat::average_exec_per_sec)' "$out/fuzz-$target.log" || true
    done
    return $status
}

case "${1:-}" in
    build) build ;;
    run) build; shift; run "${1:-60}" "${@:2}" ;;
    repro) build; target=$2; shift 2; "$out/fuzz-$target" -timeout=10 -rss_limit_mb=2048 "$@" ;;
    *) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
