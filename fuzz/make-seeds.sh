#!/usr/bin/env bash
# Cuts the seed corpora in fuzz/seeds/ from the real-tool fixtures in tests/fixtures
# (plus one tiny partclone.imager image). Rerun after changing fixtures; the seeds
# are committed so fuzzing needs no tools.
set -Eeuo pipefail
cd "$(dirname "$0")/.."
F=tests/fixtures
S=fuzz/seeds
rm -rf "$S" && mkdir -p "$S"/{header,bitmap,ntfsclone_stream,partimage_stream,image,compressed}
mkdir -p "$S"/{gzip_member,xz_layout,zstd_frames,lz4_frames,bzip2_blocks}
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
# Saved indexes: the compressed seeds behind 4 control bytes (codec pick, how many
# bytes of the saved index to change, with what), so the target starts from valid
# indexes and changes them.
mkdir -p "$S/index_file"
for f in "$C"/*; do { printf '\x02\x01\x40\x07'; cat "$f"; } > "$S/index_file/$(basename "$f")"; done

# Container framing: small files of every structure the framing parsers know
# (member header fields, several streams, frames and blocks, skippable frames,
# padding and trailing data). Many blocks need much input, so the multi-block
# seeds compress a periodic text, which costs a few bytes per block.
python3 -c 'import sys; open(sys.argv[1], "wb").write(b"partclone-image 0002 EXTFS block\n" * 9000)' "$tmp/text"
head -c 4096 "$tmp/pc" > "$tmp/pc4k"
G=$S/gzip_member
gzip -n -c "$tmp/pc4k" > "$G/plain.gz"
cp "$C/ext2-tiny-2member.pc.gz" "$G/2member.gz"
(cd "$tmp" && gzip -c pc4k) > "$G/fname.gz"
# FTEXT-less header with FEXTRA, FNAME, FCOMMENT and FHCRC, then plain.gz's deflate data.
python3 - "$G/plain.gz" "$G/all-flags.gz" <<'PY'
import sys, zlib
body = open(sys.argv[1], 'rb').read()[10:]
head = bytes([0x1f, 0x8b, 8, 0x1e, 0, 0, 0, 0, 0, 3]) + (4).to_bytes(2, 'little') + b'IB\0\0'
head += b'ext2-tiny.pc\0' + b'seed\0'
head += (zlib.crc32(head) & 0xffff).to_bytes(2, 'little')
open(sys.argv[2], 'wb').write(head + body)
PY
{ cat "$G/plain.gz"; head -c 100 /dev/zero; } > "$G/zero-padded.gz"
{ cat "$G/plain.gz"; printf 'garbage!\0\x1f\x8b'; } > "$G/garbage-after.gz"
X=$S/xz_layout
xz -T0 --block-size=64KiB -c "$tmp/text" > "$X/text-5blocks.xz"
{ xz -c "$tmp/pc4k"; xz --check=sha256 -c "$tmp/pc4k"; head -c 8 /dev/zero; } > "$X/2streams-padded.xz"
cp "$C/ntfs-tiny.img.lzma" "$X/"
{ head -c 2000 "$tmp/nc" | xz --format=lzma; printf '\0'; } > "$X/trailing-zero.lzma"
Z=$S/zstd_frames
zstd -q -T2 -c "$tmp/text" > "$Z/text-3blocks.zst"
zstd -q --no-check -c "$tmp/pc4k" > "$Z/no-check.zst"
zstd -q -c "$tmp/pc4k" > "$Z/single-segment.zst"
zstd -q --no-content-size < "$tmp/pc4k" > "$Z/window.zst"
cp "$C/ext2-tiny-pzstd.pc.zst" "$C/ntfs-tiny-2frame.img.zst" "$Z/"
L=$S/lz4_frames
lz4 -q -B4 -c "$tmp/text" > "$L/text-5blocks.lz4"
lz4 -q -B4 -BD -BX --content-size -c "$tmp/text" > "$L/linked-checksums.lz4"
{ printf '\x50\x2a\x4d\x18\x04\x00\x00\x00seed'; lz4 -q -c "$tmp/pc4k"; lz4 -q --no-frame-crc -c "$tmp/pc4k"; } > "$L/skippable-2frames.lz4"
lz4 -q -l -c "$tmp/pc4k" > "$L/legacy.lz4"
B=$S/bzip2_blocks
bzip2 -1 -c "$tmp/text" > "$B/text-3blocks.bz2"
{ bzip2 -c "$tmp/pc4k"; bzip2 -9 -c "$tmp/pc4k"; printf 'garbage!'; } > "$B/2streams-garbage.bz2"
# File systems for `files`: real mkfs output as runs of 512-byte sectors (the
# target's input form: size, then offset/length/bytes runs), leaving out those of
# zeros and of 0xFF (NTFS's empty $LogFile, which reading files never touches).
FS=$S/files
mkdir -p "$FS" "$tmp/tree/sub"
printf 'hello\n' > "$tmp/tree/a.txt"; head -c 3000 /dev/urandom > "$tmp/tree/sub/r.bin"
ln -s a.txt "$tmp/tree/link"; ln "$tmp/tree/a.txt" "$tmp/tree/hard"
runs() {
    python3 - "$1" "$2" <<'PY'
import struct, sys
data = open(sys.argv[1], 'rb').read()
out = bytearray(struct.pack('<I', len(data)))
for off in range(0, len(data), 512):
    chunk = data[off:off + 512]
    if any(chunk) and chunk.count(0xff) != len(chunk):
        out += struct.pack('<IH', off, len(chunk)) + chunk
open(sys.argv[2], 'wb').write(out)
PY
}
truncate -s 256K "$tmp/ext2"; mkfs.ext2 -q -F -b 1024 -N 32 -d "$tmp/tree" "$tmp/ext2"; runs "$tmp/ext2" "$FS/ext2"
truncate -s 1M "$tmp/ext4"; mkfs.ext4 -q -F -b 1024 -N 32 -d "$tmp/tree" "$tmp/ext4"; runs "$tmp/ext4" "$FS/ext4"
rm -f "$tmp/tree/link" "$tmp/tree/hard"
truncate -s 128K "$tmp/fat12"; mkfs.vfat -F 12 "$tmp/fat12" >/dev/null
mcopy -s -i "$tmp/fat12" "$tmp/tree"/* ::/; runs "$tmp/fat12" "$FS/fat12"
truncate -s 2M "$tmp/ntfs"; mkntfs -q -F -Q -s 512 -p 0 -H 0 -S 0 -c 4096 "$tmp/ntfs" 2>/dev/null
mkdir "$tmp/m"; ntfs-3g "$tmp/ntfs" "$tmp/m"    # root: populated through ntfs-3g
printf 'hi\n' > "$tmp/m/a.txt"; mkdir "$tmp/m/sub"; head -c 3000 /dev/urandom > "$tmp/m/sub/r.bin"
ln "$tmp/m/a.txt" "$tmp/m/hard"; ln -s a.txt "$tmp/m/link"; umount "$tmp/m"
runs "$tmp/ntfs" "$FS/ntfs"
du -sh "$S"
