#!/usr/bin/env bash
# Benchmark: random 4 KiB read latency as images grow, simulated with the index memory budget.
#
#   bash bench/scale.sh FILE...    (compressed images, e.g. bench/compressed.sh's copies)
#
# A memory budget of B KiB holds as many restart points for a FILE of N GB as the default
# 64 MiB does for an image of N * 65536 / B GB: for the 0.93 GB ext4 image, 4096 KiB stands for
# ~15 GB, 1024 KiB for ~60 GB and 128 KiB for ~480 GB. Per file and budget (BUDGETS, KiB,
# default "65536 4096 1024 128"), seekbench's random-read p50/p99/max (READS reads, default
# 1000, cold span cache) with the index held in memory (no index cache: `--no-index-cache`)
# and with the index saved to and loaded from a cache directory (the tools' default), where
# windows and prefixes stay on disk and only offsets count against the budget; and the saved
# file's size per GB of decoded image.
set -Eeuo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."
BUDGETS=${BUDGETS:-65536 4096 1024 128}
[ $# -gt 0 ] || { echo "usage: bench/scale.sh FILE..." >&2; exit 2; }
trap 'echo "scale.sh: failed at line $LINENO: $BASH_COMMAND" >&2' ERR

cargo build --release -q -p imagebackup-reader --features testing --example seekbench
SEEKBENCH=$PWD/target/release/examples/seekbench
CACHE=$(mktemp -d)
trap 'rm -rf "$CACHE"' EXIT

printf '%-20s %9s %9s %-24s %-24s %s\n' file "budget" "~image GB" "in memory: pts p50/p99" "saved: pts p50/p99" "saved MiB/GB"
for f in "$@"; do
    cat "$f" >/dev/null # warm the page cache: measure decoding, not the disk
    for kib in $BUDGETS; do
        # seekbench's columns: file codec in out plain index ratio points idx-MiB reads p50 p99 max seq
        read -r _ _ _ out _ _ _ pts _ _ p50 p99 _ _ < <(MEMORY_KIB=$kib PLAIN=0 SEQ=0 "$SEEKBENCH" "$f" | tail -1)
        rm -rf "${CACHE:?}"/*
        read -r _ _ _ _ _ _ _ spts saved _ sp50 sp99 _ _ < <(INDEX_CACHE=$CACHE MEMORY_KIB=$kib PLAIN=0 SEQ=0 "$SEEKBENCH" "$f" | tail -1)
        gb=$(echo "scale=4; $out / 1000" | bc)
        printf '%-20s %8sK %9.1f %-24s %-24s %.1f\n' "$(basename "$f")" "$kib" \
            "$(echo "$gb * 65536 / $kib" | bc -l)" "$pts $p50/$p99" "$spts $sp50/$sp99" \
            "$(echo "$saved / $gb" | bc -l)"
    done
done
