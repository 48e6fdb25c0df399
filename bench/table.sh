#!/usr/bin/env bash
# Benchmark: one table for issue #14 (speed round 2): every reader of the mounted virtual
# partition against the same reader of the restored raw file, and, for compressed copies, the
# index pass and sequential reads against the real decoder, re-mounts with the saved index, and
# random 4 KiB reads under 16 concurrent readers.
#
#   bash bench/table.sh [WORKDIR]     (root: loop mounts, and the source image is built with
#                                      mkfs.ext4 + partclone.ext4 unless IMAGE is given; needs
#                                      partclone, e2fsprogs, fuse3, fio, qemu-utils, zstd, pigz,
#                                      xz-utils, bzip2, lz4; default WORKDIR
#                                      /tmp/imagebackup-bench-table)
#
# Source: IMAGE=path (a partclone image), else bench/mount.sh's ext4.pc if it exists, else a
# partclone.ext4 image of a 2 GiB ext4 holding ~650 MB of /usr (built once, reused). Its real
# restore (partclone.restore into a zeroed file) is the raw reference. Copies: zstd -T0,
# zstd --single-thread, gzip, xz -T0, bzip2, lz4 (made once, reused).
#
# Every measurement is paired: each run times the reference, then ours on a fresh mount (the
# daemon's start is not timed), with the image, the raw file and the compressed copy in the page
# cache; a row prints the reference's and our min-max seconds over RUNS runs and the min-max of
# the per-run ratios ours/reference (1.00 = as fast). Rows:
#   plain image   dd bs=32K / 128K / 1M, cat, cp, sha256sum, qemu-img convert -O raw, and a
#                 loop mount + tar of every file: reference = the raw file;
# Each image's mounted bytes are first compared with the restore (cmp).
#   every image   random 4 KiB reads: fio, 16 jobs, psync, RANDOM_SECS seconds, p50 / p99 ms
#                 (reference = the raw file's, through the page cache);
#   compressed    first mount (the index pass, saved index removed) against the real decoder's
#                 `-dc > /dev/null`; re-mount with the saved index (command -> mounted); dd bs=1M
#                 and bs=32K of the partition against the real decoder; loop mount + tar against
#                 the raw file.
#
# Environment: RUNS (default 3), RANDOM_SECS (default 8), CODECS (default
# "zst zst-st gz xz bz2 lz4"), ROWS_PLAIN=0 to skip the plain image's sequential rows, PREPARE=1
# to only build the image, its restore and its copies (slow: xz and bzip2) and stop.
set -Eeuo pipefail
shopt -s inherit_errexit
export LC_ALL=C
cd "$(dirname "$0")/.."
REPO=$PWD
WORK=${1:-/tmp/imagebackup-bench-table}
RUNS=${RUNS:-3}
RANDOM_SECS=${RANDOM_SECS:-8}
CODECS=${CODECS:-zst zst-st gz xz bz2 lz4}
ROWS_PLAIN=${ROWS_PLAIN:-1}
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
MNT=$WORK/mnt
LOOPMNT=$WORK/loopmnt
CACHE=$WORK/index-cache
mkdir -p "$MNT" "$LOOPMNT" "$CACHE"
trap 'echo "table.sh: failed at line $LINENO: $BASH_COMMAND" >&2; cleanup' ERR
trap cleanup EXIT

say() { echo "== $*" >&2; }
need() { command -v "$1" >/dev/null || { echo "missing tool: $1" >&2; exit 1; }; }
for t in partclone.restore fio qemu-img zstd pigz xz bzip2 lz4 sha256sum losetup bc; do need "$t"; done
[ "$(id -u)" = 0 ] || { echo "table.sh needs root (loop mounts)" >&2; exit 1; }

# The loop device in use, in a file: loop_tar runs in the subshells that time it.
LOOPFILE=$WORK/loop-device
cleanup() {
    if mountpoint -q "$LOOPMNT"; then umount "$LOOPMNT" || true; fi
    if [ -s "$LOOPFILE" ]; then losetup -d "$(cat "$LOOPFILE")" 2>/dev/null || true; fi
    rm -f "$LOOPFILE"
    if mountpoint -q "$MNT"; then umount "$MNT" || true; fi
}

say "building the tools (release)"
cargo build --release -q -p imagebackup-cli --bins
VPC=$REPO/target/release/vpartclone

# ---------------------------------------------------------------- source image and copies
SRC=${IMAGE:-}
if [ -z "$SRC" ] && [ -f /tmp/imagebackup-bench-mount/ext4.pc ]; then
    SRC=/tmp/imagebackup-bench-mount/ext4.pc
fi
if [ -z "$SRC" ]; then
    SRC=$WORK/ext4.pc
    if [ ! -f "$SRC" ]; then
        for t in mkfs.ext4 partclone.ext4; do need "$t"; done
        say "building a 2 GiB ext4 with ~650 MB of /usr and its partclone image"
        raw=$WORK/build.raw
        rm -f "$raw"; truncate -s 2G "$raw"
        mkfs.ext4 -q -F -L bench "$raw"
        mount -o loop "$raw" "$LOOPMNT"
        # Varied real files; tar complains about the cut at the end, after extracting the rest.
        (cd /usr && tar cf - lib share 2>/dev/null) | head -c 650M | (cd "$LOOPMNT" && tar xf - 2>/dev/null) || true
        umount "$LOOPMNT"
        partclone.ext4 -c -q -s "$raw" -o "$SRC.tmp" >/dev/null 2>&1 </dev/null
        mv "$SRC.tmp" "$SRC"
        rm -f "$raw"
    fi
fi
RAW=$WORK/restored.raw
if [ ! -s "$RAW" ] || [ "$RAW" -ot "$SRC" ]; then
    say "restoring $SRC with partclone.restore (the raw reference)"
    size=$("$VPC" --json "$SRC" | python3 -c 'import json,sys; print(json.load(sys.stdin)["partition_size"])')
    rm -f "$RAW"; truncate -s "$size" "$RAW"
    partclone.restore -q -C -s "$SRC" -O "$RAW" >"$WORK/restore.log" 2>&1 </dev/null
fi
copy() { # NAME CMD...: a compressed copy of SRC, made once
    local name=$1
    shift
    [ -s "$WORK/$name" ] && [ "$WORK/$name" -nt "$SRC" ] && return
    say "making $name"
    "$@" <"$SRC" >"$WORK/$name.tmp"
    mv "$WORK/$name.tmp" "$WORK/$name"
}
declare -A FILE DECODER
FILE[zst]=img.zst;       DECODER[zst]="zstd -q -dc"
FILE[zst-st]=img-st.zst; DECODER[zst-st]="zstd -q -dc"
FILE[gz]=img.gz;         DECODER[gz]="gzip -dc"
FILE[xz]=img.xz;         DECODER[xz]="xz -dc -T0"
FILE[bz2]=img.bz2;       DECODER[bz2]="bzip2 -dc"
FILE[lz4]=img.lz4;       DECODER[lz4]="lz4 -q -dc"
for c in $CODECS; do
    case $c in
    zst) copy img.zst zstd -q -T0 -c ;;
    zst-st) copy img-st.zst zstd -q --single-thread -c ;;
    gz) copy img.gz gzip -n -c ;;
    xz) copy img.xz xz -T0 -c ;;
    bz2) copy img.bz2 bzip2 -c ;;
    lz4) copy img.lz4 lz4 -q -c ;;
    *) echo "unknown codec $c" >&2; exit 2 ;;
    esac
done

[ "${PREPARE:-0}" = 1 ] && { say "prepared in $WORK"; exit 0; }

# ---------------------------------------------------------------- measuring
warm() { cat "$@" >/dev/null; }
ms() { # CMD...: runs it, prints its wall time in ms
    local s e
    s=$(date +%s%N)
    "$@" >/dev/null 2>&1
    e=$(date +%s%N)
    echo $(((e - s) / 1000000))
}
mount_image() { # IMAGE [extra flags]: fresh mount, prints the virtual partition's path
    cleanup
    "$VPC" -q --index-cache-dir "$CACHE" "$@" -m "$MNT" >/dev/null 2>"$WORK/mount.err" </dev/null
    echo "$MNT/$(ls "$MNT")"
}
loop_tar() { # FILE: loop-mount it read-only, tar every file to a pipe, undo
    local loop
    loop=$(losetup -r -f --show "$1")
    echo "$loop" >"$LOOPFILE"
    mount -o ro,noload "$loop" "$LOOPMNT"
    (cd "$LOOPMNT" && tar cf - . | cat >/dev/null)
    umount "$LOOPMNT"
    losetup -d "$loop"
    rm -f "$LOOPFILE"
}
qemu_convert() { qemu-img convert -f raw -O raw "$1" "$WORK/convert.out"; rm -f "$WORK/convert.out"; }
read_with() { # WHAT FILE
    case $1 in
    dd32K) dd if="$2" of=/dev/null bs=32K ;;
    dd128K) dd if="$2" of=/dev/null bs=128K ;;
    dd1M) dd if="$2" of=/dev/null bs=1M ;;
    cat) cat "$2" ;;
    cp) cp "$2" /dev/null ;;
    sha256sum) sha256sum "$2" ;;
    qemu-img) qemu_convert "$2" ;;
    tar) loop_tar "$2" ;;
    esac
}
# Min-max of a list of numbers, formatted with FMT.
range() { # FMT NUMBERS...
    local fmt=$1
    shift
    printf '%s\n' "$@" | sort -g | awk -v f="$fmt" 'NR==1{lo=$1} {hi=$1} END{printf f "-" f, lo, hi}'
}
row() { # IMAGE-LABEL READER REF-LABEL "ref ms..." "ours ms..."
    local -a ref ours ratio
    read -ra ref <<<"$4"
    read -ra ours <<<"$5"
    ratio=()
    for i in "${!ref[@]}"; do ratio+=("$(echo "${ours[$i]} / ${ref[$i]}" | bc -l)"); done
    printf '| %-8s | %-22s | %-18s | %-13s | %-13s | %-11s |\n' "$1" "$2" "$3" \
        "$(range %.3f "${ref[@]/%/e-3}")" "$(range %.3f "${ours[@]/%/e-3}")" "$(range %.2f "${ratio[@]}")" >>"$TABLE"
}
fio_p() { # FILE: p50 and p99 (ms) of random 4 KiB reads, 16 jobs
    fio --name=r --filename="$1" --readonly --rw=randread --bs=4k --ioengine=psync --numjobs=16 \
        --time_based --runtime="$RANDOM_SECS" --group_reporting --output-format=json 2>/dev/null |
        python3 -c 'import json,sys
j=json.load(sys.stdin)["jobs"][0]["read"]
p=j["clat_ns"]["percentile"]
print("%.3f %.3f %d" % (p["50.000000"]/1e6, p["99.000000"]/1e6, j["iops"]))'
}
TABLE=$WORK/table.md
: >"$TABLE"
printf '| image    | reader                 | reference          | reference s   | ours s        | ours/ref    |\n' >>"$TABLE"
printf '|---|---|---|---|---|---|\n' >>"$TABLE"
RANDOM_ROWS=$WORK/random.md
: >"$RANDOM_ROWS"

# Ours must be the restore before it is timed.
same_bytes() { # IMAGE
    local part
    part=$(mount_image "$1")
    cmp "$part" "$RAW" || { echo "table.sh: $1 mounted differs from the restore" >&2; exit 1; }
    cleanup
}

say "warming the page cache"
warm "$SRC" "$RAW"
same_bytes "$SRC"

if [ "$ROWS_PLAIN" = 1 ]; then
    for what in dd32K dd128K dd1M cat cp sha256sum qemu-img tar; do
        ref=() ours=()
        for _ in $(seq "$RUNS"); do
            ref+=("$(ms read_with "$what" "$RAW")")
            part=$(mount_image "$SRC")
            ours+=("$(ms read_with "$what" "$part")")
            cleanup
        done
        row plain "$what" "raw file" "${ref[*]}" "${ours[*]}"
        say "plain $what: raw ${ref[*]} ms, ours ${ours[*]} ms"
    done
fi

random_row() { # LABEL FILE-OR-PARTITION REFERENCE-TEXT
    local -a p50 p99 iops
    local a b c
    for _ in $(seq "$RUNS"); do
        local part=$2
        if [ "$2" != "$RAW" ]; then part=$(mount_image "$2"); fi
        read -r a b c < <(fio_p "$part")
        p50+=("$a") p99+=("$b") iops+=("$c")
        cleanup
    done
    printf '| %-8s | %-13s | %-13s | %-11s | %s |\n' "$1" "$(range %.2f "${p50[@]}")" \
        "$(range %.2f "${p99[@]}")" "$(range %.0f "${iops[@]}")" "$3" >>"$RANDOM_ROWS"
    say "random $1: p50 ${p50[*]} p99 ${p99[*]} iops ${iops[*]}"
}
random_row "raw file" "$RAW" "page cache"
random_row plain "$SRC" "raw file above"

for c in $CODECS; do
    f=$WORK/${FILE[$c]}
    warm "$f"
    same_bytes "$f"
    dec=${DECODER[$c]}
    # First mount (index pass; no saved index) and re-mount (saved index), against the decoder.
    dref=() first=() again=()
    for _ in $(seq "$RUNS"); do
        dref+=("$(ms sh -c "$dec '$f' >/dev/null")")
        rm -rf "${CACHE:?}"/*
        cleanup
        first+=("$(ms "$VPC" -q --index-cache-dir "$CACHE" "$f" -m "$MNT")")
        cleanup
        again+=("$(ms "$VPC" -q --index-cache-dir "$CACHE" "$f" -m "$MNT")")
        cleanup
    done
    row "$c" "first mount (index)" "${dec%% *} -dc" "${dref[*]}" "${first[*]}"
    target=()
    for _ in "${dref[@]}"; do target+=(100); done
    row "$c" "re-mount (saved index)" "target 0.1 s" "${target[*]}" "${again[*]}"
    for what in dd1M dd32K; do
        ours=()
        for i in $(seq "$RUNS"); do
            part=$(mount_image "$f")
            ours+=("$(ms read_with "$what" "$part")")
            cleanup
        done
        row "$c" "$what" "${dec%% *} -dc" "${dref[*]}" "${ours[*]}"
    done
    ref=() ours=()
    for _ in $(seq "$RUNS"); do
        ref+=("$(ms loop_tar "$RAW")")
        part=$(mount_image "$f")
        ours+=("$(ms loop_tar "$part")")
        cleanup
    done
    row "$c" "tar (loop mount)" "raw file" "${ref[*]}" "${ours[*]}"
    # The decoder's speed (image bytes out per second, fastest run) beside the latencies.
    fastest=$(printf '%s\n' "${dref[@]}" | sort -n | head -1)
    speed=$(echo "$(stat -c %s "$SRC") / 1000 / $fastest" | bc -l)
    random_row "$c" "$f" "$(printf '%s -dc: %.0f MB/s' "${dec%% *}" "$speed")"
    say "$c done"
done

echo
echo "Sequential and start-up ($RUNS runs each, min-max; ours/ref < 1 is faster than the reference):"
cat "$TABLE"
echo
echo "Random 4 KiB reads, fio 16 jobs psync, $RANDOM_SECS s, fresh mount per run (ms, min-max of $RUNS):"
echo "| image    | p50 ms        | p99 ms        | IOPS        | reference |"
echo "|---|---|---|---|---|"
cat "$RANDOM_ROWS"
