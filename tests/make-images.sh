#!/usr/bin/env bash
# make-images.sh - build backup images with the REAL tools (partclone, partimage, ntfsclone)
# and record, for each, what the real tool's restore produces. This is the oracle for the
# end-to-end tests.
#
#   bash tests/make-images.sh OUTDIR             full set (needs root, loop devices, /dev/fuse)
#   bash tests/make-images.sh --fixtures OUTDIR  the small set committed in tests/fixtures
#
# OUTDIR must not exist or be empty. Written: the images, OUTDIR/manifest.tsv, and
#   full mode:     OUTDIR/sources/NAME.raw (every source file system, sparse)
#   fixtures mode: OUTDIR/README.md (tool versions and the exact commands that were run)
#
# manifest.tsv: header line, then one line per image, tab-separated:
#   image         path relative to OUTDIR (first piece of a split set: X.aa, X.000)
#   tool          vpartclone | vpartimage | vntfsclone
#   device_size   bytes of the restored partition
#   sha256        of the real tool's restore into a fresh zero-filled file of device_size bytes
#   checksummed   yes if one flipped byte in the middle of the stored data must be detected
#   variant       free text
#
# Each partclone image is also checked with the real partclone.chkimg, and a copy with one
# byte flipped in the middle of its stored data must fail (checksummed=yes) or pass
# (checksummed=no) partclone.chkimg.
#
# Needs (Debian): partclone partimage ntfs-3g fuse3 exfat-fuse mtools exfatprogs f2fs-tools
# xfsprogs btrfs-progs dosfstools e2fsprogs util-linux zstd lz4 xz-utils pigz bzip2 gzip python3.
set -Eeuo pipefail
export LC_ALL=C LANG=C TZ=UTC MTOOLS_SKIP_CHECK=1
umask 022

PROG=make-images.sh
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SYNTH=$HERE/synth_partclone.py
SHARED_FIXTURES=${SHARED_FIXTURES:-}
T0=$SECONDS

STEP="startup"
WORK=""
LOOPS=()
MOUNTS=()
BG_PIDS=()
BG_INFO=()

say() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() {
    say "ERROR in step [$STEP]: $*"
    exit 1
}
step() {
    STEP=$*
    say "== $STEP"
}

on_err() {
    local rc=$? cmd=$BASH_COMMAND line=${BASH_LINENO[0]}
    say "ERROR in step [$STEP]: command failed with exit $rc (line $line): $cmd"
}

cleanup() {
    local rc=$?
    set +e
    trap - ERR
    local p
    # background chkimg jobs end by themselves (within seconds; timeout 120 at worst)
    for p in "${BG_PIDS[@]}"; do wait "$p" 2>/dev/null; done
    local i
    for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
        if mountpoint -q "${MOUNTS[i]}"; then
            umount "${MOUNTS[i]}" 2>/dev/null || umount -l "${MOUNTS[i]}"
        fi
    done
    for p in "${LOOPS[@]}"; do losetup -d "$p" 2>/dev/null; done
    [[ -n $WORK && -d $WORK ]] && rm -rf "$WORK"
    if ((rc != 0)) && [[ -n ${MANIFEST:-} ]]; then
        # never leave a manifest that looks complete
        [[ -f $MANIFEST ]] && mv -f "$MANIFEST" "$MANIFEST.incomplete"
        say "FAILED (last step: $STEP); $OUT is incomplete"
    elif ((rc != 0)); then
        say "FAILED (last step: $STEP)"
    fi
    exit "$rc"
}
trap on_err ERR
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

usage() {
    sed -n '2,/^set -E/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2
    exit 2
}

# ----------------------------------------------------------------------------- arguments
MODE=full
case ${1:-} in
--fixtures)
    MODE=fixtures
    OUT=${2:-}
    ;;
-h | --help | "") usage ;;
-*) usage ;;
*) OUT=$1 ;;
esac
[[ -n ${OUT:-} ]] || usage
if [[ -e $OUT ]]; then
    [[ -d $OUT ]] || die "$OUT exists and is not a directory"
    [[ -z $(ls -A "$OUT") ]] || die "$OUT exists and is not empty"
fi
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK=$OUT/.work
mkdir -p "$WORK"
CMDLOG=$WORK/commands.txt
: >"$CMDLOG"
if [[ $MODE == full ]]; then
    SRC=$OUT/sources
else
    SRC=$WORK/sources
fi
mkdir -p "$SRC"

# ----------------------------------------------------------------------------- tool check
step "checking tools"
[[ $(id -u) == 0 ]] || die "must run as root (loop devices, mounts)"
NEED=(python3 sha256sum truncate losetup blockdev mount umount mountpoint timeout od cmp split stat
    mkfs.ext2 mkfs.ext3 mkfs.ext4 partclone.ext2 partclone.ext3 partclone.ext4 partclone.imager
    partclone.restore partclone.chkimg partimage mkntfs ntfs-3g ntfsclone ntfsfix gzip)
if [[ $MODE == full ]]; then
    NEED+=(mkfs.xfs mkfs.btrfs mkfs.f2fs sload.f2fs mkfs.fat mcopy mkfs.exfat fsck.exfat
        mount.exfat-fuse mkfs.minix partclone.xfs partclone.btrfs partclone.ntfs partclone.fat16
        partclone.fat32 partclone.exfat partclone.f2fs partclone.minix pigz bzip2 zstd pzstd xz lz4)
fi
missing=()
for c in "${NEED[@]}"; do command -v "$c" >/dev/null 2>&1 || missing+=("$c"); done
((${#missing[@]} == 0)) || die "missing tools: ${missing[*]} (Debian packages: partclone partimage ntfs-3g fuse3 exfat-fuse mtools exfatprogs f2fs-tools xfsprogs btrfs-progs dosfstools e2fsprogs util-linux zstd lz4 xz-utils pigz bzip2)"
[[ -e /dev/fuse ]] || die "/dev/fuse is missing (needed to populate NTFS/exFAT through FUSE)"
[[ -f $SYNTH ]] || die "$SYNTH not found"
python3 "$SYNTH" selftest >/dev/null || die "synth_partclone.py selftest failed"
mkdir -p /var/log/partimage

# ----------------------------------------------------------------------------- helpers
rel() { # path relative to OUT or WORK, for the command log
    local p=$1
    p=${p#"$OUT"/}
    p=${p#.work/}
    p=${p#"$WORK"/}
    printf '%s' "$p"
}
cmdlog() { printf '%s\n' "$*" >>"$CMDLOG"; }

# run LOG CMD...: run with stdin from /dev/null, output to LOG; on failure show LOG and die
run() {
    local log=$1
    shift
    if ! timeout 300 "$@" </dev/null >"$log" 2>&1; then
        tail -n 25 "$log" | cut -c1-300 >&2
        die "command failed: $*"
    fi
}
size_of() { stat -c %s "$1"; }
sha_of() {
    local s
    s=$(sha256sum "$1")
    printf '%s' "${s%% *}"
}
u64_at() { # FILE OFFSET -> unsigned LE u64
    python3 -c 'import sys,struct; f=open(sys.argv[1],"rb"); f.seek(int(sys.argv[2])); print(struct.unpack("<Q", f.read(8))[0])' "$1" "$2"
}
# fit_size FILE SIZE: a restore may stop at the last written block; extend, never shrink
fit_size() {
    local cur
    cur=$(size_of "$1")
    ((cur <= $2)) || die "restored file $(rel "$1") has $cur bytes, more than the device size $2"
    truncate -s "$2" "$1"
}
zero_file() { # FILE SIZE: fresh sparse zero-filled file
    rm -f "$1"
    truncate -s "$2" "$1"
}
add() { # IMAGE TOOL DEVSIZE SHA CHECKSUMMED VARIANT
    [[ -e $OUT/$1 ]] || die "manifest entry for missing file $1"
    [[ $4 =~ ^[0-9a-f]{64}$ ]] || die "bad sha256 for $1: $4"
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$MANIFEST"
    say "   $1  $3 bytes  sha256 ${4:0:16}...  checksummed=$5"
}
# note whether the restore equals the source (it need not: free blocks are not stored)
note_vs_source() { # SRCFILE SHA
    if [[ $(sha_of "$1") == "$2" ]]; then
        say "   (restore == source $(basename "$1"))"
    else
        say "   (restore differs from source $(basename "$1"): the source has data in blocks the image does not store)"
    fi
}

loop_attach() { # FILE -> sets LOOP
    LOOP=$(losetup -f --show "$1") || die "losetup failed for $1"
    LOOPS+=("$LOOP")
}
loop_detach() { # DEV
    local d=$1 l keep=()
    blockdev --flushbufs "$d" || true
    losetup -d "$d" || die "losetup -d $d failed"
    for l in "${LOOPS[@]}"; do [[ $l == "$d" ]] || keep+=("$l"); done
    LOOPS=("${keep[@]}")
}

# ----------------------------------------------------------------------------- content
# gen_tree DIR SEED RANDOM_SIZES(comma list) TEXT_SCALE: deterministic directory tree
gen_tree() {
    python3 - "$@" <<'EOF'
import os, random, sys
root, seed, sizes, scale = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
r = random.Random(seed)
words = ("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike "
         "november oscar papa quebec romeo sierra tango uniform victor whiskey xray").split()
def text(n):
    return "".join("%05d %s\n" % (i, " ".join(r.choice(words) for _ in range(9))) for i in range(n)).encode()
def w(rel, data):
    p = os.path.join(root, rel)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "wb") as f:
        f.write(data)
w("README.txt", b"imagebackup test file system\n")
w("docs/guide.txt", text(40 * scale))
w("docs/notes/todo.txt", text(5))
w("docs/notes/changelog.txt", text(12 * scale))
w("src/main.c", b'#include <stdio.h>\nint main(void) { puts("hello"); return 0; }\n')
w("deep/a/b/c/leaf.txt", b"leaf\n")
os.makedirs(os.path.join(root, "empty"), exist_ok=True)
for i, n in enumerate(int(x) for x in sizes.split(",") if x):
    w("data/random-%d.bin" % (i + 1), r.randbytes(n))
EOF
}
rand_file() { # FILE SIZE SEED
    python3 -c 'import random,sys; open(sys.argv[1],"wb").write(random.Random(int(sys.argv[3])).randbytes(int(sys.argv[2])))' "$1" "$2" "$3"
}

# xfs protofile (mkfs.xfs -p) for a tree; names here never contain blanks
xfs_proto_dir() {
    local e
    for e in "$1"/*; do
        [[ -e $e ]] || continue
        if [[ -d $e ]]; then
            echo "${e##*/} d--755 0 0"
            xfs_proto_dir "$e"
            echo '$'
        else
            echo "${e##*/} ---644 0 0 $e"
        fi
    done
}

# copy a tree into a FUSE file system on a loop device: fuse_populate MOUNTCMD IMAGE TREE
fuse_populate() {
    local mcmd=$1 img=$2 tree=$3 mnt=$WORK/mnt
    mkdir -p "$mnt"
    loop_attach "$img"
    timeout 60 "$mcmd" "$LOOP" "$mnt" </dev/null >"$WORK/mount.log" 2>&1 || {
        cat "$WORK/mount.log" >&2
        die "$mcmd $LOOP failed"
    }
    MOUNTS+=("$mnt")
    cp -r "$tree"/. "$mnt"/
    sync
    umount "$mnt" || die "umount $mnt failed"
    MOUNTS=("${MOUNTS[@]:0:${#MOUNTS[@]}-1}")
    loop_detach "$LOOP"
}

# mkfs_src KIND NAME SIZE TREE(or -) [mkfs options...]: make $SRC/NAME.raw
mkfs_src() {
    local kind=$1 name=$2 size=$3 tree=$4
    shift 4
    local img=$SRC/$name.raw log=$WORK/mkfs.$name.log
    step "making source $name.raw ($kind, $size bytes)"
    zero_file "$img" "$size"
    case $kind in
    ext2 | ext3 | ext4)
        run "$log" "mkfs.$kind" -q -F "$@" -d "$tree" "$img"
        cmdlog "truncate -s $size $name.raw; mkfs.$kind -q -F ${*:+$* }-d TREE $name.raw"
        ;;
    xfs)
        {
            echo /dev/null
            echo "0 0"
            echo "d--755 0 0"
            xfs_proto_dir "$tree"
            echo '$'
        } >"$WORK/$name.proto"
        run "$log" mkfs.xfs -q -f "$@" -p "$WORK/$name.proto" "$img"
        ;;
    btrfs)
        run "$log" mkfs.btrfs -q -f "$@" --rootdir "$tree" "$img"
        ;;
    f2fs)
        run "$log" mkfs.f2fs -q -f "$@" "$img"
        run "$log" sload.f2fs -f "$tree" "$img"
        ;;
    fat)
        run "$log" mkfs.fat "$@" "$img"
        run "$log" mcopy -s -m -i "$img" "$tree"/* ::/
        ;;
    exfat)
        run "$log" mkfs.exfat "$@" "$img"
        fuse_populate mount.exfat-fuse "$img" "$tree"
        run "$log" fsck.exfat -n "$img"
        ;;
    ntfs)
        run "$log" mkntfs -F -Q -s 512 -p 0 -H 0 -S 0 "$@" "$img"
        cmdlog "truncate -s $size $name.raw; mkntfs -F -Q -s 512 -p 0 -H 0 -S 0 ${*:+$* }$name.raw"
        if [[ $tree != - ]]; then
            fuse_populate ntfs-3g "$img" "$tree"
            cmdlog "(losetup; ntfs-3g /dev/loopN MNT; cp -r TREE/. MNT/; umount MNT)"
        fi
        run "$log" ntfsfix -n "$img"
        ;;
    minix)
        run "$log" mkfs.minix "$@" "$img"
        ;;
    esac
}

# ----------------------------------------------------------------------------- partclone
# partclone runs get "-f 0": its progress thread otherwise pads every run to a ~2 s tick. The
# images are byte-identical with and without it. (partclone.chkimg has no -q, and an unknown
# option makes it print usage and exit 0, so success is always judged by its success line.)
declare -A RSHA RSIZE CKSUM

pc_restore() { # IMG|- DEVSIZE OUTFILE  (IMG "-" = stdin)
    local img=$1 size=$2 out=$3 log=$WORK/restore.log
    zero_file "$out" "$size"
    rm -f "$log.L"
    if ! timeout 300 partclone.restore -q -f 0 -s "$img" -O "$out" -L "$log.L" >"$log" 2>&1; then
        tail -n 5 "$log" "$log.L" | cut -c1-300 >&2
        die "partclone.restore of $(rel "$img") failed"
    fi
    grep -aq 'Partclone successfully restored' "$log" "$log.L" ||
        die "partclone.restore of $(rel "$img") printed no success line"
    fit_size "$out" "$size"
}
pc_chkimg() { # IMG: the real partclone.chkimg must accept it
    local log=$WORK/chkimg.log
    rm -f "$log.L"
    run "$log" partclone.chkimg -f 0 -s "$1" -L "$log.L"
    grep -aq 'Partclone successfully checked' "$log" "$log.L" ||
        die "partclone.chkimg of $(rel "$1") printed no success line"
}
pc_devsize() { # IMG -> device size for v2; totalblock*block_size for v1
    local img=$1 ver
    ver=$(od -An -c -j30 -N4 "$img" | tr -d ' ')
    case $ver in
    0002) u64_at "$img" 52 ;;
    0001) python3 -c 'import sys,struct; d=open(sys.argv[1],"rb").read(64); bs,dev,tb=struct.unpack_from("<IQQ",d,36); print(tb*bs)' "$img" ;;
    *) die "$(rel "$img"): not a partclone image (version '$ver')" ;;
    esac
}
# corrupt_check NAME CHECKSUMMED: in the background, flip one byte in the middle of the stored
# data of a copy; partclone.chkimg must then fail (yes) or still pass (no).
corrupt_check() {
    local name=$1 exp=$2 c=$WORK/corrupt.${1//\//_} off b
    off=$(python3 "$SYNTH" midoffset "$OUT/$name")
    cp "$OUT/$name" "$c"
    b=$(od -An -tu1 -j "$off" -N1 "$c" | tr -d ' ')
    printf "\\$(printf '%03o' $((b ^ 0xFF)))" | dd of="$c" bs=1 seek="$off" conv=notrunc status=none
    (
        trap - ERR EXIT
        set +e
        if timeout 120 partclone.chkimg -f 1 -s "$c" -L "$c.L" >"$c.log" 2>&1 </dev/null &&
            grep -aq 'successfully checked' "$c.log" "$c.L"; then
            echo pass >"$c.result"
        else
            echo fail >"$c.result"
        fi
        rm -f "$c"
    ) &
    BG_PIDS+=($!)
    BG_INFO+=("$name|$exp|$c.result|$off")
}
finish_corrupt_checks() {
    step "waiting for the flipped-byte partclone.chkimg checks"
    local i name exp res off r
    for i in "${!BG_PIDS[@]}"; do
        wait "${BG_PIDS[i]}" || true
        IFS='|' read -r name exp res off <<<"${BG_INFO[i]}"
        r=$(cat "$res" 2>/dev/null || echo missing)
        if [[ $exp == yes && $r != fail ]]; then
            die "$name: byte flipped at $off was NOT detected by partclone.chkimg ($r), but checksummed=yes"
        elif [[ $exp == no && $r != pass ]]; then
            die "$name: partclone.chkimg rejected a byte flipped at $off ($r), but checksummed=no"
        fi
        say "   $name: flipped byte at $off -> chkimg $r (checksummed=$exp) ok"
    done
    BG_PIDS=()
}

# pc_variant NAME TOOL SRCNAME CHECKSUMMED VARIANT [partclone options...]
pc_variant() {
    local name=$1 tool=$2 src=$SRC/$3.raw ck=$4 var=$5
    shift 5
    local img=$OUT/$name log=$WORK/clone.log
    step "partclone: $var -> $name"
    rm -f "$img" "$log.L"
    cmdlog "$tool -c -q -f 0 ${*:+$* }-s $(rel "$src") -O $name"
    if ! timeout 300 "$tool" -c -q -f 0 "$@" -s "$src" -O "$img" -L "$log.L" </dev/null >"$log" 2>&1; then
        tail -n 5 "$log" "$log.L" | cut -c1-300 >&2
        die "$tool failed"
    fi
    grep -aq 'Partclone successfully cloned' "$log" "$log.L" || die "$tool printed no success line"
    local size
    size=$(pc_devsize "$img")
    [[ $size == "$(size_of "$src")" ]] || die "header device_size $size != source size $(size_of "$src")"
    pc_chkimg "$img"
    pc_restore "$img" "$size" "$WORK/r.raw"
    RSHA[$name]=$(sha_of "$WORK/r.raw")
    RSIZE[$name]=$size
    CKSUM[$name]=$ck
    add "$name" vpartclone "$size" "${RSHA[$name]}" "$ck" "$var"
    note_vs_source "$src" "${RSHA[$name]}"
    corrupt_check "$name" "$ck"
}

# synth_variant NAME MODE BASE CHECKSUMMED VARIANT: synthesized from a real image
synth_variant() {
    local name=$1 mode=$2 base=$3 ck=$4 var=$5 img=$OUT/$1
    step "synthesizing $mode from $base -> $name"
    cmdlog "python3 tests/synth_partclone.py $mode $base $name"
    python3 "$SYNTH" "$mode" "$OUT/$base" "$img" || die "synth_partclone.py $mode failed"
    pc_chkimg "$img"
    local size
    size=$(pc_devsize "$img")
    [[ $size == "${RSIZE[$base]}" ]] || die "device size $size != ${RSIZE[$base]} of $base"
    pc_restore "$img" "$size" "$WORK/r.raw"
    local sha
    sha=$(sha_of "$WORK/r.raw")
    [[ $sha == "${RSHA[$base]}" ]] || die "restore of $name differs from the restore of $base"
    RSHA[$name]=$sha
    RSIZE[$name]=$size
    add "$name" vpartclone "$size" "$sha" "$ck" "$var"
    corrupt_check "$name" "$ck"
}

# stream_variant NAME BASE VARIANT DECOMPRESS-CMD...: NAME (already written) must decompress,
# with the real decompressor, to BASE; partclone.restore of that stream must equal BASE's.
stream_variant() {
    local name=$1 base=$2 var=$3
    shift 3
    step "checking $name ($var)"
    "$@" | cmp -s - "$OUT/$base" || die "$* does not give back $base"
    "$@" | pc_restore - "${RSIZE[$base]}" "$WORK/r.raw"
    local sha
    sha=$(sha_of "$WORK/r.raw")
    [[ $sha == "${RSHA[$base]}" ]] || die "restore of $name differs from the restore of $base"
    add "$name" vpartclone "${RSIZE[$base]}" "$sha" "${CKSUM[$base]}" "$var"
}
cat_pieces() { cat "$OUT/$1".*; }
# nc_stream_variant NAME BASE VARIANT CMD...: CMD must give back the ntfsclone image BASE
# byte for byte, so NAME restores as BASE did
nc_stream_variant() {
    local name=$1 base=$2 var=$3
    shift 3
    step "checking $name ($var)"
    "$@" | cmp -s - "$OUT/$base" || die "$* does not give back $base"
    add "$name" vntfsclone "${RSIZE[$base]}" "${RSHA[$base]}" no "$var"
}

# ----------------------------------------------------------------------------- partimage
PILOG=/var/log/partimage/partimage-debug.log
pi_run() { # LOG partimage-args...: run partimage (batch, no tty), check exit code and its log
    local log=$1
    shift
    rm -f "$PILOG"
    # partimage's newt UI needs a TERM it knows (it fails with none or "dumb"), even in batch
    # mode and without a tty
    if ! (cd "$OUT" && TERM=vt100 timeout 300 partimage "$@" </dev/null >"$log" 2>&1); then
        tail -n 5 "$log" | cut -c1-300 >&2
        tail -n 20 "$PILOG" >&2 2>/dev/null || true
        die "partimage $* failed"
    fi
    grep -aq 'End of operation: SUCCESS' "$PILOG" || {
        tail -n 20 "$PILOG" >&2 || true
        die "partimage $* did not log 'End of operation: SUCCESS' in $PILOG"
    }
}
# pi_variant NAME SRCNAME MINVOLS VARIANT partimage-options...: writes NAME.000 (.001, ...)
pi_variant() {
    local name=$1 src=$SRC/$2.raw minvols=$3 var=$4
    shift 4
    step "partimage: $var -> $name.000"
    local size
    size=$(size_of "$src")
    loop_attach "$src"
    cmdlog "partimage -b -d -o -f3 ${*:+$* }save /dev/loopN $name   # loop device on $(rel "$src")"
    pi_run "$WORK/pi.log" -b -d -o -f3 "$@" save "$LOOP" "$name"
    loop_detach "$LOOP"
    local n
    n=$(find "$OUT" -maxdepth 1 -name "$name.[0-9][0-9][0-9]" | wc -l)
    ((n >= minvols)) || die "$name: $n volume(s), wanted at least $minvols"
    [[ -f $OUT/$name.000 ]] || die "$name.000 missing"
    # restore onto a loop device backed by a fresh zero-filled file of the partition size
    zero_file "$WORK/r.raw" "$size"
    loop_attach "$WORK/r.raw"
    pi_run "$WORK/pi.log" -b -f3 restore "$LOOP" "$name.000"
    loop_detach "$LOOP"
    fit_size "$WORK/r.raw" "$size"
    local sha
    sha=$(sha_of "$WORK/r.raw")
    local vols="$n volumes"
    ((n > 1)) || vols="1 volume"
    add "$name.000" vpartimage "$size" "$sha" yes "$var, $vols"
    note_vs_source "$src" "$sha"
}

# ----------------------------------------------------------------------------- ntfsclone
nc_restore() { # IMG|- DEVSIZE OUTFILE  (ntfsclone prints no success line: its exit code counts)
    local img=$1 size=$2 out=$3 log=$WORK/ncr.log
    zero_file "$out" "$size"
    if ! timeout 300 ntfsclone --restore-image --overwrite "$out" "$img" >"$log" 2>&1; then
        tail -n 5 "$log" >&2
        die "ntfsclone --restore-image of $(rel "$img") failed"
    fi
    fit_size "$out" "$size"
}
# nc_variant NAME SRCNAME VARIANT [ntfsclone options...]
nc_variant() {
    local name=$1 src=$SRC/$2.raw var=$3
    shift 3
    step "ntfsclone: $var -> $name"
    cmdlog "ntfsclone ${*:+$* }--save-image -o $name $(rel "$src")"
    run "$WORK/nc.log" ntfsclone "$@" --save-image -o "$OUT/$name" "$src"
    local size
    size=$(u64_at "$OUT/$name" 22)
    [[ $size == "$(size_of "$src")" ]] || die "ntfsclone header device size $size != $(size_of "$src")"
    nc_restore "$OUT/$name" "$size" "$WORK/r.raw"
    RSHA[$name]=$(sha_of "$WORK/r.raw")
    RSIZE[$name]=$size
    add "$name" vntfsclone "$size" "${RSHA[$name]}" no "$var"
    note_vs_source "$src" "${RSHA[$name]}"
}

# ============================================================================= the images
MANIFEST=$OUT/manifest.tsv
printf '#image\ttool\tdevice_size\tsha256\tchecksummed\tvariant\n' >"$MANIFEST"
MiB=$((1024 * 1024))

step "generating content trees"
TREE_STD=$WORK/tree-std
TREE_BIG=$WORK/tree-big
TREE_TINY=$WORK/tree-tiny
gen_tree "$TREE_TINY" 3 150000 3

# -- tiny ext2 (1 MiB, 1 KiB blocks): base of the synthesized images, in both modes
mkfs_src ext2 ext2-tiny $MiB "$TREE_TINY" -b 1024 -L tiny -U 6a1e0b5e-0000-4000-8000-000000000001
pc_variant ext2-tiny.pc partclone.ext2 ext2-tiny yes "partclone.ext2 (1 KiB blocks, 1 MiB fs)"

if [[ $MODE == fixtures ]]; then
    pc_variant ext2-tiny-a0.pc partclone.ext2 ext2-tiny no "partclone.ext2 -a0" -a0
    pc_variant ext2-tiny-k5K.pc partclone.ext2 ext2-tiny yes "partclone.ext2 -k 5 -K" -k 5 -K
fi
synth_variant ext2-tiny-v1.pc v1 ext2-tiny.pc no "synthesized v1 (0001) from partclone.ext2"
synth_variant ext2-tiny-bmbyte.pc bmbyte ext2-tiny.pc yes "synthesized v2 BM_BYTE from partclone.ext2"
synth_variant ext2-tiny-bmnone.pc bmnone ext2-tiny.pc yes "synthesized v2 BM_NONE from partclone.ext2"

if [[ $MODE == fixtures ]]; then
    step "making source imager-odd.raw"
    rand_file "$SRC/imager-odd.raw" 123457 11
    pc_variant imager-odd.pc partclone.imager imager-odd yes "partclone.imager, 123457-byte file"

    # partimage needs a block device; a 1 MiB ext2 on a loop device is enough
    pi_variant ext2-tiny.pi ext2-tiny 1 "partimage -z0 ext2 (1 MiB)" -z0
    pi_variant ext2-tiny-gz.pi ext2-tiny 1 "partimage -z1 ext2 (1 MiB)" -z1

    # NTFS needs 2 MiB at least; a bigger one has a bigger $LogFile (4 MiB: 1.7 MB image)
    mkfs_src ntfs ntfs-tiny $((2 * MiB)) "$TREE_TINY" -c 4096 -L tiny
    nc_variant ntfs-tiny.img ntfs-tiny "ntfsclone --save-image, NTFS 2 MiB"
    nc_variant ntfs-tiny-meta.img ntfs-tiny "ntfsclone --metadata --save-image, NTFS 2 MiB" --metadata

    # XXH64 / XXH3-128 images: Debian's partclone 0.3.23 cannot write (or restore) them.
    # Copied from shared/fixtures; the oracle is the one documented there (partclone 0.3.47).
    step "copying the XXH fixtures from shared/fixtures"
    sf=$SHARED_FIXTURES
    [[ -n $sf ]] || for d in "$HERE/../../shared/fixtures" /work/shared/fixtures; do
        [[ -f $d/fat12-xxh64.pc ]] && sf=$d && break
    done
    [[ -n $sf && -f $sf/fat12-xxh64.pc ]] || die "shared/fixtures not found (set SHARED_FIXTURES=DIR)"
    for f in fat12-xxh64.pc fat12-xxh128-k5-noreseed.pc; do
        cp "$sf/$f" "$OUT/$f"
        [[ $(u64_at "$OUT/$f" 52) == 8388608 ]] || die "$f: unexpected device size"
    done
    XXH_SHA=b4e92dec554f336e8933b72b1e3dc10e93b661f97c2ee992c1df15d1b91c5d31
    add fat12-xxh64.pc vpartclone 8388608 $XXH_SHA yes "partclone 0.3.47 partclone.fat -a2 (XXH64), FAT12; oracle from shared/fixtures/README.md"
    add fat12-xxh128-k5-noreseed.pc vpartclone 8388608 $XXH_SHA yes "partclone 0.3.47 partclone.fat -a3 -k 5 -K (XXH3-128, no reseed), FAT12; oracle from shared/fixtures/README.md"
else
    gen_tree "$TREE_STD" 1 300000,123457,654321 50
    gen_tree "$TREE_BIG" 2 300000,123457,654321,2600000 50

    # ------------------------------------------------------------------ partclone, ext*
    mkfs_src ext4 ext4 $((16 * MiB)) "$TREE_STD" -b 4096 -L ext4
    pc_variant ext4.pc partclone.ext4 ext4 yes "partclone.ext4 (4 KiB blocks)"
    mkfs_src ext4 ext4-1k $((16 * MiB)) "$TREE_STD" -b 1024 -L ext4-1k
    pc_variant ext4-1k.pc partclone.ext4 ext4-1k yes "partclone.ext4 (1 KiB blocks)"
    mkfs_src ext2 ext2 $((16 * MiB)) "$TREE_STD" -b 1024 -L ext2
    pc_variant ext2.pc partclone.ext2 ext2 yes "partclone.ext2 (1 KiB blocks)"
    mkfs_src ext3 ext3 $((16 * MiB)) "$TREE_STD" -b 4096 -L ext3
    pc_variant ext3.pc partclone.ext3 ext3 yes "partclone.ext3 (4 KiB blocks)"
    pc_variant ext4-1k-a0.pc partclone.ext4 ext4-1k no "partclone.ext4 -a0 (1 KiB blocks)" -a0
    pc_variant ext4-1k-k7.pc partclone.ext4 ext4-1k yes "partclone.ext4 -k 7 (1 KiB blocks)" -k 7
    pc_variant ext4-1k-k5K.pc partclone.ext4 ext4-1k yes "partclone.ext4 -k 5 -K (1 KiB blocks, no reseed)" -k 5 -K
    pc_variant ext4-1k-z64k.pc partclone.ext4 ext4-1k yes "partclone.ext4 -z 65536 (1 KiB blocks, bpc 64)" -z 65536
    synth_variant ext4-1k-v1.pc v1 ext4-1k.pc no "synthesized v1 (0001) from partclone.ext4 (1 KiB blocks)"
    synth_variant ext4-1k-bmbyte.pc bmbyte ext4-1k.pc yes "synthesized v2 BM_BYTE from partclone.ext4 (1 KiB blocks)"

    # ------------------------------------------------------------------ partclone, other fs
    # xfs: mkfs.xfs refuses < 300 MiB and a log < 64 MiB, so the image holds a 64 MiB log.
    mkfs_src xfs xfs $((300 * MiB)) "$TREE_STD" -L xfs
    pc_variant xfs.pc partclone.xfs xfs yes "partclone.xfs (300 MiB fs)"
    mkfs_src btrfs btrfs $((128 * MiB)) "$TREE_STD" -L btrfs
    pc_variant btrfs.pc partclone.btrfs btrfs yes "partclone.btrfs (128 MiB fs)"
    mkfs_src ntfs ntfs $((32 * MiB)) "$TREE_STD" -c 4096 -L ntfs
    pc_variant ntfs.pc partclone.ntfs ntfs yes "partclone.ntfs (32 MiB fs)"
    # device size not a multiple of the 4 KiB cluster: the partial tail is not stored
    mkfs_src ntfs ntfs-odd $((16 * MiB + 1536)) "$TREE_STD" -c 4096 -L ntfsodd
    pc_variant ntfs-odd.pc partclone.ntfs ntfs-odd yes "partclone.ntfs, device 16 MiB + 1536 bytes"
    mkfs_src fat fat16 $((16 * MiB)) "$TREE_STD" -F 16 -n FAT16
    pc_variant fat16.pc partclone.fat16 fat16 yes "partclone.fat16 (16 MiB)"
    mkfs_src fat fat32 $((40 * MiB)) "$TREE_STD" -F 32 -s 1 -n FAT32
    pc_variant fat32.pc partclone.fat32 fat32 yes "partclone.fat32 (40 MiB, 512-byte clusters)"
    mkfs_src exfat exfat $((16 * MiB)) "$TREE_STD" -L exfat
    pc_variant exfat.pc partclone.exfat exfat yes "partclone.exfat (16 MiB)"
    # f2fs: mkfs.f2fs/partclone.f2fs need about 100 MiB
    mkfs_src f2fs f2fs $((100 * MiB)) "$TREE_STD" -l f2fs
    pc_variant f2fs.pc partclone.f2fs f2fs yes "partclone.f2fs (100 MiB)"
    # minix: no kernel driver or userspace writer here, so the fs stays empty (root dir only);
    # partclone.minix fails on mkfs.minix -3, so this is the default (v1) layout
    mkfs_src minix minix $((8 * MiB)) -
    pc_variant minix.pc partclone.minix minix yes "partclone.minix (v1, 8 MiB, empty)"

    step "making imager sources"
    rand_file "$SRC/imager-odd.raw" 1000000 12
    rand_file "$SRC/imager-4m.raw" $((4 * MiB)) 13
    pc_variant imager-odd.pc partclone.imager imager-odd yes "partclone.imager, 1000000-byte file"
    pc_variant imager-4m.pc partclone.imager imager-4m yes "partclone.imager, 4 MiB file"

    # ------------------------------------------------------------------ split and compressed
    step "splitting ext4.pc"
    split -b 300k "$OUT/ext4.pc" "$OUT/ext4.pc."
    cmdlog "split -b 300k ext4.pc ext4.pc."
    stream_variant ext4.pc.aa ext4.pc "ext4.pc split -b 300k" cat_pieces ext4.pc
    zstd -q -T0 -c "$OUT/ext4.pc" >"$WORK/ext4.pc.zst"
    split -b 300k "$WORK/ext4.pc.zst" "$OUT/ext4.pc.zst."
    cmdlog "zstd -T0 -c ext4.pc > ext4.pc.zst; split -b 300k ext4.pc.zst ext4.pc.zst."
    [[ -f $OUT/ext4.pc.zst.ab ]] || die "ext4.pc.zst is too small to split into 2+ pieces"
    zst_pieces() { cat "$OUT"/ext4.pc.zst.* | zstd -dc; }
    stream_variant ext4.pc.zst.aa ext4.pc "zstd -T0, split -b 300k" zst_pieces

    B=$OUT/ext4-1k.pc
    half=$(($(size_of "$B") / 2))
    step "compressing ext4-1k.pc"
    gzip -n -c "$B" >"$B.gz"
    { head -c "$half" "$B" | pigz -n -b 128 -c; tail -c +$((half + 1)) "$B" | pigz -n -c; } >"$OUT/ext4-1k-2member.pc.gz"
    bzip2 -c "$B" >"$B.bz2"
    zstd -q -T0 -c "$B" >"$B.zst"
    { head -c "$half" "$B" | zstd -q -c; tail -c +$((half + 1)) "$B" | zstd -q -c; } >"$OUT/ext4-1k-2frame.pc.zst"
    xz -T1 -c "$B" >"$B.xz"
    xz --format=lzma -c "$B" >"$B.lzma"
    lz4 -q -c "$B" >"$B.lz4"
    cmdlog "gzip -n -c ext4-1k.pc > ext4-1k.pc.gz"
    cmdlog "(head -c HALF | pigz -n -b 128; tail -c +HALF+1 | pigz -n) > ext4-1k-2member.pc.gz"
    cmdlog "bzip2 / zstd -T0 / xz / xz --format=lzma / lz4 -c ext4-1k.pc > ext4-1k.pc.{bz2,zst,xz,lzma,lz4}"
    cmdlog "(head -c HALF | zstd; tail -c +HALF+1 | zstd) > ext4-1k-2frame.pc.zst"
    stream_variant ext4-1k.pc.gz ext4-1k.pc "gzip of partclone.ext4 (1 KiB)" gzip -dc "$B.gz"
    stream_variant ext4-1k-2member.pc.gz ext4-1k.pc "pigz, 2 gzip members" gzip -dc "$OUT/ext4-1k-2member.pc.gz"
    stream_variant ext4-1k.pc.bz2 ext4-1k.pc "bzip2" bzip2 -dc "$B.bz2"
    stream_variant ext4-1k.pc.zst ext4-1k.pc "zstd -T0" zstd -q -dc "$B.zst"
    stream_variant ext4-1k-2frame.pc.zst ext4-1k.pc "zstd, 2 frames" zstd -q -dc "$OUT/ext4-1k-2frame.pc.zst"
    stream_variant ext4-1k.pc.xz ext4-1k.pc "xz" xz -dc "$B.xz"
    stream_variant ext4-1k.pc.lzma ext4-1k.pc "lzma (xz --format=lzma)" xz --format=lzma -dc "$B.lzma"
    stream_variant ext4-1k.pc.lz4 ext4-1k.pc "lz4 frame" lz4 -q -dc "$B.lz4"

    # ------------------------------------------------------------------ compressed, several restart points
    # xfs.pc (about 70 MiB, mostly the zeroed log) is bigger than a zstd -T0 job (8 MiB at
    # level 3) and than the xz blocks below, so each stream has several restart points.
    X=$OUT/xfs.pc
    step "compressing xfs.pc with every compressor and thread mode"
    zstd -q -T0 -c "$X" >"$X.zst"
    zstd -q -T1 -c "$X" >"$OUT/xfs-T1.pc.zst"
    zstd -q --single-thread -c "$X" >"$OUT/xfs-st.pc.zst"
    pzstd -q -p 2 -c "$X" >"$OUT/xfs-pzstd.pc.zst"
    pigz -n -p 2 -c "$X" >"$X.gz"
    pigz -n -i -p 2 -c "$X" >"$OUT/xfs-i.pc.gz"
    xz -T0 --block-size=4MiB -c "$X" >"$X.xz"
    xz -T1 -c "$X" >"$OUT/xfs-T1.pc.xz"
    lz4 -q -c "$X" >"$X.lz4"
    lz4 -q -BD -c "$X" >"$OUT/xfs-BD.pc.lz4"
    bzip2 -1 -c "$X" >"$X.bz2"
    cmdlog "zstd -T0 | zstd -T1 | zstd --single-thread | pzstd -p 2 -c xfs.pc > xfs{,-T1,-st,-pzstd}.pc.zst"
    cmdlog "pigz -n -p 2 | pigz -n -i -p 2 -c xfs.pc > xfs{,-i}.pc.gz"
    cmdlog "xz -T0 --block-size=4MiB | xz -T1 -c xfs.pc > xfs{,-T1}.pc.xz"
    cmdlog "lz4 | lz4 -BD -c xfs.pc > xfs{,-BD}.pc.lz4; bzip2 -1 -c xfs.pc > xfs.pc.bz2"
    stream_variant xfs.pc.zst xfs.pc "zstd -T0 (several jobs)" zstd -q -dc "$X.zst"
    stream_variant xfs-T1.pc.zst xfs.pc "zstd -T1" zstd -q -dc "$OUT/xfs-T1.pc.zst"
    stream_variant xfs-st.pc.zst xfs.pc "zstd --single-thread" zstd -q -dc "$OUT/xfs-st.pc.zst"
    stream_variant xfs-pzstd.pc.zst xfs.pc "pzstd -p 2 (several frames)" zstd -q -dc "$OUT/xfs-pzstd.pc.zst"
    stream_variant xfs.pc.gz xfs.pc "pigz -p 2" gzip -dc "$X.gz"
    stream_variant xfs-i.pc.gz xfs.pc "pigz -i (independent blocks)" gzip -dc "$OUT/xfs-i.pc.gz"
    stream_variant xfs.pc.xz xfs.pc "xz -T0 --block-size=4MiB" xz -dc "$X.xz"
    stream_variant xfs-T1.pc.xz xfs.pc "xz -T1 (one block)" xz -dc "$OUT/xfs-T1.pc.xz"
    stream_variant xfs.pc.lz4 xfs.pc "lz4 (independent blocks)" lz4 -q -dc "$X.lz4"
    stream_variant xfs-BD.pc.lz4 xfs.pc "lz4 -BD (linked blocks)" lz4 -q -dc "$OUT/xfs-BD.pc.lz4"
    stream_variant xfs.pc.bz2 xfs.pc "bzip2 -1" bzip2 -dc "$X.bz2"
    split -b 400k "$X.gz" "$OUT/xfs-split.pc.gz."
    cmdlog "split -b 400k xfs.pc.gz xfs-split.pc.gz."
    gz_pieces() { cat "$OUT"/xfs-split.pc.gz.* | gzip -dc; }
    stream_variant xfs-split.pc.gz.aa xfs.pc "pigz -p 2, split -b 400k" gz_pieces

    # ------------------------------------------------------------------ partimage
    mkfs_src ext3 ext3-pi $((32 * MiB)) "$TREE_BIG" -b 1024 -L ext3-pi
    pi_variant e3.pi ext3-pi 1 "partimage -z0 ext3 (1 KiB blocks)" -z0
    pi_variant e3gz.pi ext3-pi 1 "partimage -z1 ext3 (1 KiB blocks)" -z1
    pi_variant e3bz.pi ext3-pi 1 "partimage -z2 ext3 (1 KiB blocks)" -z2
    pi_variant e3s.pi ext3-pi 3 "partimage -z0 -V1 ext3 (1 KiB blocks)" -z0 -V1
    pi_variant e3sgz.pi ext3-pi 2 "partimage -z1 -V1 ext3 (1 KiB blocks)" -z1 -V1
    mkfs_src ext3 ext3-4k-pi $((32 * MiB)) "$TREE_STD" -b 4096 -L ext3-4k
    pi_variant e3k.pi ext3-4k-pi 1 "partimage -z0 ext3 (4 KiB fs blocks)" -z0
    pi_variant fat16.pi fat16 1 "partimage -z0 fat16" -z0
    pi_variant fat32gz.pi fat32 1 "partimage -z1 fat32" -z1

    # ------------------------------------------------------------------ ntfsclone
    nc_variant ntfs.img ntfs "ntfsclone --save-image, NTFS 32 MiB"
    nc_variant ntfs-odd.img ntfs-odd "ntfsclone --save-image, device 16 MiB + 1536 bytes"
    nc_variant ntfs-meta.img ntfs "ntfsclone --metadata --save-image, NTFS 32 MiB" --metadata
    step "ntfsclone --save-image -o - | gzip -> ntfs.img.gz"
    ntfsclone --save-image -o - "$SRC/ntfs.raw" 2>"$WORK/nc.log" | gzip -n >"$OUT/ntfs.img.gz"
    cmdlog "ntfsclone --save-image -o - sources/ntfs.raw | gzip -n > ntfs.img.gz"
    gzip -dc "$OUT/ntfs.img.gz" | cmp -s - "$OUT/ntfs.img" ||
        say "   NOTE: ntfsclone -o - output differs from ntfs.img"
    gzip -dc "$OUT/ntfs.img.gz" | nc_restore - "${RSIZE[ntfs.img]}" "$WORK/r.raw"
    sha=$(sha_of "$WORK/r.raw")
    [[ $sha == "${RSHA[ntfs.img]}" ]] || die "restore of ntfs.img.gz differs from ntfs.img"
    add ntfs.img.gz vntfsclone "${RSIZE[ntfs.img]}" "$sha" no "ntfsclone --save-image -o - | gzip"
    N=$OUT/ntfs.img
    step "compressing ntfs.img"
    zstd -q -T0 -c "$N" >"$N.zst"
    xz -T0 --block-size=1MiB -c "$N" >"$N.xz"
    bzip2 -c "$N" >"$N.bz2"
    lz4 -q -c "$N" >"$N.lz4"
    xz --format=lzma -c "$N" >"$N.lzma"
    zstd -q -T0 -c "$N" | split -b 1M - "$OUT/ntfs-split.img.zst."
    cmdlog "zstd -T0 | xz -T0 --block-size=1MiB | bzip2 | lz4 | xz --format=lzma -c ntfs.img > ntfs.img.{zst,xz,bz2,lz4,lzma}"
    cmdlog "zstd -T0 -c ntfs.img | split -b 1M - ntfs-split.img.zst."
    nc_stream_variant ntfs.img.zst ntfs.img "ntfsclone image, zstd -T0" zstd -q -dc "$N.zst"
    nc_stream_variant ntfs.img.xz ntfs.img "ntfsclone image, xz -T0 --block-size=1MiB" xz -dc "$N.xz"
    nc_stream_variant ntfs.img.bz2 ntfs.img "ntfsclone image, bzip2" bzip2 -dc "$N.bz2"
    nc_stream_variant ntfs.img.lz4 ntfs.img "ntfsclone image, lz4" lz4 -q -dc "$N.lz4"
    nc_stream_variant ntfs.img.lzma ntfs.img "ntfsclone image, lzma" xz --format=lzma -dc "$N.lzma"
    nc_zst_pieces() { cat "$OUT"/ntfs-split.img.zst.* | zstd -q -dc; }
    nc_stream_variant ntfs-split.img.zst.aa ntfs.img "ntfsclone image, zstd -T0, split -b 1M" nc_zst_pieces
fi

finish_corrupt_checks

# ----------------------------------------------------------------------------- fixtures README
if [[ $MODE == fixtures ]]; then
    step "writing README.md"
    {
        echo "# Test fixtures"
        echo
        echo "Small images made with the real tools, for unit tests. Regenerate them (CI never does) with"
        echo
        echo '    rm -rf tests/fixtures && bash tests/make-images.sh --fixtures tests/fixtures'
        echo
        echo "File systems are made fresh each time (new UUIDs and time stamps), so the images and"
        echo "sha256 values change when regenerated. \`manifest.tsv\` has one line per image: path, tool,"
        echo "device size, sha256 of the real tool's restore into a zero-filled file of that size,"
        echo "whether a flipped byte in the stored data must be detected, and a description."
        echo
        echo "The two \`fat12-xxh*\` images come from \`shared/fixtures\` (partclone 0.3.47 with libxxhash;"
        echo "Debian's 0.3.23 can neither write nor restore XXH checksums). Their manifest line is the"
        echo "oracle documented there: 8,388,608 bytes, sha256 b4e92dec...5d31."
        echo
        echo "## Tool versions (dpkg)"
        echo
        for p in partclone partimage ntfs-3g e2fsprogs; do
            echo "- $p $(dpkg-query -W -f='${Version}' "$p" 2>/dev/null || echo unknown)"
        done
        echo
        echo "## Commands that made them"
        echo
        echo "Sources are files made with \`truncate\`, populated from a generated tree (make-images.sh"
        echo "\`gen_tree\`: text files, nested directories, an empty directory and 150,000 random bytes)."
        echo "partimage runs on a loop device of the source and restores onto a loop device of a"
        echo "zero-filled file; ntfsclone restores with \`ntfsclone --restore-image --overwrite\`."
        echo "partclone's \`-f 0\` only sets its progress refresh interval (without it every run ends on"
        echo "a ~2 s tick); it does not change the image. imager-odd.raw is 123,457 random bytes."
        echo
        echo '```'
        cat "$CMDLOG"
        echo '```'
    } >"$OUT/README.md"
fi

chmod -R a+rX,u+w "$OUT"
n=$(($(wc -l <"$MANIFEST") - 1))
say "done: $n images in $OUT ($((SECONDS - T0)) s)"
