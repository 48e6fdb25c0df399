#!/usr/bin/env bash
# Benchmark: random access into compressed images (what `-m` does with a .gz/.zst/.xz/... image).
#
#   bash bench/compressed.sh [WORKDIR]   (root for the source image; default WORKDIR
#                                         /tmp/imagebackup-bench-compressed)
#
# Source: IMAGE=path (any partclone/ntfsclone/partimage image), else bench/mount.sh's
# ext4.pc if it exists, else a partclone.ext4 image of a 1 GiB ext4 holding ~450 MB of /usr
# (built once, reused).
# Compresses it the way Clonezilla and users do: pigz -p 2, gzip, zstd -T0, zstd --single-thread,
# lz4, and, on the first SLOW_MB MiB only (they are slow to make), xz -T0, xz, bzip2, lzma.
# Prints, in one run, per file:
#   - the real tool's `-dc > /dev/null` time (median of RUNS) and our plain streaming decode;
#   - the index pass time (what `-m` spends before mounting) and plain/index ratio (target
#     >= 0.8);
#   - restart points and index memory;
#   - (bench/index.sh) the index pass on 1 thread and on all cores, min-max of RUNS, against
#     the real decoder, and loading the saved index instead;
#   - random 4 KiB read latency p50/p99/max over 1000 uniform offsets, cold decoder cache
#     (target p99 <= 10 ms for gzip and zstd), and sequential MB/s through the index.
# Environment: RUNS (default 3), SLOW_MB (default 200), READS (default 1000).
set -Eeuo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."
REPO=$PWD
WORK=${1:-/tmp/imagebackup-bench-compressed}
RUNS=${RUNS:-3}
SLOW_MB=${SLOW_MB:-200}
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
trap 'echo "compressed.sh: failed at line $LINENO: $BASH_COMMAND" >&2' ERR

say() { echo "== $*" >&2; }
need() { command -v "$1" >/dev/null || { echo "missing tool: $1 (Debian: zstd pigz xz-utils bzip2 lz4 partclone e2fsprogs)" >&2; exit 1; }; }
for t in pigz gzip zstd xz bzip2 lz4 awk; do need "$t"; done

say "building seekbench (release)"
cargo build --release -q -p imagebackup-reader --features testing --example seekbench
SEEKBENCH=$REPO/target/release/examples/seekbench

# ---------------------------------------------------------------- source image
SRC=${IMAGE:-}
if [ -z "$SRC" ] && [ -f /tmp/imagebackup-bench-mount/ext4.pc ]; then
    SRC=/tmp/imagebackup-bench-mount/ext4.pc
fi
if [ -z "$SRC" ]; then
    SRC=$WORK/ext4.pc
    if [ ! -f "$SRC" ]; then
        [ "$(id -u)" = 0 ] || { echo "building the source image needs root (loop mount)" >&2; exit 1; }
        for t in mkfs.ext4 partclone.ext4 losetup; do need "$t"; done
        say "building a 1 GiB ext4 with ~450 MB of /usr and its partclone image"
        raw=$WORK/ext4.raw
        rm -f "$raw"; truncate -s 1G "$raw"
        mkfs.ext4 -q -F -L bench "$raw"
        mnt=$WORK/mnt; mkdir -p "$mnt"
        mount -o loop "$raw" "$mnt"
        # Varied real files (libraries, text, images): the first ~450 MB of /usr's tar stream;
        # tar complains about the cut at the end, after extracting everything before it.
        (cd /usr && tar cf - lib share 2>/dev/null) | head -c 450M | (cd "$mnt" && tar xf - 2>/dev/null) || true
        df -h "$mnt" | tail -1 >&2
        umount "$mnt"
        partclone.ext4 -c -q -s "$raw" -o "$SRC" >/dev/null 2>&1 </dev/null
        rm -f "$raw"
    fi
fi
say "source: $SRC ($(stat -c %s "$SRC") bytes)"

# ---------------------------------------------------------------- compressed copies
make() { # NAME CMD...: compress SRC (or its head) into WORK/NAME once
    local name=$1
    shift
    [ -s "$WORK/$name" ] && return
    say "making $name"
    "$@" >"$WORK/$name.tmp"
    mv "$WORK/$name.tmp" "$WORK/$name"
}
head_src() { head -c $((SLOW_MB << 20)) "$SRC"; }
make pigz.gz pigz -n -p 2 -c "$SRC"
make gzip.gz gzip -n -c "$SRC"
make zstd-T0.zst zstd -q -T0 -c "$SRC"
make zstd-st.zst zstd -q --single-thread -c "$SRC"
make lz4.lz4 lz4 -q -c "$SRC"
make xz-T0.xz sh -c "head -c $((SLOW_MB << 20)) '$SRC' | xz -T0 -c"
make xz-T1.xz sh -c "head -c $((SLOW_MB << 20)) '$SRC' | xz -T1 -c"
make bzip2.bz2 sh -c "head -c $((SLOW_MB << 20)) '$SRC' | bzip2 -c"
make lzma.lzma sh -c "head -c $((SLOW_MB << 20)) '$SRC' | xz --format=lzma -c"
FILES=(pigz.gz gzip.gz zstd-T0.zst zstd-st.zst lz4.lz4 xz-T0.xz xz-T1.xz bzip2.bz2 lzma.lzma)

# ---------------------------------------------------------------- the real tools' decode
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
tool_of() {
    case $1 in
    *.gz) echo "gzip -dc" ;; *.zst) echo "zstd -q -dc" ;; *.xz) echo "xz -dc" ;;
    *.bz2) echo "bzip2 -dc" ;; *.lz4) echo "lz4 -q -dc" ;; *.lzma) echo "xz --format=lzma -dc" ;;
    esac
}
declare -A TOOL_S
for f in "${FILES[@]}"; do
    cat "$WORK/$f" >/dev/null # warm the page cache: measure decoders, not the disk
    cmd=$(tool_of "$f")
    times=()
    for _ in $(seq "$RUNS"); do
        s=$(date +%s.%N)
        $cmd "$WORK/$f" >/dev/null
        e=$(date +%s.%N)
        times+=("$(echo "$e - $s" | bc)")
    done
    TOOL_S[$f]=$(printf '%s\n' "${times[@]}" | median)
    say "$cmd $f: ${TOOL_S[$f]} s"
done

# ---------------------------------------------------------------- ours
say "seekbench (plain decode, index pass, random 4 KiB reads, sequential read)"
OUT=$WORK/seekbench.txt
(cd "$WORK" && "$SEEKBENCH" "${FILES[@]}") | tee "$OUT"

echo
echo "index pass vs the real tool's decode (same file, warm page cache, tool median of $RUNS):"
printf '%-16s %10s %10s %12s\n' file "tool s" "index s" "tool/index"
awk 'NR > 1 {print $1, $6}' "$OUT" | while read -r f idx; do
    t=${TOOL_S[$f]}
    printf '%-16s %10.2f %10.2f %12.2f\n' "$f" "$t" "$idx" "$(echo "$t / $idx" | bc -l)"
done

echo
say "index pass on 1 thread and all cores, and the saved index (bench/index.sh)"
(cd "$WORK" && RUNS=$RUNS bash "$REPO/bench/index.sh" "${FILES[@]/#/$WORK/}")
