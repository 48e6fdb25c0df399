#!/usr/bin/env bash
# Cuts the seed corpora in fuzz/seeds/ from the real-tool fixtures in tests/fixtures
# (plus one tiny partclone.imager image). Rerun after changing fixtures; the seeds
# are committed so fuzzing needs no tools.
set -Eeuo pipefail
cd "$(dirname "$0")/.."
F=tests/fixtures
S=fuzz/seeds
rm -rf "$S" && mkdir -p "$S"/{header,bitmap,ntfsclone_stream,partimage_stream,image,compressed}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
# cut FILE SKIP COUNT: COUNT bytes of FILE from byte SKIP (no SIGPIPE under pipefail).
cut() { dd if="$1" bs=64K iflag=skip_bytes,count_bytes skip="$2" count="$3" status=none; }

# A 16 KiB partclone.imager image: the smallest real partclone image there is.
head -c 16384 /dev/urandom > "$tmp/raw"
partclone.imager -c -f 0 -s "$tmp/raw" -O "$S/image/imager-16k.pc" >/dev/null 2>&1
for f in ext2-tiny.pc ext2-tiny-v1.pc ext2-tiny-bmbyte.pc ext2-tiny-k5K.pc fat12-xxh128-k5-noreseed.pc imager-odd.pc; do
    head -c 8192 "$F/$f" > "$S/header/$f"          # header, bitmap, first blocks
    head -c 40000 "$F/$f" > "$S/image/$f.cut"        # truncated images exercise errors
done
cp "$F/imager-odd.pc" "$S/image/"
cut "$F/ext2-tiny.pi.000" 512 60000 > "$S/header/partimage-logical"
head -c 64 "$F/ntfs-tiny.img" > "$S/header/ntfsclone"
head -c 64 "$F/ntfs-tiny-meta.img" > "$S/header/ntfsclone-meta"

# Bitmaps: config byte, then real bitmap bytes (partclone ext2-tiny: 128 bytes at 110).
{ printf '\x03'; cut "$F/ext2-tiny.pc" 110 128; } > "$S/bitmap/ext2-tiny"
{ printf '\x31'; cut "$F/imager-odd.pc" 110 31; } > "$S/bitmap/imager-odd"

# ntfsclone streams: 4 geometry bytes, then a real command stream prefix.
{ printf '\x00\xff\x00\x40'; cut "$F/ntfs-tiny.img" 56 20000; } > "$S/ntfsclone_stream/ntfs-tiny"
{ printf '\x00\xff\x00\x40'; cut "$F/ntfs-tiny-meta.img" 56 20000; } > "$S/ntfsclone_stream/ntfs-meta"

# partimage: the logical stream of the tiny ext2 image, whole and cut.
cut "$F/ext2-tiny.pi.000" 512 1000000 > "$S/partimage_stream/ext2-tiny"
head -c 70000 "$S/partimage_stream/ext2-tiny" > "$S/partimage_stream/ext2-tiny-cut"
cp "$F/ext2-tiny.pi.000" "$S/image/"
# Compressed: the first 32 KiB of the tiny images (kept small: the fuzzer runs each seed
# whole) in every codec and restart structure the index knows.
C=$S/compressed
head -c 32768 "$F/ext2-tiny.pc" > "$tmp/pc"
head -c 32768 "$F/ntfs-tiny.img" > "$tmp/nc"
gzip -n -c "$tmp/pc" > "$C/ext2-tiny.pc.gz"
{ head -c 10000 "$tmp/pc" | gzip -n; tail -c +10001 "$tmp/pc" | gzip -n; } > "$C/ext2-tiny-2member.pc.gz"
zstd -q -c "$tmp/pc" > "$C/ext2-tiny.pc.zst"
{ head -c 10000 "$tmp/nc" | zstd -q; tail -c +10001 "$tmp/nc" | zstd -q; } > "$C/ntfs-tiny-2frame.img.zst"
pzstd -q -p 2 -c "$tmp/pc" > "$C/ext2-tiny-pzstd.pc.zst"
xz -T0 --block-size=8KiB -c "$tmp/pc" > "$C/ext2-tiny.pc.xz"
xz --format=lzma -c "$tmp/nc" > "$C/ntfs-tiny.img.lzma"
bzip2 -1 -c "$tmp/pc" > "$C/ext2-tiny.pc.bz2"
lz4 -q -B4 -c "$tmp/pc" > "$C/ext2-tiny.pc.lz4"
lz4 -q -B4 -BD -c "$tmp/nc" > "$C/ntfs-tiny-BD.img.lz4"
du -sh "$S"
