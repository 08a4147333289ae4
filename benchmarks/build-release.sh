# Sourced by the benchmark scripts: builds the named products in release mode into
# $COLLAB_SCRATCH (default .build-bench) and sets `bin` to where they are. The build log is shown
# only when the build fails, so a benchmark's output stays its table.
scratch=${COLLAB_SCRATCH:-.build-bench}
bin="$scratch/release"
build_release() {
    local product log
    for product in "$@"; do
        if ! log=$(swift build -c release --scratch-path "$scratch" --product "$product" 2>&1); then
            echo "$log" >&2
            exit 1
        fi
    done
}
