#!/usr/bin/env bash
# Benchmark: the mounted virtual partition (`vpartclone`/`vpartimage IMG -m DIR`) against the
# Python imagebackup 0.2.2 (PyPI) and against the real tools' restore (partclone.restore,
# partimage restore), all in one run on the same machine.
#
#   bash bench/mount.sh [WORKDIR]      (root; needs partclone, partimage, e2fsprogs, dosfstools,
#                                       mtools, fuse3, python3-venv; default WORKDIR
#                                       /tmp/imagebackup-bench-mount)
#
# Builds (once; reruns reuse them) from >= 2 GiB file systems holding ~650 MB of varied files:
#   (a) ext4, 4 KiB blocks      -> partclone.ext4        ext4.pc
#   (b) ext3, 1 KiB blocks      -> partimage -z0         ext3.pi.000
#   (c) FAT32, 512 B clusters   -> partclone.fat32       fat32.pc
#   (d) 1 TiB sparse ext4       -> partclone.ext4        big.pc   (start-up and memory)
#   (e) NTFS, 4 KiB clusters    -> ntfsclone --save-image ntfs.img (its mount scans the image)
#   (f) a zstd -T0 and a pigz copy of (a)                 ext4.pc.zst, ext4.pc.gz
# and measures
#   - sequential read of the virtual partition (dd bs=1M), fresh mount per run, page cache
#     dropped before each run and the image then re-read into it (warm-image-cache numbers:
#     this measures the reader, not the disk);
#   - the real tool's restore of the same image into a sparse file / loop device;
#   - start-up (command -> mounted and file visible) on the 1 TiB image;
#   - the daemon's VmHWM/RssAnon/RssFile right after mount and after reading;
#   - (e) start-up (the command-stream scan: ntfsclone's "index"), read speed, ntfsclone restore;
#   - random 4 KiB reads (2000 preads at uniform 4 KiB-aligned offsets, fresh mount) on (a),
#     (e) and the compressed copies (f), ours vs Python where Python can mount them;
#   - (f) start-up (the index pass over the compressed stream) and sequential read;
#   - the loop-mount case: reading the loop device set up on the virtual file, with
#     `losetup --direct-io=on` and off.
#
# Environment: RUNS (ours and restore, default 3), RUNS_PY (Python, default 1), STARTUP_RUNS
# (ours, default 5), PY_BUDGET (seconds a Python full read may take before a prefix is read
# instead, default 90), PY_TIMEOUT (Python start-up cap, default 600), PYIB (venv dir, default
# WORKDIR/pyib; created with `pip install imagebackup==0.2.2` if missing).
set -Eeuo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."
REPO=$PWD
WORK=${1:-/tmp/imagebackup-bench-mount}
RUNS=${RUNS:-3}
RUNS_PY=${RUNS_PY:-1}
STARTUP_RUNS=${STARTUP_RUNS:-5}
PY_BUDGET=${PY_BUDGET:-90}
PY_TIMEOUT=${PY_TIMEOUT:-600}
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
PYIB=${PYIB:-$WORK/pyib}
MNT=$WORK/mnt
LOG=$WORK/log
mkdir -p "$MNT"; rm -rf "$LOG"; mkdir -p "$LOG"

[ "$(id -u)" = 0 ] || { echo "must run as root (loop devices, drop_caches, partimage)" >&2; exit 1; }

# ---------------------------------------------------------------- cleanup
LOOPS=()
cleanup() {
    local rc=$?
    trap - ERR
    set +e
    for m in "$MNT"/*/; do
        m=${m%/}
        if mountpoint -q "$m" 2>/dev/null; then
            fusermount3 -u "$m" 2>/dev/null || umount "$m" 2>/dev/null || umount -l "$m"
        fi
    done
    for l in "${LOOPS[@]}"; do [ -e "/sys/block/${l#/dev/}/loop/backing_file" ] && losetup -d "$l"; done
    rm -f "$WORK"/restore.* 2>/dev/null
    exit $rc
}
trap cleanup EXIT
trap 'echo "mount.sh: failed at line $LINENO: $BASH_COMMAND" >&2' ERR
trap 'exit 130' INT TERM

say() { echo "== $*" >&2; }
need() { command -v "$1" >/dev/null || { echo "missing tool: $1" >&2; exit 1; }; }
for t in partclone.ext4 partclone.fat32 partclone.restore partimage mkfs.ext4 mkfs.ext3 mkfs.fat \
         mcopy losetup fusermount3 mountpoint python3 bc awk pgrep timeout mkntfs ntfs-3g ntfsclone \
         zstd pigz; do need "$t"; done
[ -x /usr/bin/time ] || { echo "missing /usr/bin/time (GNU time)" >&2; exit 1; }

# ---------------------------------------------------------------- our tools
say "building imagebackup-cli (release)"
cargo build --release -q -p imagebackup-cli
OURS_PC=$REPO/target/release/vpartclone
OURS_PI=$REPO/target/release/vpartimage
OURS_NC=$REPO/target/release/vntfsclone

# ---------------------------------------------------------------- Python imagebackup 0.2.2
if [ ! -x "$PYIB/bin/vpartclone" ]; then
    say "creating Python venv $PYIB with imagebackup 0.2.2"
    if ! dpkg -s libfuse3-dev pkg-config >/dev/null 2>&1; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libfuse3-dev pkg-config >&2
    fi
    rm -rf "$PYIB"
    python3 -m venv "$PYIB"
    "$PYIB/bin/pip" install -q imagebackup==0.2.2 >&2
fi
PY_PC=$PYIB/bin/vpartclone
PY_PI=$PYIB/bin/vpartimage
PY_NC=$PYIB/bin/vntfsclone

# ---------------------------------------------------------------- images
FS_SIZE=2G
make_src() {
    [ -f "$WORK/src/.done" ] && return
    say "generating ~720 MB of files in $WORK/src"
    rm -rf "$WORK/src"; mkdir -p "$WORK/src/rand" "$WORK/src/text"
    # random data, ~570 MiB: 8 x 32 MiB, 4 x 16 MiB, 24 x 3..9 MiB, 300 x 4..700 KiB
    local i
    for i in $(seq 1 8); do head -c 32M /dev/urandom >"$WORK/src/rand/big$i.bin"; done
    for i in $(seq 1 4); do head -c 16M /dev/urandom >"$WORK/src/rand/big16-$i.bin"; done
    for i in $(seq 1 24); do head -c $(( (3 + i % 7) * 1024 * 1024 + i * 4097 )) /dev/urandom >"$WORK/src/rand/mid$i.bin"; done
    mkdir -p "$WORK/src/rand/small"
    for i in $(seq 1 300); do head -c $(( 4096 + (i * 7919 % 700) * 1024 + i )) /dev/urandom >"$WORK/src/rand/small/s$i.dat"; done
    # many small text files, ~130 MB: 100 dirs x 400 files of 0.2..12 KB
    awk -v dir="$WORK/src/text" 'BEGIN {
        srand(42)
        split("the of and to in is that for it as was with be by on not he this are or his from at which but have an they you were her she there been one all we their can has more if will would about so no when what out up into them may who other time also than its some only only first new could these two any like such very after most file block image partition restore mount read data", w, " ")
        nw = length(w)
        for (d = 0; d < 100; d++) {
            sub_ = sprintf("%s/d%02d", dir, d); system("mkdir -p " sub_)
            for (f = 0; f < 400; f++) {
                path = sprintf("%s/note%03d.txt", sub_, f)
                target = 200 + int(rand() * rand() * 12000); n = 0; line = ""
                while (n < target) {
                    word = w[1 + int(rand() * nw)]; line = line word " "; n += length(word) + 1
                    if (length(line) > 70) { print line > path; line = "" }
                }
                print line > path; close(path)
            }
        }
    }'
    touch "$WORK/src/.done"
    say "  $(du -s --apparent-size -B1 "$WORK/src" | cut -f1) bytes in $(find "$WORK/src" -type f | wc -l) files"
}

A_IMG=$WORK/ext4.pc
B_IMG=$WORK/ext3.pi.000
C_IMG=$WORK/fat32.pc
D_IMG=$WORK/big.pc
E_IMG=$WORK/ntfs.img

if [ ! -s "$A_IMG" ]; then
    make_src
    say "(a) ext4, 4 KiB blocks -> partclone.ext4"
    rm -f "$WORK/ext4.raw"; truncate -s $FS_SIZE "$WORK/ext4.raw"
    mkfs.ext4 -q -F -b 4096 -d "$WORK/src" "$WORK/ext4.raw"
    partclone.ext4 -c -f 0 -s "$WORK/ext4.raw" -O "$A_IMG.tmp" >"$LOG/save-ext4.log" 2>&1
    mv "$A_IMG.tmp" "$A_IMG"; rm -f "$WORK/ext4.raw"
fi
if [ ! -s "$B_IMG" ]; then
    make_src
    say "(b) ext3, 1 KiB blocks -> partimage -z0"
    rm -f "$WORK/ext3.raw" "$WORK"/ext3.pi.0*; truncate -s $FS_SIZE "$WORK/ext3.raw"
    mkfs.ext3 -q -F -b 1024 -d "$WORK/src" "$WORK/ext3.raw"
    L=$(losetup -f --show "$WORK/ext3.raw"); LOOPS+=("$L")
    TERM=vt100 partimage -b -z0 -o -d save "$L" "$WORK/ext3.pi.tmp" </dev/null >"$LOG/save-ext3.log" 2>&1
    losetup -d "$L"; LOOPS=("${LOOPS[@]/$L}")
    for f in "$WORK"/ext3.pi.tmp.0*; do mv "$f" "$WORK/ext3.pi.${f##*.}"; done
    rm -f "$WORK/ext3.raw"
fi
if [ ! -s "$C_IMG" ]; then
    make_src
    say "(c) FAT32, 512-byte clusters -> partclone.fat32"
    rm -f "$WORK/fat32.raw"; truncate -s $FS_SIZE "$WORK/fat32.raw"
    mkfs.fat -F 32 -s 1 -S 512 "$WORK/fat32.raw" >/dev/null
    MTOOLS_SKIP_CHECK=1 mcopy -s -i "$WORK/fat32.raw" "$WORK/src/rand" "$WORK/src/text" ::/
    partclone.fat32 -c -f 0 -s "$WORK/fat32.raw" -O "$C_IMG.tmp" >"$LOG/save-fat32.log" 2>&1
    mv "$C_IMG.tmp" "$C_IMG"; rm -f "$WORK/fat32.raw"
fi
if [ ! -s "$D_IMG" ]; then
    say "(d) 1 TiB sparse ext4 -> partclone.ext4"
    rm -f "$WORK/big.raw"; truncate -s 1T "$WORK/big.raw"
    mkfs.ext4 -q -F -b 4096 -i 67108864 -J size=64 -E lazy_itable_init=1,lazy_journal_init=1 "$WORK/big.raw"
    partclone.ext4 -c -f 0 -s "$WORK/big.raw" -O "$D_IMG.tmp" >"$LOG/save-big.log" 2>&1
    mv "$D_IMG.tmp" "$D_IMG"; rm -f "$WORK/big.raw"
fi
if [ ! -s "$E_IMG" ]; then
    make_src
    say "(e) NTFS, 4 KiB clusters -> ntfsclone --save-image"
    rm -f "$WORK/ntfs.raw"; truncate -s $FS_SIZE "$WORK/ntfs.raw"
    mkntfs -q -F -f -c 4096 -L bench "$WORK/ntfs.raw" >/dev/null
    mkdir -p "$WORK/ntfsmnt"
    ntfs-3g "$WORK/ntfs.raw" "$WORK/ntfsmnt"
    cp -r "$WORK/src/rand" "$WORK/src/text" "$WORK/ntfsmnt/"
    umount "$WORK/ntfsmnt"
    ntfsclone --save-image -o "$E_IMG.tmp" "$WORK/ntfs.raw" >"$LOG/save-ntfs.log" 2>&1
    mv "$E_IMG.tmp" "$E_IMG"; rm -f "$WORK/ntfs.raw"
fi
if [ ! -s "$A_IMG.zst" ]; then
    say "(f) zstd -T0 and pigz -p 2 copies of (a)"
    zstd -q -T0 -c "$A_IMG" >"$A_IMG.zst.tmp" && mv "$A_IMG.zst.tmp" "$A_IMG.zst"
fi
if [ ! -s "$A_IMG.gz" ]; then
    pigz -n -p 2 -c "$A_IMG" >"$A_IMG.gz.tmp" && mv "$A_IMG.gz.tmp" "$A_IMG.gz"
fi
rm -rf "$WORK/src"

# ---------------------------------------------------------------- helpers
# image_bytes IMG: size of the image (all volumes of a partimage set)
image_bytes() { local b=${1%.000}; if [ "$b" != "$1" ]; then cat "$b".0[0-9][0-9] | wc -c; else stat -c %s "$1"; fi; }
warm() { local b=${1%.000}; sync; echo 3 >/proc/sys/vm/drop_caches; if [ "$b" != "$1" ]; then cat "$b".0[0-9][0-9] >/dev/null; else cat "$1" >/dev/null; fi; }
vfile() { local f; for f in "$1"/*; do echo "$f"; return; done; }   # the one file in a mount

# do_mount TOOL IMG DIR: mount (output, and the daemon's stderr, in $LOG/mount-DIRNAME.out), wait (<= 10 s) until the file is visible; sets DPID (daemon pid)
do_mount() {
    local tool=$1 img=$2 dir=$3
    mkdir -p "$dir"
    local log; log=$LOG/mount-$(basename "$dir").out
    "$tool" "$img" -m "$dir" >>"$log" 2>&1 || { cat "$log" >&2; return 1; }
    wait_visible "$dir" || { echo "mount of $img on $dir: file not visible" >&2; return 1; }
    daemon_pid "$dir"
}
wait_visible() { local i; for i in $(seq 1000); do [ -n "$(ls -A "$1" 2>/dev/null)" ] && return 0; sleep 0.01; done; return 1; }
daemon_pid() {
    local p
    DPID=
    for p in $(pgrep -f -- "-m $1\$" || true); do
        [ -r "/proc/$p/status" ] && { DPID=$p; break; }
    done
    [ -n "$DPID" ] || echo "warning: no daemon pid found for $1" >&2
}
do_umount() {
    local dir=$1
    mountpoint -q "$dir" || return 0
    fusermount3 -u "$dir" 2>/dev/null || umount "$dir"
    if [ -n "${DPID:-}" ]; then
        local i; for i in $(seq 500); do kill -0 "$DPID" 2>/dev/null || break; sleep 0.02; done
    fi
}
# rss PID -> "VmHWM RssAnon RssFile" in kB
rss() {
    if [ -n "$1" ] && [ -r "/proc/$1/status" ]; then
        awk '/^VmHWM:/ {h=$2} /^RssAnon:/ {a=$2} /^RssFile:/ {f=$2} END {print h+0, a+0, f+0}' "/proc/$1/status"
    else
        echo "daemon pid ${1:-?} gone" >&2; echo gone
    fi
}
# ddread FILE [dd args...] -> "bytes seconds"
ddread() {
    local f=$1; shift
    local out; out=$(dd if="$f" of=/dev/null bs=1M "$@" 2>&1) || { echo "$out" >&2; return 1; }
    echo "$out" | awk '/bytes/ && /copied/ {for (i = 1; i <= NF; i++) if ($i ~ /^copied/) s = $(i+1); print $1, s}'
}
# stats LIST -> "median min max"
stats() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {printf "%.6g %.6g %.6g\n", (NR % 2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2), a[1], a[NR]}'; }
calc() { echo "scale=6; $*" | bc -l; }
fmt() { printf '%.*f' "$1" "$2"; }

# ---------------------------------------------------------------- measurements
declare -A R   # results

# seq_read KEY TOOL IMG RUNS [COUNT_MIB] -> MB/s list in R[KEY]; RSS of last run in R[KEY.rss0/rss1]
seq_read() {
    local key=$1 tool=$2 img=$3 n=$4 count=${5:-} dir=$MNT/$1 i b s rates=()
    for i in $(seq "$n"); do
        warm "$img"
        do_mount "$tool" "$img" "$dir"
        R[$key.rss0]=$(rss "$DPID")
        read -r b s < <(ddread "$(vfile "$dir")" ${count:+count=$count})
        R[$key.rss1]=$(rss "$DPID")
        do_umount "$dir"
        rates+=("$(calc "$b / $s / 1000000")")
        R[$key.bytes]=$b
        say "  $key run $i: $b bytes in $s s = $(fmt 1 "${rates[-1]}") MB/s"
    done
    R[$key]=$(stats "${rates[@]}")
}

# restore KEY IMG SIZE: partclone.restore or partimage restore, RUNS times -> R[KEY.wall/cpu]
restore() {
    local key=$1 img=$2 size=$3 i walls=() cpus=() out=$WORK/restore.out w u s
    for i in $(seq "$RUNS"); do
        rm -f "$out"; truncate -s "$size" "$out"
        warm "$img"
        if [[ $img == *ntfs.img ]]; then
            /usr/bin/time -o "$LOG/time" -f "%e %U %S" ntfsclone --restore-image --overwrite "$out" "$img" \
                >"$LOG/restore-$key.log" 2>&1 || { cat "$LOG/restore-$key.log" >&2; exit 1; }
        elif [[ $img == *.000 ]]; then
            local L; L=$(losetup -f --show "$out"); LOOPS+=("$L")
            TERM=vt100 /usr/bin/time -o "$LOG/time" -f "%e %U %S" partimage -b -y -f3 restore "$L" "$img" \
                </dev/null >"$LOG/restore-$key.log" 2>&1 || { cat "$LOG/restore-$key.log" >&2; exit 1; }
            losetup -d "$L"; LOOPS=("${LOOPS[@]/$L}")
            grep -q "End of operation: SUCCESS" /var/log/partimage/partimage-debug.log 2>/dev/null \
                || echo "warning: /var/log/partimage/partimage-debug.log has no SUCCESS line" >&2
        else
            /usr/bin/time -o "$LOG/time" -f "%e %U %S" partclone.restore -s "$img" -O "$out" \
                >"$LOG/restore-$key.log" 2>&1 || { cat "$LOG/restore-$key.log" >&2; exit 1; }
            grep -qi "successfully restored" "$LOG/restore-$key.log" \
                || { echo "partclone.restore: no success line" >&2; cat "$LOG/restore-$key.log" >&2; exit 1; }
        fi
        read -r w u s <"$LOG/time"
        walls+=("$w"); cpus+=("$(calc "$u + $s")")
        say "  $key restore run $i: wall $w s, user+sys ${cpus[-1]} s"
        rm -f "$out"
    done
    R[$key.wall]=$(stats "${walls[@]}")
    R[$key.cpu]=$(stats "${cpus[@]}")
}

declare -A NAME=([a]="(a) ext4 4 KiB, partclone" [b]="(b) ext3 1 KiB, partimage" [c]="(c) FAT32 512 B, partclone")
declare -A IMG=([a]=$A_IMG [b]=$B_IMG [c]=$C_IMG)
declare -A OURS=([a]=$OURS_PC [b]=$OURS_PI [c]=$OURS_PC)
declare -A PY=([a]=$PY_PC [b]=$PY_PI [c]=$PY_PC)
declare -A DEVSIZE SPAN

echo "NOTE: warm-image-cache measurement: before every run the page cache is dropped and the image is" >&2
echo "      read back into it (cat IMG >/dev/null), so the numbers are the reader's, not the disk's." >&2
for k in a b c; do
    img=${IMG[$k]}
    say "${NAME[$k]}: $img ($(image_bytes "$img") bytes)"
    do_mount "${OURS[$k]}" "$img" "$MNT/probe"
    DEVSIZE[$k]=$(stat -c %s "$(vfile "$MNT/probe")")
    do_umount "$MNT/probe"
    say "  device size ${DEVSIZE[$k]} bytes"
    seq_read "$k.ours" "${OURS[$k]}" "$img" "$RUNS"
    # Python: probe 64 MiB to decide between the whole file and a prefix
    warm "$img"
    do_mount "${PY[$k]}" "$img" "$MNT/pyprobe"
    read -r b s < <(ddread "$(vfile "$MNT/pyprobe")" count=64)
    do_umount "$MNT/pyprobe"
    est=$(calc "${DEVSIZE[$k]} / ($b / $s)")
    say "  python probe (first 64 MiB): $(fmt 1 "$(calc "$b / $s / 1000000")") MB/s -> whole file ~$(fmt 0 "$est") s (budget ${PY_BUDGET} s)"
    if [ "$(calc "$est > $PY_BUDGET")" = 1 ]; then
        SPAN[$k]=$(calc "($b / $s) * $PY_BUDGET * 2 / 3 / 1048576" | cut -d. -f1)
        [ "${SPAN[$k]}" -ge 64 ] || SPAN[$k]=64
        say "  python: reading the first ${SPAN[$k]} MiB only (and the same span with ours, for the ratio)"
        seq_read "$k.py" "${PY[$k]}" "$img" "$RUNS_PY" "${SPAN[$k]}"
        seq_read "$k.ourspre" "${OURS[$k]}" "$img" "$RUNS" "${SPAN[$k]}"
    else
        SPAN[$k]=
        seq_read "$k.py" "${PY[$k]}" "$img" "$RUNS_PY"
    fi
    restore "$k" "$img" "${DEVSIZE[$k]}"
done

# ---------------------------------------------------------------- (d) start-up and memory on 1 TiB
say "(d) 1 TiB ext4: $D_IMG ($(image_bytes "$D_IMG") bytes)"
# startup KEY TOOL N TIMEOUT: times command -> file visible; RSS after mount and after 1 GiB from the middle
startup() {
    local key=$1 tool=$2 n=$3 to=$4 dir=$MNT/$1 i t0 t1 times=() rc
    for i in $(seq "$n"); do
        warm "$D_IMG"
        mkdir -p "$dir"
        t0=$EPOCHREALTIME
        rc=0; timeout "$to" "$tool" "$D_IMG" -m "$dir" >>"$LOG/mount-$key.out" 2>&1 || rc=$?
        if [ $rc -ne 0 ]; then
            if [ $rc = 124 ]; then R[$key.timeout]=1; say "  $key: start-up timed out after $to s"; do_umount "$dir"; return 0; fi
            cat "$LOG/mount-$key.out" >&2; exit 1
        fi
        [ -n "$(ls -A "$dir")" ] || { say "  $key: file not visible when the command returned; waiting"; wait_visible "$dir"; }
        t1=$EPOCHREALTIME
        times+=("$(calc "$t1 - $t0")")
        say "  $key start-up run $i: ${times[-1]} s"
        daemon_pid "$dir"
        if [ "$i" = "$n" ]; then
            R[$key.rss0]=$(rss "$DPID")
            local size; size=$(stat -c %s "$(vfile "$dir")")
            local b s; read -r b s < <(timeout "$to" dd if="$(vfile "$dir")" of=/dev/null bs=1M skip=$((size / 2 / 1048576)) count=1024 2>&1 \
                | awk '/bytes/ && /copied/ {for (i = 1; i <= NF; i++) if ($i ~ /^copied/) s = $(i+1); print $1, s}')
            R[$key.midread]="$b $s"
            R[$key.rss1]=$(rss "$DPID")
        fi
        do_umount "$dir"
    done
    R[$key]=$(stats "${times[@]}")
}
startup d.ours "$OURS_PC" "$STARTUP_RUNS" 60
startup d.py "$PY_PC" "$RUNS_PY" "$PY_TIMEOUT"
do_mount "$OURS_PC" "$D_IMG" "$MNT/probe"
DEVSIZE[d]=$(stat -c %s "$(vfile "$MNT/probe")")
do_umount "$MNT/probe"
BITMAP_D=$(( (DEVSIZE[d] / 4096 + 7) / 8 ))
BITMAP_A=$(( (DEVSIZE[a] / 4096 + 7) / 8 ))

# ---------------------------------------------------------------- (e) ntfsclone
# mount_time KEY TOOL IMG N: seconds from command to visible file (the whole index pass)
mount_time() {
    local key=$1 tool=$2 img=$3 n=$4 dir=$MNT/$1 i t0 times=()
    for i in $(seq "$n"); do
        warm "$img"
        mkdir -p "$dir"
        t0=$EPOCHREALTIME
        "$tool" "$img" -q -m "$dir" >>"$LOG/mount-$key.out" 2>&1 || { cat "$LOG/mount-$key.out" >&2; exit 1; }
        wait_visible "$dir"
        times+=("$(calc "$EPOCHREALTIME - $t0")")
        daemon_pid "$dir"
        R[$key.rss0]=$(rss "$DPID")
        do_umount "$dir"
        say "  $key start-up run $i: ${times[-1]} s"
    done
    R[$key]=$(stats "${times[@]}")
}
say "(e) NTFS: $E_IMG ($(image_bytes "$E_IMG") bytes)"
do_mount "$OURS_NC" "$E_IMG" "$MNT/probe"
DEVSIZE[e]=$(stat -c %s "$(vfile "$MNT/probe")")
do_umount "$MNT/probe"
mount_time e.ours.start "$OURS_NC" "$E_IMG" "$RUNS"
mount_time e.py.start "$PY_NC" "$E_IMG" "$RUNS_PY"
seq_read e.ours "$OURS_NC" "$E_IMG" "$RUNS"
seq_read e.py "$PY_NC" "$E_IMG" "$RUNS_PY" 256
seq_read e.ourspre "$OURS_NC" "$E_IMG" "$RUNS" 256
restore e "$E_IMG" "${DEVSIZE[e]}"

# ---------------------------------------------------------------- (f) compressed copies of (a)
for z in zst gz; do
    say "(f) $A_IMG.$z ($(image_bytes "$A_IMG.$z") bytes)"
    mount_time "f$z.ours.start" "$OURS_PC" "$A_IMG.$z" "$RUNS"
    seq_read "f$z.ours" "$OURS_PC" "$A_IMG.$z" "$RUNS"
done

# ---------------------------------------------------------------- random 4 KiB reads
# randread KEY TOOL IMG N: N random 4 KiB preads on a fresh mount -> R[KEY] = "reads/s p50_ms p99_ms"
randread() {
    local key=$1 tool=$2 img=$3 n=$4 dir=$MNT/$1
    warm "$img"
    do_mount "$tool" "$img" "$dir"
    R[$key]=$(python3 - "$(vfile "$dir")" "$n" <<'PY'
import os, random, sys, time
path, n = sys.argv[1], int(sys.argv[2])
fd = os.open(path, os.O_RDONLY)
blocks = os.fstat(fd).st_size // 4096
rnd = random.Random(42)
lat = []
for _ in range(n):
    off = rnd.randrange(blocks) * 4096
    t = time.perf_counter()
    if len(os.pread(fd, 4096, off)) != 4096:
        sys.exit("short read at %d" % off)
    lat.append(time.perf_counter() - t)
lat.sort()
print("%.0f %.3f %.3f" % (n / sum(lat), lat[n // 2] * 1e3, lat[min(n - 1, int(n * 0.99))] * 1e3))
PY
)
    do_umount "$dir"
    say "  $key: reads/s p50 ms p99 ms = ${R[$key]}"
}
say "random 4 KiB reads"
randread a.rand.ours "$OURS_PC" "$A_IMG" 2000
randread a.rand.py "$PY_PC" "$A_IMG" 2000
randread e.rand.ours "$OURS_NC" "$E_IMG" 2000
randread e.rand.py "$PY_NC" "$E_IMG" 2000
randread fzst.rand.ours "$OURS_PC" "$A_IMG.zst" 2000
randread fgz.rand.ours "$OURS_PC" "$A_IMG.gz" 2000

# ---------------------------------------------------------------- loop device on the virtual file
# loopread KEY DIO: dd of the loop device set up (read-only) on the mounted (a), direct-io on/off
loopread() {
    local key=$1 dio=$2 dir=$MNT/$1 i rates=() L b s
    for i in $(seq "$RUNS"); do
        warm "$A_IMG"
        do_mount "$OURS_PC" "$A_IMG" "$dir"
        L=$(losetup -r --direct-io="$dio" -f --show "$(vfile "$dir")"); LOOPS+=("$L")
        read -r b s < <(ddread "$L" iflag=direct)
        losetup -d "$L"; LOOPS=("${LOOPS[@]/$L}")
        do_umount "$dir"
        rates+=("$(calc "$b / $s / 1000000")")
        say "  $key run $i: $(fmt 1 "${rates[-1]}") MB/s"
    done
    R[$key]=$(stats "${rates[@]}")
}
say "loop device on the virtual file (a)"
loopread loop.dio on
loopread loop.nodio off

# ---------------------------------------------------------------- report
med() { echo "${R[$1]}" | awk '{print $1}'; }
mm() { echo "${R[$1]}" | awk -v p="$2" '{printf "%.*f [%.*f-%.*f]", p, $1, p, $2, p, $3}'; }
ratio() { [ -n "$1" ] && [ -n "$2" ] && [ "$(calc "$2 > 0")" = 1 ] && printf '%.2fx' "$(calc "$1 / $2")" || printf -- '-'; }
mb() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1000}'; }   # kB -> MB
rssfmt() { local h a f; read -r h a f <<<"$1"; [ "$h" = gone ] && { echo "(daemon gone)"; return; }; printf 'HWM %s/anon %s/file %s' "$(mb "$h")" "$(mb "$a")" "$(mb "$f")"; }
pyrss() { if [ -n "${R[$1]:-}" ]; then rssfmt "${R[$1]}"; else echo "-"; fi; }
hwm() { if [ -n "${R[$1]:-}" ] && [ "${R[$1]}" != gone ]; then echo "${R[$1]}" | awk '{print $1}'; fi; }
hwmratio() { local r; r=$(ratio "$@"); [ "$r" = - ] && echo - || echo "$r HWM"; }
row() { printf '%-54s | %-30s | %-30s | %-35s | %-11s | %-22s | %s\n' "$@"; }

TABLE=$WORK/results.txt
{
echo
echo "imagebackup mount benchmark  $(date -u +%FT%TZ)  $(uname -r)  $(nproc) CPUs  commit $(git -C "$REPO" rev-parse --short HEAD)"
echo "WARM IMAGE CACHE: page cache dropped, then the image re-read into it before every run; fresh mount per run."
echo "ours: median [min-max] of $RUNS runs; python (imagebackup 0.2.2): $RUNS_PY run(s); restore: median [min-max] of $RUNS runs."
echo
row measurement ours python "partclone.restore / partimage" ours/python "ours/restore" target
printf -- '-%.0s' $(seq 230); echo
for k in a b c; do
    dev=${DEVSIZE[$k]}
    rw=$(med "$k.wall"); rc=$(med "$k.cpu")
    r_wall=$(calc "$dev / $rw / 1000000"); r_cpu=$(calc "$dev / $rc / 1000000")
    tgt=">=10x python; > restore"; [ "$k" = a ] || tgt=">=30x python; > restore"
    vs_r="$(ratio "$(med "$k.ours")" "$r_wall") wall, $(ratio "$(med "$k.ours")" "$r_cpu") cpu"
    if [ -z "${SPAN[$k]}" ]; then
        row "${NAME[$k]}: read MB/s, whole $(( dev / 1048576 )) MiB" "$(mm "$k.ours" 1)" "$(mm "$k.py" 1)" \
            "$(fmt 1 "$r_wall") wall, $(fmt 1 "$r_cpu") cpu" "$(ratio "$(med "$k.ours")" "$(med "$k.py")")" "$vs_r" "$tgt"
    else
        row "${NAME[$k]}: read MB/s, whole $(( dev / 1048576 )) MiB" "$(mm "$k.ours" 1)" "(too slow: prefix below)" \
            "$(fmt 1 "$r_wall") wall, $(fmt 1 "$r_cpu") cpu" "-" "$vs_r" "$tgt"
        row "${NAME[$k]}: read MB/s, first ${SPAN[$k]} MiB" "$(mm "$k.ourspre" 1)" "$(mm "$k.py" 1)" "-" \
            "$(ratio "$(med "$k.ourspre")" "$(med "$k.py")")" "-" "$tgt"
    fi
    rtool="partclone.restore"; [ "$k" = b ] && rtool="partimage restore -y"
    row "${NAME[$k]}: restore s (wall; user+sys)" "-" "-" "$(mm "$k.wall" 2); $(mm "$k.cpu" 2)" "-" "-" "($rtool)"
done
if [ -n "${R[d.py.timeout]:-}" ]; then pys=">$PY_TIMEOUT (timeout)"; pyr=; else pys=$(mm d.py 3); pyr=$(med d.py); fi
row "(d) 1 TiB ext4: start-up s (until file visible)" "$(mm d.ours 3) n=$STARTUP_RUNS" "$pys" "-" "$(ratio "$(med d.ours)" "$pyr")" "-" "<= 0.1 s"
tD=$(awk -v b="$BITMAP_D" 'BEGIN {printf "%.1f", 10 + 0.02 * b / 1e6}')
tA=$(awk -v b="$BITMAP_A" 'BEGIN {printf "%.1f", 10 + 0.02 * b / 1e6}')
row "(d) daemon RSS MB after mount" "$(rssfmt "${R[d.ours.rss0]}")" "$(pyrss d.py.rss0)" "-" \
    "$(hwmratio "$(hwm d.ours.rss0)" "$(hwm d.py.rss0)")" "-" "peak <= $tD MB (10 MB + 2% of $((BITMAP_D / 1048576)) MiB bitmap)"
row "(d) daemon RSS MB after 1 GiB read mid-file" "$(rssfmt "${R[d.ours.rss1]}")" "$(pyrss d.py.rss1)" "-" \
    "$(hwmratio "$(hwm d.ours.rss1)" "$(hwm d.py.rss1)")" "-" "peak <= $tD MB"
row "(a) daemon RSS MB after mount" "$(rssfmt "${R[a.ours.rss0]}")" "$(pyrss a.py.rss0)" "-" \
    "$(hwmratio "$(hwm a.ours.rss0)" "$(hwm a.py.rss0)")" "-" "peak <= $tA MB (10 MB + 2% of $((BITMAP_A / 1024)) KiB bitmap)"
pyspan="whole file"; [ -n "${SPAN[a]}" ] && pyspan="py: first ${SPAN[a]} MiB"
row "(a) daemon RSS MB after seq read ($pyspan)" "$(rssfmt "${R[a.ours.rss1]}")" "$(pyrss a.py.rss1)" "-" \
    "$(hwmratio "$(hwm a.ours.rss1)" "$(hwm a.py.rss1)")" "-" "peak <= $tA MB"
ed=${DEVSIZE[e]}
rw=$(med e.wall); rc=$(med e.cpu)
row "(e) NTFS 4 KiB, ntfsclone: start-up s (scan)" "$(mm e.ours.start 3)" "$(mm e.py.start 3)" "-" \
    "$(ratio "$(med e.ours.start)" "$(med e.py.start)")" "-" "(lower is better)"
row "(e) NTFS: read MB/s, whole $(( ed / 1048576 )) MiB" "$(mm e.ours 1)" "(prefix below)" \
    "$(fmt 1 "$(calc "$ed / $rw / 1000000")") wall, $(fmt 1 "$(calc "$ed / $rc / 1000000")") cpu" "-" \
    "$(ratio "$(med e.ours)" "$(calc "$ed / $rw / 1000000")") wall" "> restore"
row "(e) NTFS: read MB/s, first 256 MiB" "$(mm e.ourspre 1)" "$(mm e.py 1)" "-" \
    "$(ratio "$(med e.ourspre)" "$(med e.py)")" "-" ">=10x python"
row "(e) NTFS: restore s (wall; user+sys)" "-" "-" "$(mm e.wall 2); $(mm e.cpu 2)" "-" "-" "(ntfsclone --restore-image)"
for z in zst gz; do
    row "(f) (a) as .$z: start-up s (index pass)" "$(mm "f$z.ours.start" 2)" "(cannot mount)" "-" "-" "-" "$(image_bytes "$A_IMG.$z") B"
    row "(f) (a) as .$z: read MB/s, whole" "$(mm "f$z.ours" 1)" "-" "-" "-" "-" ""
done
randrow() { # LABEL OURS_KEY PY_KEY
    local o=${R[$2]:-} p=
    [ -z "$3" ] || p=${R[$3]:-}
    local or_ pr_
    or_=$(echo "$o" | awk '{printf "%s/s p50 %s p99 %s ms", $1, $2, $3}')
    pr_=$( [ -n "$p" ] && echo "$p" | awk '{printf "%s/s p50 %s p99 %s ms", $1, $2, $3}' || echo "-")
    row "$1" "$or_" "$pr_" "-" "$( [ -n "$p" ] && ratio "$(echo "$o" | awk '{print $1}')" "$(echo "$p" | awk '{print $1}')" || echo -)" "-" "reads/s ratio"
}
randrow "random 4 KiB reads: (a) ext4" a.rand.ours a.rand.py
randrow "random 4 KiB reads: (e) NTFS" e.rand.ours e.rand.py
randrow "random 4 KiB reads: (a) as .zst (zstd -T0)" fzst.rand.ours ""
randrow "random 4 KiB reads: (a) as .gz (pigz)" fgz.rand.ours ""
row "loop device on (a), dd bs=1M iflag=direct MB/s" "dio on $(mm loop.dio 1)" "-" "dio off $(mm loop.nodio 1)" "-" "-" "losetup --direct-io"
echo
echo "images: (a) $(image_bytes "$A_IMG") B, (b) $(image_bytes "$B_IMG") B, (c) $(image_bytes "$C_IMG") B, (d) $(image_bytes "$D_IMG") B;" \
     "virtual partitions: (a) ${DEVSIZE[a]} B, (b) ${DEVSIZE[b]} B, (c) ${DEVSIZE[c]} B, (d) ${DEVSIZE[d]} B"
echo "(d) 1 GiB mid-file read: ours $(echo "${R[d.ours.midread]}" | awk '{printf "%s s", $2}'), python $(echo "${R[d.py.midread]:-- n/a}" | awk '{printf "%s s", $2}')"
echo "restore MB/s = virtual-partition bytes / restore time (wall, or user+sys = \"cpu\"); partclone's wall time is padded by its"
echo "  ~2 s progress tick and includes its final sync; partimage runs with -y (no final sync)."
echo "ratios: throughput ours/python and ours/restore (higher is better); start-up and RSS ours/python (lower is better)."
echo "RSS: VmHWM (peak) / RssAnon / RssFile from /proc/PID/status in MB (10^6 B); RssFile counts page-cache pages of a mapped image."
for f in "$LOG"/mount-*.out; do
    if grep -qiE 'traceback|error|panic' "$f"; then
        echo "NOTE: $f reports errors: $(grep -iE 'traceback|error|panic' "$f" | sort | uniq -c | head -3 | tr -s ' ' | tr '\n' ';')"
    fi
done
echo
echo "reproduce:"
echo "  bash bench/mount.sh $WORK      # env: RUNS=$RUNS RUNS_PY=$RUNS_PY STARTUP_RUNS=$STARTUP_RUNS PY_BUDGET=$PY_BUDGET PY_TIMEOUT=$PY_TIMEOUT"
echo "  by hand, before each run:  sync; echo 3 >/proc/sys/vm/drop_caches; cat IMG >/dev/null"
echo "    target/release/vpartclone $A_IMG -m /mnt/x; dd if=/mnt/x/ext4.pc of=/dev/null bs=1M; umount /mnt/x"
echo "    $PY_PC $A_IMG -m /mnt/x; dd if=/mnt/x/ext4.pc of=/dev/null bs=1M${SPAN[a]:+ count=${SPAN[a]}}; umount /mnt/x"
echo "    target/release/vpartimage $B_IMG -m /mnt/x; dd if=/mnt/x/ext3.pi of=/dev/null bs=1M; umount /mnt/x"
echo "    truncate -s ${DEVSIZE[a]} OUT; /usr/bin/time -f '%e %U %S' partclone.restore -s $A_IMG -O OUT"
echo "    truncate -s ${DEVSIZE[b]} OUT; L=\$(losetup -f --show OUT); TERM=vt100 /usr/bin/time -f '%e %U %S' partimage -b -y -f3 restore \$L $B_IMG </dev/null; losetup -d \$L"
echo "    time target/release/vpartclone $D_IMG -m /mnt/x; grep -E 'VmHWM|RssAnon|RssFile' /proc/\$(pgrep -f -- '-m /mnt/x\$')/status"
echo "    dd if=/mnt/x/big.pc of=/dev/null bs=1M skip=$(( DEVSIZE[d] / 2 / 1048576 )) count=1024; grep -E 'VmHWM|RssAnon|RssFile' /proc/PID/status; umount /mnt/x"
} | tee "$TABLE"
echo "(table saved to $TABLE)" >&2
