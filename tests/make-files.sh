#!/usr/bin/env bash
# Builds real file systems with the real tools for tests/tests/files.rs, images them
# with partclone, ntfsclone and partimage, and leaves beside each the tree as the
# kernel (or mtools) reads it: OUT/<fs>.oracle. Needs root (loop mounts, partimage
# on a loop device) and e2fsprogs, ntfs-3g, dosfstools, mtools, partclone, partimage,
# zstd. Usage: make-files.sh OUT
set -Eeuo pipefail
OUT=$(realpath -m "$1")
mkdir -p "$OUT"
cd "$OUT"
export TZ=UTC
MNT=$OUT/mnt
mkdir -p "$MNT"
loops=()
cleanup() {
    mountpoint -q "$MNT" && umount "$MNT" || true
    for l in "${loops[@]}"; do losetup -d "$l" 2>/dev/null || true; done
}
trap cleanup EXIT

# The common tree: text, random bytes, a sparse file, nested and empty
# directories, long names, odd modes and times.
common_tree() {
    local d=$1
    mkdir -p "$d/a/b/c" "$d/dir with space" "$d/empty"
    printf 'hello from a file\n' >"$d/a/file.txt"
    head -c 300000 /dev/urandom >"$d/a/b/random.bin"
    head -c 5000 /dev/urandom >"$d/a/b/c/leaf.bin"
    truncate -s 10M "$d/sparse.bin"
    printf 'data in the middle' | dd of="$d/sparse.bin" bs=1 seek=5000000 conv=notrunc status=none
    printf 'tail' | dd of="$d/sparse.bin" bs=1 seek=10485756 conv=notrunc status=none
    : >"$d/empty-file"
    printf 'x%.0s' {1..200} >"$d/dir with space/$(printf 'L%.0s' {1..200}).txt"
    local deep=$d/deep
    for i in $(seq 1 40); do deep=$deep/d$i; done
    mkdir -p "$deep"
    printf 'bottom\n' >"$deep/bottom.txt"
    chmod 0750 "$d/a/b"
    chmod 0600 "$d/a/b/random.bin"
    chmod 0755 "$d/a/file.txt"
    touch -d '2001-02-03 04:05:06' "$d/a/file.txt"
    touch -d '2010-06-07 08:09:10' "$d/a/b/c"
}

# ext and NTFS: links too.
unix_tree() {
    local d=$1
    common_tree "$d"
    ln "$d/a/file.txt" "$d/hard-link.txt"
    ln "$d/a/b/c/leaf.bin" "$d/a/leaf-again.bin"
    ln -s a/file.txt "$d/rel-link"
    ln -s /etc/passwd "$d/abs-link"
    ln -s /nonexistent/target "$d/dangling"
    ln -s ../../a "$d/a/b/up-link"
}

rm -rf src-ext src-ext4 src-ntfs src-fat
unix_tree src-ext
touch "src-ext/$(printf 'bad-\xff\xfe-utf8')"
cp -a src-ext src-ext4
mkdir src-ext4/many
for i in $(seq 0 9999); do printf '%d\n' "$i" >"src-ext4/many/f$i"; done
unix_tree src-ntfs
common_tree src-fat
# FAT keeps neither modes nor more than 2 s of mtime: make the source what FAT keeps.
chmod -R u+rwX,go+rX,go-w src-fat
find src-fat -exec touch -d '2020-01-02 03:04:06' {} +

fix_times() { find "$1" -exec touch -h -d '2022-03-04 05:06:07' {} +; touch -d '2001-02-03 04:05:06' "$1/a/file.txt"; }

# ext2, ext3, ext4 (mkfs -d populates without root).
truncate -s 32M ext2.raw
mkfs.ext2 -q -F -d src-ext ext2.raw
truncate -s 32M ext3.raw
mkfs.ext3 -q -F -d src-ext ext3.raw
truncate -s 128M ext4.raw
mkfs.ext4 -q -F -d src-ext4 ext4.raw
# Index the directories as the kernel would have (mke2fs -d writes linear ones,
# where ext4-view's path lookups cost a scan of the directory each).
e2fsck -fyD ext4.raw >/dev/null 2>&1 || [ $? -le 1 ]
partclone.extfs -c -q -f 0 -s ext2.raw -O ext2.pc >>partclone.log 2>&1
partclone.extfs -c -q -f 0 -s ext3.raw -O ext3.pc >>partclone.log 2>&1
partclone.extfs -c -q -f 0 -s ext4.raw -O ext4.pc >>partclone.log 2>&1
zstd -q -T0 -c ext4.pc | split -b 200k - ext4.pc.zst.
# partimage reads a block device.
loop=$(losetup -f --show ext3.raw); loops+=("$loop")
partimage -b -d -o -f3 -z0 save "$loop" ext3.pi >/dev/null
losetup -d "$loop"

for fs in ext2 ext3 ext4; do
    mount -o loop,ro "$fs.raw" "$MNT"
    rm -rf "$fs.oracle"; mkdir "$fs.oracle"
    cp -a "$MNT/." "$fs.oracle/"
    umount "$MNT"
done

# NTFS: populated through ntfs-3g, which keeps hard and symbolic links.
truncate -s 64M ntfs.raw
mkntfs -q -F -Q ntfs.raw 2>/dev/null
ntfs-3g ntfs.raw "$MNT"
cp -a src-ntfs/. "$MNT/"
umount "$MNT"
partclone.ntfs -c -q -f 0 -s ntfs.raw -O ntfs.pc >>partclone.log 2>&1
ntfsclone -q --save-image -o ntfs.img ntfs.raw 2>/dev/null
ntfs-3g -o ro,fmask=0133,dmask=0022 ntfs.raw "$MNT"
rm -rf ntfs.oracle; mkdir ntfs.oracle
cp -a "$MNT/." ntfs.oracle/
umount "$MNT"

# FAT16 and FAT32 through mtools; the oracle is mcopy's copy out.
for bits in 16 32; do
    rm -f "fat$bits.raw"
    truncate -s 64M "fat$bits.raw"
    mkfs.vfat -F "$bits" "fat$bits.raw" >/dev/null
    mcopy -s -m -Q -i "fat$bits.raw" src-fat/* ::/
    partclone.fat -c -q -f 0 -s "fat$bits.raw" -O "fat$bits.pc" >>partclone.log 2>&1
    rm -rf "fat$bits.oracle"; mkdir "fat$bits.oracle"
    mcopy -s -m -n -Q -i "fat$bits.raw" '::*' "fat$bits.oracle/"
done

# Hostile: ext4 with garbage over most of its first inode table (the root and
# the first user inodes stay), FAT32 with garbage in its FAT.
cp ext4.raw ext4-bad.raw
table=$(dumpe2fs ext4.raw 2>/dev/null | awk '/Inode table at/ && !done {split($4, r, "-"); print r[1]; done = 1}')
bs=$(dumpe2fs -h ext4.raw 2>/dev/null | awk '/^Block size:/ {print $3}')
dd if=/dev/urandom of=ext4-bad.raw bs="$bs" seek=$((table + 2)) count=60 conv=notrunc status=none
partclone.extfs -c -q -f 0 -s ext4-bad.raw -O ext4-bad.pc >>partclone.log 2>&1
cp fat32.raw fat32-bad.raw
reserved=$(od -An -tu2 -j14 -N2 fat32.raw | tr -d ' ')
dd if=/dev/urandom of=fat32-bad.raw bs=512 seek=$((reserved + 1)) count=16 conv=notrunc status=none
partclone.fat -c -q -f 0 -s fat32-bad.raw -O fat32-bad.pc >>partclone.log 2>&1

# Safety: one image with symbolic links out of the extraction directory, one
# with real entries under the same names.
rm -rf evil1 evil2; mkdir -p evil1 evil2/a evil2/b
ln -s "$OUT/outside" evil1/a
ln -s "$OUT/outside/file" evil1/b
ln -s ../../.. evil1/up
printf 'must stay inside\n' >evil2/a/file
printf 'must stay inside\n' >evil2/b/x
printf 'must stay inside\n' >evil2/up-file
for n in 1 2; do
    truncate -s 8M "evil$n.raw"
    mkfs.ext4 -q -F -d "evil$n" "evil$n.raw"
    partclone.extfs -c -q -f 0 -s "evil$n.raw" -O "evil$n.pc" >>partclone.log 2>&1
done
rm -f ./*.raw
echo done
