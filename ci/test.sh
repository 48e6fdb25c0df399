#!/usr/bin/env bash
# The project's test command (see README): unit tests, committed real-tool fixtures,
# CLI behaviour, and the end-to-end suite that builds fresh images with the real tools
# (root, loop devices and the Debian packages listed in .ci/run).
set -Eeuo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace -- --include-ignored
