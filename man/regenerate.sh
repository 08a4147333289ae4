#!/usr/bin/env bash
# Regenerates the man pages of the tools (section 1) and their shell completions from the
# argument parsers, so --help, man pages and completions never disagree.
# collab-protocol.7 is written by hand and left alone.
# Usage: man/regenerate.sh      Environment: COLLAB_SCRATCH (build directory, default .build-docs).
set -euo pipefail
cd "$(dirname "$0")/.."
scratch=${COLLAB_SCRATCH:-.build-docs}
# The plugin builds the package in release mode and writes one page per executable product.
swift package --scratch-path "$scratch" --allow-writing-to-package-directory \
    generate-manual --date "$(date +%Y-%m-%d)" --authors "collab developers" --output-directory man >/dev/null
for dir in Sources/collab-*; do
    p=$(basename "$dir")
    bin=$scratch/release/$p
    # Flat, one file per shell, named as each shell's completion directory expects:
    # bash-completion loads NAME(.bash), zsh's fpath _NAME, fish NAME.fish.
    "$bin" --generate-completion-script bash > "completions/$p.bash"
    "$bin" --generate-completion-script zsh > "completions/_$p"
    "$bin" --generate-completion-script fish > "completions/$p.fish"
    echo "man/$p.1 completions/$p.bash completions/_$p completions/$p.fish"
done
