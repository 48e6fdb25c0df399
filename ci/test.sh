#!/usr/bin/env bash
# The project's test command (see README): unit tests, committed real-tool fixtures,
# CLI behaviour, hostile input, mounting, and the end-to-end suite that builds fresh
# images with the real tools (root, loop devices, /dev/fuse and the Debian packages
# listed in .ci/run). Ends with one summary line over every test binary.
set -Eeuo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp)
# Mounts of compressed images save their index under $XDG_CACHE_HOME: the tests
# neither read a saved index left by anything else nor leave theirs behind.
XDG_CACHE_HOME=$(mktemp -d)
export XDG_CACHE_HOME
trap 'rm -f "$log"; rm -rf "$XDG_CACHE_HOME"' EXIT
rc=0
cargo test --workspace -- --include-ignored 2>&1 | tee "$log" || rc=$?
passed=$(grep -oE '^test result: .* ([0-9]+) passed' "$log" | grep -oE '[0-9]+ passed' | awk '{s+=$1} END {print s+0}')
failed=$(grep -oE '[0-9]+ failed;' "$log" | awk '{s+=$1} END {print s+0}')
echo "tests: $passed passed, $failed failed"
exit "$rc"
