#!/usr/bin/env bash
# Benchmark: `--extract /` (files read in user space, no root needed) against the way
# without it: `tar` of the same tree through a kernel mount of the restored partition
# (loop mount for ext4, ntfs-3g for NTFS), and for FAT `mcopy -s` (this kernel may have
# no vfat; mtools is the user-space way). All in one run on the same machine.
#
#   bash bench/extract.sh [WORKDIR]    (root; needs partclone, ntfs-3g, e2fsprogs,
#                                       dosfstools, mtools; default WORKDIR
#                                       /tmp/imagebackup-bench-extract)
#
# Builds (once; reruns reuse them):
#   ext4  1.5 GiB, populated through a loop mount (so directories are indexed as the
#         kernel makes them) with /usr/share and /usr/include (~60k files, ~800 MB)
#         -> partclone.extfs ext4.pc, restored by partclone into ext4.restored
#   NTFS  512 MiB through ntfs-3g, /usr/include  -> ntfsclone ntfs.img (restored too)
#   FAT32 512 MiB through mcopy, /usr/include    -> partclone.fat fat32.pc
# Fairness: both sides write into the same tmpfs and read from the page cache: before
# each run the caches are dropped and the image (ours) or the restored partition (tar's
# loop device or ntfs-3g) is read once into the cache. tar writes with `tar -xf -`
# (`-cf - . | tar -xf -`), keeping modes and times as we do; the time is from start to
# the last byte written. RUNS runs each (default 3); min-max, and ours/reference of the
# best runs (speed ratio: > 1 means we are faster).
set -Eeuo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."
REPO=$PWD
WORK=${1:-/tmp/imagebackup-bench-extract}
RUNS=${RUNS:-3}
mkdir -p "$WORK"; WORK=$(cd "$WORK" && pwd)
MNT=$WORK/mnt; OUT=$WORK/out
mkdir -p "$MNT" "$OUT"
[ "$(id -u)" = 0 ] || { echo "must run as root (loop mounts, drop_caches)" >&2; exit 1; }
cleanup() {
    set +e
    mountpoint -q "$MNT" && umount "$MNT"
    mountpoint -q "$OUT" && umount "$OUT"
}
trap cleanup EXIT

cargo build --release -q -p imagebackup-cli
BIN=$REPO/target/release

cd "$WORK"
if [ ! -f ext4.pc ]; then
    rm -f ext4.raw; truncate -s 1536M ext4.raw; mkfs.ext4 -q -F ext4.raw
    mount -o loop ext4.raw "$MNT"; cp -a /usr/share /usr/include "$MNT/"; umount "$MNT"
    partclone.extfs -c -q -f 0 -s ext4.raw -O ext4.pc >/dev/null 2>&1
    rm -f ext4.raw; truncate -s 1536M ext4.restored
    partclone.extfs -r -q -f 0 -s ext4.pc -O ext4.restored >/dev/null 2>&1
fi
if [ ! -f ntfs.img ]; then
    rm -f ntfs.raw; truncate -s 512M ntfs.raw; mkntfs -q -F -Q ntfs.raw 2>/dev/null
    ntfs-3g ntfs.raw "$MNT"; cp -a /usr/include "$MNT/"; umount "$MNT"
    ntfsclone -q --save-image -o ntfs.img ntfs.raw 2>/dev/null
    rm -f ntfs.raw; truncate -s 512M ntfs.restored
    ntfsclone -q --restore-image --overwrite ntfs.restored ntfs.img 2>/dev/null
fi
if [ ! -f fat32.pc ]; then
    rm -f fat32.raw; truncate -s 512M fat32.raw; mkfs.vfat -F 32 fat32.raw >/dev/null
    # FAT has no symbolic links: mcopy -s skips them.
    mcopy -s -m -Q -i fat32.raw /usr/include ::/ 2>/dev/null || true
    partclone.fat -c -q -f 0 -s fat32.raw -O fat32.pc >/dev/null 2>&1
    mv fat32.raw fat32.restored
fi

mountpoint -q "$OUT" || mount -t tmpfs -o size=4g tmpfs "$OUT"
fresh() { sync; echo 3 >/proc/sys/vm/drop_caches; cat "$@" >/dev/null; rm -rf "${OUT:?}"/*; mkdir -p "$OUT/x"; }
now() { date +%s.%N; }
# time_runs NAME COMMAND...: seconds of each run, space-separated (COMMAND after `fresh`).
declare -A T
best() { tr ' ' '\n' <<<"$1" | sort -g | head -1; }
worst() { tr ' ' '\n' <<<"$1" | sort -g | tail -1; }

run_ours() { # image tool
    local s; fresh "$1"; s=$(now)
    "$BIN/$2" "$1" --extract / --to "$OUT/x" -q
    echo "$(now) - $s" | bc
}
run_tar_loop() { # restored
    local s; fresh "$1"; mount -o loop,ro "$1" "$MNT"; s=$(now)
    tar -C "$MNT" -cf - . | tar -C "$OUT/x" -xf -
    local e; e=$(now); umount "$MNT"; echo "$e - $s" | bc
}
run_tar_ntfs3g() { # restored
    local s; fresh "$1"; ntfs-3g -o ro "$1" "$MNT"; s=$(now)
    tar -C "$MNT" -cf - . | tar -C "$OUT/x" -xf -
    local e; e=$(now); umount "$MNT"; echo "$e - $s" | bc
}
run_mcopy() { # restored
    local s; fresh "$1"; s=$(now)
    mcopy -s -m -n -Q -i "$1" '::*' "$OUT/x/" 2>/dev/null || true
    echo "$(now) - $s" | bc
}

report() { # label ours-times ref-times bytes
    local bo br mb
    bo=$(best "$2"); br=$(best "$3"); mb=$(echo "$4 / 1048576" | bc)
    printf '%-6s %5d MiB  ours %6.2f-%6.2f s (%4.0f MiB/s)  reference %6.2f-%6.2f s (%4.0f MiB/s)  ours/reference speed %.2fx\n' \
        "$1" "$mb" "$bo" "$(worst "$2")" "$(echo "$mb / $bo" | bc -l)" "$br" "$(worst "$3")" \
        "$(echo "$mb / $br" | bc -l)" "$(echo "$br / $bo" | bc -l)"
}

for case in "ext4 ext4.pc vpartclone ext4.restored run_tar_loop" \
            "ntfs ntfs.img vntfsclone ntfs.restored run_tar_ntfs3g" \
            "fat32 fat32.pc vpartclone fat32.restored run_mcopy"; do
    read -r name image tool restored ref <<<"$case"
    ours=""; theirs=""
    for _ in $(seq "$RUNS"); do
        ours="$ours $(run_ours "$image" "$tool")"
        theirs="$theirs $($ref "$restored")"
    done
    bytes=$(du -sb "$OUT/x" | cut -f1)
    files=$(find "$OUT/x" | wc -l)
    report "$name" "${ours# }" "${theirs# }" "$bytes"
    echo "       ($files entries; reference: ${ref#run_})"
done
