#!/usr/bin/env bash
# make-clonezilla.sh - build small whole disks, save each with the REAL Clonezilla
# (`ocs-sr savedisk`) and restore the image directory with `ocs-sr restoredisk` onto a fresh
# zero-filled disk of the same size. That restored disk is the oracle for vclonezilla: a
# virtual disk served from the image directory must equal it byte for byte.
#
#   bash tests/make-clonezilla.sh OUTDIR
#
# OUTDIR must not exist or be empty. Written:
#   OUTDIR/images/CASE/        the image directory exactly as `ocs-sr savedisk` wrote it (and
#                              `cnvt-ocs-dev` renamed it to sda, for the cases that say so)
#   OUTDIR/restored/CASE.img   what `ocs-sr restoredisk` wrote onto a zeroed loop file (sparse)
#   OUTDIR/logs/CASE.*.log     the ocs-sr output of each save and restore
#   OUTDIR/versions.txt        the versions of the tools that made them
#   OUTDIR/manifest.tsv        written last: a run that failed leaves none
#
# manifest.tsv: header line, then one line per case, tab-separated:
#   case       name of the case (the directory under images/)
#   disk       the disk name the image holds (its `disk` file: loop3, sda, ...)
#   disk_size  bytes of the disk (source and restored)
#   sha256     of restored/CASE.img
#   save_s     seconds `ocs-sr savedisk` took
#   restore_s  seconds `ocs-sr restoredisk` took
#   variant    free text: table, file systems, ocs-sr options
#
# The cases (issue #13):
#   mbr-zst-split         parted, 1 MiB aligned: primaries, an 0F extended with logicals; ext4,
#                         vfat, swap with label and UUID; zstd, split into 1 MB pieces
#   dos-pigz              DOS style: cylinder aligned, first partition at 63, EBRs at start-63,
#                         an 05 extended, a primary after it, a raw partition; pigz; sda names
#   gpt-ntfsclone-xz      sgdisk: ESP, ext4 (LegacyBIOSBootable), NTFS, swap, raw; ntfsclone for
#                         NTFS, xz, split into 2 MB pieces
#   gpt-partclone-uncomp  the same GPT disk saved again: partclone for NTFS, uncompressed; sda names
# Every source disk is filled with pseudo-random bytes first, so the zeros in a restore mean
# something; the boot code in sector 0 and in the first EBR is random too.
#
# Needs root, loop devices, /dev/fuse (ntfs-3g) and (Debian): clonezilla drbl parted gdisk lzop
# partclone ntfs-3g dosfstools mtools e2fsprogs util-linux zstd xz-utils pigz python3.
# Mind that ocs-sr deactivates every LVM logical volume of the machine (ocs-lvm2-stop) and
# switches off swap on the disks it handles; the script refuses to run where LVs exist.
set -Eeuo pipefail
export LC_ALL=C LANG=C TZ=UTC MTOOLS_SKIP_CHECK=1
umask 022

PROG=make-clonezilla.sh
STEP="startup"
WORK=""
LOOPS=()
MOUNTS=()
IMGS=()
TMP_BEFORE=""
CACHE_EXISTED=yes
T0=$SECONDS

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

# Leave nothing behind: mounts, partition mappings, loop devices, the work directory, and what
# ocs-sr leaves in /tmp (only what appeared during this run).
cleanup() {
    local rc=$?
    set +e
    trap - ERR
    local i p
    for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
        if mountpoint -q "${MOUNTS[i]}"; then
            umount "${MOUNTS[i]}" 2>/dev/null || umount -l "${MOUNTS[i]}"
        fi
    done
    for p in "${LOOPS[@]}"; do
        partx -d "$p" 2>/dev/null
        losetup -d "$p" 2>/dev/null
    done
    [[ -n $WORK && -d $WORK ]] && rm -rf "$WORK"
    for p in /tmp/parttable-ocs.*; do
        [[ -e $p && $'\n'$TMP_BEFORE$'\n' != *$'\n'$p$'\n'* ]] && rm -f "$p"
    done
    [[ $CACHE_EXISTED == no ]] && rm -rf /tmp/ocs-cache
    for p in "${IMGS[@]}"; do rm -rf "/tmp/$p-tmp-cnvted"; done
    if ((rc != 0)); then
        [[ -n ${OUT:-} && -f $OUT/manifest.tsv ]] && mv -f "$OUT/manifest.tsv" "$OUT/manifest.tsv.incomplete"
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
case ${1:-} in
-h | --help | "" | -*) usage ;;
*) OUT=$1 ;;
esac
if [[ -e $OUT ]]; then
    [[ -d $OUT ]] || die "$OUT exists and is not a directory"
    [[ -z $(ls -A "$OUT") ]] || die "$OUT exists and is not empty"
fi
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK=$OUT/.work
OCSROOT=$OUT/images
mkdir -p "$WORK" "$OCSROOT" "$OUT/restored" "$OUT/logs"

# ocs-sr sleeps 1-2 s at a dozen places (waiting for udev, which this machine lacks; partprobe's
# BLKPG calls create the device nodes before they return), half of a run's time. A `sleep` that
# waits 0.1 s instead is put first in ocs-sr's PATH; the restored bytes are the same either way
# (checked once by hand: the same directory restored with both gave the same sha256).
# CZ_REAL_SLEEP=1 keeps the real one.
OCS_PATH=$PATH
if [[ -z ${CZ_REAL_SLEEP:-} ]]; then
    mkdir -p "$WORK/bin"
    printf '#!/bin/sh\nexec /bin/sleep 0.1\n' >"$WORK/bin/sleep"
    chmod +x "$WORK/bin/sleep"
    OCS_PATH=$WORK/bin:$PATH
fi

# ----------------------------------------------------------------------------- tool check
step "checking tools"
[[ $(id -u) == 0 ]] || die "must run as root (loop devices, ocs-sr)"
NEED=(ocs-sr cnvt-ocs-dev parted sgdisk sfdisk partx losetup blockdev mkfs.ext4 mkfs.ext3
    mkfs.ext2 mkfs.fat mcopy mkswap mkntfs ntfs-3g ntfsclone partclone.ext4 partclone.vfat
    partclone.ntfs partclone.dd lzop zstd xz pigz python3 sha256sum fallocate timeout)
missing=()
for c in "${NEED[@]}"; do command -v "$c" >/dev/null 2>&1 || missing+=("$c"); done
((${#missing[@]} == 0)) || die "missing tools: ${missing[*]} (Debian packages: clonezilla drbl parted gdisk lzop partclone ntfs-3g dosfstools mtools e2fsprogs util-linux zstd xz-utils pigz python3)"
[[ -e /dev/fuse ]] || die "/dev/fuse is missing (ntfs-3g fills the NTFS partition)"
if command -v lvs >/dev/null 2>&1 && [[ -n $(lvs --noheadings 2>/dev/null) ]]; then
    die "this machine has LVM logical volumes, which ocs-sr would deactivate (ocs-lvm2-stop)"
fi
TMP_BEFORE=$(printf '%s\n' /tmp/parttable-ocs.*)
[[ -e /tmp/ocs-cache ]] || CACHE_EXISTED=no
{
    dpkg-query -W -f '${Package} ${Version}\n' clonezilla drbl partclone util-linux gdisk parted \
        ntfs-3g e2fsprogs dosfstools zstd xz-utils pigz lzop 2>/dev/null || true
    uname -r
} >"$OUT/versions.txt"

# ----------------------------------------------------------------------------- helpers
# run LOG CMD...: stdin from /dev/null, output to LOG; on failure show LOG's tail and die
run() {
    local log=$1
    shift
    if ! timeout 300 "$@" </dev/null >"$log" 2>&1; then
        tail -n 25 "$log" | cut -c1-300 >&2
        die "command failed: $*"
    fi
}
sha_of() {
    local s
    s=$(sha256sum "$1")
    printf '%s' "${s%% *}"
}
loop_attach() { # FILE -> sets LOOP
    LOOP=$(losetup -f --show "$1") || die "losetup failed for $1"
    LOOPS+=("$LOOP")
}
loop_detach() { # DEV: drop its partition mappings, then the device
    local d=$1 l keep=()
    blockdev --flushbufs "$d" || true
    partx -d "$d" 2>/dev/null || true
    losetup -d "$d" || die "losetup -d $d failed"
    for l in "${LOOPS[@]}"; do [[ $l == "$d" ]] || keep+=("$l"); done
    LOOPS=("${keep[@]}")
}
# add_parts DEV COUNT: map the partitions (this kernel parses no tables) and wait for the nodes.
# parted and sgdisk map some themselves (BLKPG) and `partx -u` stops at a hole in the numbers,
# so drop them all, then add them all.
add_parts() {
    local dev=$1 n=$2 i
    partx -d "$dev" 2>/dev/null || true
    partx -a "$dev" || die "partx -a $dev failed"
    for i in $(seq 1 50); do
        [[ -b ${dev}p$n ]] && return 0
        sleep 0.1
    done
    die "${dev}p$n did not appear after partx -a"
}
# random_fill FILE SIZE SEED: the whole file, pseudo-random
random_fill() {
    python3 - "$@" <<'EOF'
import random, sys
path, size, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
r = random.Random(seed)
with open(path, "wb") as f:
    for _ in range(size >> 20):
        f.write(r.randbytes(1 << 20))
EOF
}
# random_bytes_at FILE_OR_DEV OFFSET LEN SEED: overwrite LEN bytes in place
random_bytes_at() {
    python3 - "$@" <<'EOF'
import os, random, sys
path, off, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
fd = os.open(path, os.O_WRONLY)
os.pwrite(fd, random.Random(seed).randbytes(n), off)
os.fsync(fd)
os.close(fd)
EOF
}
# gen_tree DIR SEED RANDOM_SIZES(comma list): a small deterministic directory tree
gen_tree() {
    python3 - "$@" <<'EOF'
import os, random, sys
root, seed, sizes = sys.argv[1], int(sys.argv[2]), sys.argv[3]
r = random.Random(seed)
words = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima".split()
def w(rel, data):
    p = os.path.join(root, rel)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "wb") as f:
        f.write(data)
w("README.txt", b"imagebackup clonezilla test file system\n")
w("docs/words.txt", "".join("%05d %s\n" % (i, " ".join(r.choice(words) for _ in range(8)))
                            for i in range(3000)).encode())
w("deep/a/b/leaf.txt", b"leaf\n")
for i, n in enumerate(int(x) for x in sizes.split(",") if x):
    w("data/random-%d.bin" % (i + 1), r.randbytes(n))
EOF
}
fill_ext() { # KIND DEV LABEL SEED SIZES
    local tree=$WORK/tree-$4
    gen_tree "$tree" "$4" "$5"
    run "$WORK/mkfs.log" "mkfs.$1" -q -F -L "$3" -d "$tree" "$2"
    rm -rf "$tree"
}
fill_fat() { # DEV FATBITS LABEL SEED SIZES
    local tree=$WORK/tree-$4
    gen_tree "$tree" "$4" "$5"
    run "$WORK/mkfs.log" mkfs.fat -F "$2" -n "$3" "$1"
    run "$WORK/mcopy.log" mcopy -s -m -i "$1" "$tree"/* ::/
    rm -rf "$tree"
}
fill_ntfs() { # DEV LABEL SEED SIZES
    local tree=$WORK/tree-$3 mnt=$WORK/mnt
    gen_tree "$tree" "$3" "$4"
    run "$WORK/mkfs.log" mkntfs -F -Q -L "$2" "$1"
    mkdir -p "$mnt"
    run "$WORK/mount.log" ntfs-3g "$1" "$mnt"
    MOUNTS+=("$mnt")
    cp -r "$tree"/. "$mnt"/
    sync
    umount "$mnt" || die "umount $mnt failed"
    MOUNTS=("${MOUNTS[@]:0:${#MOUNTS[@]}-1}")
    run "$WORK/ntfsfix.log" ntfsfix -n "$1"
    rm -rf "$tree"
}

# ----------------------------------------------------------------------------- ocs-sr
MANIFEST_LINES=()
declare -A SAVE_S

# save CASE DEV OCS-OPTIONS...: ocs-sr savedisk DEV into images/IMG; IMG is unique to this run
# (restore works in /tmp/IMG-tmp-cnvted) and becomes images/CASE at the end.
save() {
    local case=$1 dev=$2 img=ibcz$$-$1 log=$OUT/logs/$1.save.log t
    shift 2
    step "$case: ocs-sr savedisk ($*)"
    IMGS+=("$img")
    t=$SECONDS
    if ! PATH=$OCS_PATH timeout 600 ocs-sr -or "$OCSROOT" -b -nogui "$@" -sfsck -senc -scs -p true \
        savedisk "$img" "${dev#/dev/}" </dev/null >"$log" 2>&1; then
        tail -n 30 "$log" | cut -c1-300 >&2
        die "ocs-sr savedisk failed (log: $log)"
    fi
    SAVE_S[$case]=$((SECONDS - t))
    # ocs-sr exits 0 even when a partition failed: its log and the directory must say success
    grep -aq 'Ending /usr/sbin/ocs-sr at' "$log" || die "ocs-sr savedisk did not finish (log: $log)"
    if grep -aqiE 'failed|error:' "$log"; then
        grep -aiE 'failed|error:' "$log" | head >&2
    fi
    [[ -s $OCSROOT/$img/disk && -s $OCSROOT/$img/parts ]] || die "$img: no disk/parts file"
    local p n
    for p in $(cat "$OCSROOT/$img/parts"); do
        compgen -G "$OCSROOT/$img/$p.*" >/dev/null || die "$img: no image file for partition $p"
        grep -aq "^Finished saving /dev/$p as " "$log" || die "$img: no 'Finished saving /dev/$p' in $log"
    done
    # every partclone run (all but ntfsclone's) ends with this line
    n=$(cd "$OCSROOT/$img" && compgen -G '*-ptcl-img*' | sed 's/\..*//' | sort -u | wc -l)
    [[ $(grep -ac '^Cloned successfully' "$log") == "$n" ]] ||
        die "$img: $n partclone images but $(grep -ac '^Cloned successfully' "$log") 'Cloned successfully' lines in $log"
    say "   saved in ${SAVE_S[$case]} s: $(cat "$OCSROOT/$img/parts")"
}
# rename CASE NEWDISK: Clonezilla's own renaming of the devices in the image (loopN -> sda)
rename_disk() {
    local img=ibcz$$-$1 old
    old=$(cat "$OCSROOT/$img/disk")
    step "$1: cnvt-ocs-dev $old -> $2"
    run "$OUT/logs/$1.cnvt.log" cnvt-ocs-dev -b -d "$OCSROOT" "$img" "$old" "$2"
    [[ $(cat "$OCSROOT/$img/disk") == "$2" ]] || die "cnvt-ocs-dev did not rename $old to $2"
}
# restore CASE SIZE VARIANT: ocs-sr restoredisk onto a fresh zeroed sparse file of SIZE bytes
restore() {
    local case=$1 size=$2 variant=$3 img=ibcz$$-$1 log=$OUT/logs/$1.restore.log t
    local target=$OUT/restored/$1.img
    step "$case: ocs-sr restoredisk"
    rm -f "$target"
    truncate -s "$size" "$target"
    loop_attach "$target"
    t=$SECONDS
    if ! PATH=$OCS_PATH timeout 600 ocs-sr -or "$OCSROOT" -b -nogui -j2 -k0 -scr -irhr -irvd -ius -iui -iefi \
        -p true restoredisk "$img" "${LOOP#/dev/}" </dev/null >"$log" 2>&1; then
        tail -n 30 "$log" | cut -c1-300 >&2
        die "ocs-sr restoredisk failed (log: $log)"
    fi
    local restore_s=$((SECONDS - t))
    grep -aq 'End of restoredisk job' "$log" || {
        tail -n 30 "$log" | cut -c1-300 >&2
        die "ocs-sr restoredisk log lacks 'End of restoredisk job' (log: $log)"
    }
    local parts n
    parts=$(wc -w <"$OCSROOT/$img/parts")
    n=$(grep -ac '^Finished unicast restoring image' "$log")
    ((n == parts)) || die "$parts partitions in parts, but $n 'Finished unicast restoring' lines in $log"
    n=$(cd "$OCSROOT/$img" && compgen -G '*-ptcl-img*' | sed 's/\..*//' | sort -u | wc -l)
    [[ $(grep -ac '^Cloned successfully' "$log") == "$n" ]] ||
        die "$n partclone images but $(grep -ac '^Cloned successfully' "$log") 'Cloned successfully' lines in $log"
    if grep -aqiE 'failed to restore|partclone fail|error exit' "$log"; then
        grep -aiE 'failed to restore|partclone fail|error exit' "$log" | head >&2
        die "ocs-sr restoredisk reported a failure (log: $log)"
    fi
    loop_detach "$LOOP"
    [[ $(stat -c %s "$target") == "$size" ]] || die "restored disk changed size"
    fallocate --dig-holes "$target"
    local sha disk
    sha=$(sha_of "$target")
    disk=$(cat "$OCSROOT/$img/disk")
    MANIFEST_LINES+=("$(printf '%s\t%s\t%s\t%s\t%s\t%s\t%s' "$case" "$disk" "$size" "$sha" \
        "${SAVE_S[$case]}" "$restore_s" "$variant")")
    say "   restored in $restore_s s: sha256 ${sha:0:16}..."
}

# ----------------------------------------------------------------------------- (a) MBR, parted
MiB=$((1 << 20))
step "mbr: building a 128 MiB MBR disk with parted"
SRC=$WORK/mbr.raw
random_fill "$SRC" $((128 * MiB)) 101
loop_attach "$SRC"
D=$LOOP
run "$WORK/parted.log" parted -s -a optimal "$D" -- mklabel msdos \
    mkpart primary ext4 1MiB 33MiB set 1 boot on \
    mkpart primary fat16 33MiB 49MiB \
    mkpart extended 49MiB 120MiB \
    mkpart logical linux-swap 50MiB 58MiB \
    mkpart logical ext4 59MiB 91MiB \
    mkpart logical fat16 92MiB 120MiB
add_parts "$D" 7
random_bytes_at "$D" 0 440 102                # boot code (the table and disk id stay)
random_bytes_at "$D" $((49 * MiB)) 446 103    # the first EBR's boot code
fill_ext ext4 "${D}p1" cz-root 104 1500000,700000,3000
fill_fat "${D}p2" 16 CZ-BOOT 105 900000,250000
run "$WORK/mkswap.log" mkswap -L cz-swap -U 3f6b1c4e-8f1d-4c55-9a7e-2b0c9d5e1a77 "${D}p5"
fill_ext ext4 "${D}p6" cz-home 106 2500000,40000
fill_fat "${D}p7" 16 CZ-DATA 107 1200000
save mbr-zst-split "$D" -q2 -z9p -j2 -i 1
loop_detach "$D"
rm -f "$SRC"
restore mbr-zst-split $((128 * MiB)) \
    "msdos by parted, 1 MiB aligned: ext4 (boot), vfat, extended: swap (label, UUID), ext4, vfat; -q2 -z9p -i 1 (zstd, 1 MB pieces), loop names"

# ----------------------------------------------------------------------------- (b) DOS, CHS
step "dos: building a 64 MiB cylinder-aligned DOS disk (start 63, EBRs at start-63)"
SRC=$WORK/dos.raw
random_fill "$SRC" $((64 * MiB)) 201
# The table as DOS fdisk wrote it: partitions on cylinder boundaries (16065 sectors), the first
# at 63, an 05 extended container holding two logicals with their EBRs 63 sectors before them,
# and a primary after the container; random boot code in the MBR and in the first EBR.
python3 - "$SRC" <<'EOF'
import os, random, struct, sys
r = random.Random(202)
CYL = 16065
def chs(lba):
    c, h, s = lba // CYL, (lba // 63) % 255, lba % 63 + 1
    return bytes([0xFE, 0xFF, 0xFF]) if c > 1023 else bytes([h, s | ((c >> 2) & 0xC0), c & 0xFF])
def entry(boot, typ, start, size, base=0):
    return bytes([0x80 if boot else 0]) + chs(start) + bytes([typ]) + chs(start + size - 1) + \
        struct.pack("<II", start - base, size)
def sector(boot_code, entries):
    body = b"".join(entries).ljust(64, b"\0")
    return boot_code + body + b"\x55\xaa"
fd = os.open(sys.argv[1], os.O_WRONLY)
put = lambda lba, data: os.pwrite(fd, data, lba * 512)
p1 = (63, 2 * CYL - 63)                  # FAT16, bootable
ext = (2 * CYL, 5 * CYL)                 # 05 container, cylinders 2..6
l5 = (2 * CYL + 63, 2 * CYL - 63)        # ext3
l6 = (4 * CYL + 63, 3 * CYL - 63)        # raw data (type da)
p3 = (7 * CYL, CYL)                      # ext2, after the container
mbr_code = r.randbytes(440) + struct.pack("<I", 0x0D05C0DE) + b"\0\0"
put(0, sector(mbr_code, [entry(True, 0x06, *p1), entry(False, 0x05, *ext),
                         entry(False, 0x83, *p3)]))
e5, e6 = l5[0] - 63, l6[0] - 63
put(e5, sector(r.randbytes(446), [entry(False, 0x83, l5[0], l5[1], e5),
                                  entry(False, 0x05, e6, l6[0] + l6[1] - e6, ext[0])]))
put(e6, sector(bytes(446), [entry(False, 0xDA, l6[0], l6[1], e6)]))
os.close(fd)
EOF
loop_attach "$SRC"
D=$LOOP
add_parts "$D" 6
fill_fat "${D}p1" 16 DOSBOOT 203 700000,300000
fill_ext ext3 "${D}p5" cz-dos5 204 1800000
# raw data: zeros with 3 MiB of random bytes from 1 MiB on and 64 KiB more at the very end
RAW_LEN=$(((3 * 16065 - 63) * 512))
head -c "$RAW_LEN" /dev/zero >"${D}p6"
random_bytes_at "${D}p6" "$MiB" $((3 * MiB)) 205
random_bytes_at "${D}p6" $((RAW_LEN - 65536)) 65536 207
fill_ext ext2 "${D}p3" cz-dos3 206 600000
save dos-pigz "$D" -q2 -z1p -j2 -i 0
loop_detach "$D"
rm -f "$SRC"
rename_disk dos-pigz sda
restore dos-pigz $((64 * MiB)) \
    "msdos DOS-style, cylinder aligned, start 63, EBRs at start-63: vfat (boot), 05 extended: ext3, raw (da); ext2 after it; -q2 -z1p (pigz), renamed to sda"

# ----------------------------------------------------------------------------- (c, d) GPT
step "gpt: building a 128 MiB GPT disk with sgdisk"
SRC=$WORK/gpt.raw
random_fill "$SRC" $((128 * MiB)) 301
loop_attach "$SRC"
D=$LOOP
run "$WORK/sgdisk.log" sgdisk -o \
    -n 1:2048:+24M -t 1:ef00 -c 1:"EFI System Partition" -A 1:set:0 \
    -n 2:0:+32M -t 2:8300 -c 2:"linux root" -A 2:set:2 \
    -n 3:0:+40M -t 3:0700 -c 3:"Basic data" -A 3:set:63 \
    -n 4:0:+8M -t 4:8200 -c 4:swap \
    -n 5:+1M:+6M -t 5:8301 -c 5:"raw data" \
    "$D"
add_parts "$D" 5
random_bytes_at "$D" 0 440 302               # boot code in the protective MBR
fill_fat "${D}p1" 16 CZ-ESP 303 400000
fill_ext ext4 "${D}p2" cz-gpt-root 304 2000000,900000
fill_ntfs "${D}p3" CZ-NTFS 305 2500000,1100000,5000
run "$WORK/mkswap.log" mkswap -L gpt-swap -U 0c1f2e3d-4b5a-4968-8776-a5b4c3d2e1f0 "${D}p4"
random_bytes_at "${D}p5" 0 $((6 * MiB)) 306
save gpt-ntfsclone-xz "$D" -q -q2 -z5 -j2 -i 2
save gpt-partclone-uncomp "$D" -q2 -z0 -j2 -i 0
loop_detach "$D"
rm -f "$SRC"
restore gpt-ntfsclone-xz $((128 * MiB)) \
    "gpt by sgdisk: ESP vfat (RequiredPartition), ext4 (LegacyBIOSBootable), NTFS (GUID:63), swap (label, UUID), raw after a 1 MiB gap; -q -q2 -z5 -i 2 (ntfsclone for NTFS, xz, 2 MB pieces), loop names"
rename_disk gpt-partclone-uncomp sda
restore gpt-partclone-uncomp $((128 * MiB)) \
    "the same gpt disk saved again: -q2 -z0 (partclone for NTFS, uncompressed), renamed to sda"

# ----------------------------------------------------------------------------- results
step "writing the manifest"
for img in "${IMGS[@]}"; do
    mv "$OCSROOT/$img" "$OCSROOT/${img#ibcz$$-}"
done
{
    printf 'case\tdisk\tdisk_size\tsha256\tsave_s\trestore_s\tvariant\n'
    printf '%s\n' "${MANIFEST_LINES[@]}"
} >"$OUT/manifest.tsv.tmp"
mv "$OUT/manifest.tsv.tmp" "$OUT/manifest.tsv"
say "done in $((SECONDS - T0)) s; $(du -sh "$OUT" | cut -f1) in $OUT"
