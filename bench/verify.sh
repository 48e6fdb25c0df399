#!/usr/bin/env bash
# Benchmark: `vpartclone -c` against `partclone.chkimg` and the Python imagebackup 0.2.2
# (`vpartclone -c` from PyPI) on a >= 1 GiB partclone image, in one run on the same machine,
# with a warm and then a cold page cache (dropped before each run), plus a zstd -T0 copy
# (ours reads it directly; partclone needs `zstd -dc | partclone.chkimg -s -`). Prints wall
# and user+sys CPU seconds (median of RUNS runs, with min-max) and the ratios. partclone's
# wall time is padded by its progress thread, so the fair comparison is against its
# user+sys CPU time.
#
#   bash bench/verify.sh [WORKDIR]     (root; needs partclone, e2fsprogs)
#
# Environment: SIZE_MIB (fs size, default 1600), DATA_MIB (random data, default 1200),
# RUNS (default 3), RUNS_PY (default 1; the Python tool is slow), PYVENV (a venv with
# imagebackup; made in WORKDIR if missing: needs libfuse3-dev and pkg-config to build).
set -Eeuo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-/tmp/imagebackup-bench}
SIZE_MIB=${SIZE_MIB:-1600}
DATA_MIB=${DATA_MIB:-1200}
RUNS=${RUNS:-3}
RUNS_PY=${RUNS_PY:-1}
mkdir -p "$WORK"
cargo build --release -q --bin vpartclone
BIN=$PWD/target/release/vpartclone

IMG=$WORK/ext4-bench.pc
if [ ! -s "$IMG" ]; then
    echo "building a ${SIZE_MIB} MiB ext4 with ${DATA_MIB} MiB of files ..." >&2
    rm -rf "$WORK/src" && mkdir -p "$WORK/src/d"
    for i in $(seq 1 $((DATA_MIB / 100))); do
        head -c 100M /dev/urandom > "$WORK/src/d/rand$i.bin"
    done
    truncate -s "${SIZE_MIB}M" "$WORK/fs.raw"
    mkfs.ext4 -q -F -d "$WORK/src" "$WORK/fs.raw"
    rm -rf "$WORK/src"
    partclone.ext4 -c -f 0 -s "$WORK/fs.raw" -O "$IMG" >/dev/null 2>&1
    rm -f "$WORK/fs.raw"
fi
SIZE=$(stat -c %s "$IMG")

# time_cmd CMD... -> prints "wall cpu" (seconds; cpu = user+sys of the command)
time_cmd() {
    local out; out=$(mktemp)
    /usr/bin/time -o "$out" -f "%e %U %S" "$@" >/dev/null 2>&1 || { echo "command failed: $*" >&2; exit 1; }
    awk '{printf "%s %s\n", $1, $2 + $3}' "$out"
    rm -f "$out"
}

# stats LIST -> "median min max"
stats() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {printf "%.3f %.3f %.3f\n", a[int((NR+1)/2)], a[1], a[NR]}'; }

# CACHE=warm (default): the image is read into the page cache once before the runs;
# CACHE=cold: the page cache is dropped before every run (needs root), so the disk counts.
measure() {
    local name=$1; shift
    local walls=() cpus=()
    [ "${CACHE:-warm}" = cold ] || cat "$IMG" "$IMG.zst" >/dev/null   # warm page cache
    for _ in $(seq "$RUNS"); do
        if [ "${CACHE:-warm}" = cold ]; then sync; echo 3 >/proc/sys/vm/drop_caches; fi
        read -r w c < <(time_cmd "$@")
        walls+=("$w"); cpus+=("$c")
    done
    read -r wm wl wh < <(stats "${walls[@]}")
    read -r cm cl ch < <(stats "${cpus[@]}")
    printf '%-28s wall %7.3f s (%.3f-%.3f)  user+sys %7.3f s (%.3f-%.3f)  %8.1f MB/s wall\n' \
        "$name" "$wm" "$wl" "$wh" "$cm" "$cl" "$ch" "$(echo "$SIZE / $wm / 1000000" | bc -l)" >&2
    echo "$wm $cm"
}

PYVENV=${PYVENV:-$WORK/pyvenv}
if [ ! -x "$PYVENV/bin/vpartclone" ]; then
    echo "installing the Python imagebackup into $PYVENV ..." >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libfuse3-dev pkg-config >/dev/null
    python3 -m venv "$PYVENV"
    "$PYVENV/bin/pip" install -q imagebackup
fi

[ -s "$IMG.zst" ] || zstd -q -T0 -c "$IMG" >"$IMG.zst"
chk_zst() { zstd -q -dc "$IMG.zst" | partclone.chkimg -f 0 -s - >/dev/null 2>&1; }
export -f chk_zst; export IMG

ratio() { echo "$1 / $2" | bc -l; }
for CACHE in warm cold; do
    export CACHE
    echo "== $CACHE page cache: image $IMG ($SIZE bytes), $RUNS runs each ($RUNS_PY for Python)" >&2
    read -r ours_wall ours_cpu < <(measure "vpartclone -c -q" "$BIN" -c -q "$IMG")
    read -r pc_wall pc_cpu < <(measure "partclone.chkimg" partclone.chkimg -f 0 -s "$IMG")
    read -r py_wall py_cpu < <(RUNS=$RUNS_PY measure "python vpartclone -c" "$PYVENV/bin/vpartclone" -c -q "$IMG")
    read -r zo_wall zo_cpu < <(measure "vpartclone -c -q IMG.zst" "$BIN" -c -q "$IMG.zst")
    read -r zc_wall zc_cpu < <(measure "zstd -dc | partclone.chkimg" bash -c chk_zst)
    printf '%s: partclone.chkimg user+sys / vpartclone wall = %.1fx; chkimg wall / vpartclone wall = %.1fx\n' \
        "$CACHE" "$(ratio "$pc_cpu" "$ours_wall")" "$(ratio "$pc_wall" "$ours_wall")"
    printf '%s: python imagebackup wall / vpartclone wall = %.1fx\n' "$CACHE" "$(ratio "$py_wall" "$ours_wall")"
    printf '%s: zstd -T0 copy: (zstd -dc | chkimg) wall / vpartclone wall = %.1fx\n' \
        "$CACHE" "$(ratio "$zc_wall" "$zo_wall")"
done
