#!/usr/bin/env bash
# Benchmark: the index pass of compressed images (what `-m` spends before mounting) on one
# thread and on all cores, against the real decoder, and the saved index that replaces it.
#
#   bash bench/index.sh FILE...    (compressed images; bench/compressed.sh calls it on its copies)
#
# Per file, min-max over RUNS runs (default 3), warm page cache:
#   - the real tool's decode to /dev/null: gzip -dc (and pigz -dc), zstd -dc, xz -dc -T0,
#     bzip2 -dc (and lbzip2 -dc if installed), lz4 -dc, xz --format=lzma -dc;
#   - our index pass on 1 thread and on all cores (IndexOptions::threads), and the speed-up;
#   - loading the saved index instead (what a second mount of the same image does), and the
#     saved file's size per GB of decoded image.
# The machine may be shared: the min-max spread shows how much that disturbed the runs.
set -Eeuo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
[ $# -gt 0 ] || { echo "usage: bench/index.sh FILE..." >&2; exit 2; }
trap 'echo "index.sh: failed at line $LINENO: $BASH_COMMAND" >&2' ERR

cargo build --release -q -p imagebackup-reader --example indexbench
INDEXBENCH=$PWD/target/release/examples/indexbench

tools_of() {
    case $1 in
    *.gz) echo "gzip -dc"; echo "pigz -dc" ;;
    *.zst) echo "zstd -q -dc" ;;
    *.xz) echo "xz -dc -T0" ;;
    *.bz2) echo "bzip2 -dc"; echo "lbzip2 -dc" ;;
    *.lz4) echo "lz4 -q -dc" ;;
    *.lzma) echo "xz --format=lzma -dc" ;;
    esac
}
# minmax CMD FILE: "lo hi" seconds over RUNS runs.
minmax() {
    local cmd=$1 file=$2 lo=1000000 hi=0 s e t
    for _ in $(seq "$RUNS"); do
        s=$(date +%s.%N)
        $cmd "$file" >/dev/null
        e=$(date +%s.%N)
        t=$(echo "$e - $s" | bc)
        lo=$(echo "if ($t < $lo) $t else $lo" | bc)
        hi=$(echo "if ($t > $hi) $t else $hi" | bc)
    done
    echo "$lo $hi"
}

declare -A TOOL
for f in "$@"; do
    cat "$f" >/dev/null # warm the page cache: measure decoders, not the disk
    line=
    while read -r cmd; do
        command -v "${cmd%% *}" >/dev/null || continue
        read -r lo hi < <(minmax "$cmd" "$f")
        line+=$(printf '%s %.2f-%.2f; ' "${cmd%% *}" "$lo" "$hi")
    done < <(tools_of "$f")
    TOOL[$f]=$line
done

OUT=$(mktemp)
RUNS=$RUNS "$INDEXBENCH" "$@" | tee "$OUT"
echo
echo "index pass (all cores) against the real decoder (s, min-max of $RUNS; $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)):"
printf '%-20s %-44s %-13s %-13s %-9s %-13s %s\n' file "tool -dc" "1 thread" "all cores" speed-up "load saved" "saved MiB per GB decoded"
i=0
for f in "$@"; do
    i=$((i + 1))
    row=$(sed -n "$((i + 1))p" "$OUT")
    read -r name _ out one all speed load saved <<<"$row"
    per_gb=$(printf '%.2f' "$(echo "scale=4; $saved * 1000 / $out" | bc)")
    printf '%-20s %-44s %-13s %-13s %-9s %-13s %s\n' "$name" "${TOOL[$f]}" "$one" "$all" "$speed" "$load" "$per_gb"
done
rm -f "$OUT"
