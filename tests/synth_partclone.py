#!/usr/bin/env python3
"""Synthesize partclone images that partclone >= 0.3 no longer writes.

Usage: synth_partclone.py MODE IN.pc OUT.pc
  MODE = v1      image format 0001 (FORMATS.md §1.2): 4160-byte header, byte map + BiTmAgIc,
                 every block followed by the cumulative first-byte-only "crc32_0001"
         bmbyte  v2 with bitmap_mode BM_BYTE (§1.1.2): byte map + BiTmAgIc, data area unchanged
         bmnone  v2 with bitmap_mode BM_NONE (§1.1.2): no bitmap, every block stored (unused
                 blocks as zeros), group checksums recomputed with the same mode/bpc/reseed
Helpers used by make-images.sh:
  synth_partclone.py midoffset IMG   print the offset of a byte in the middle of the stored data
                                     of a partclone image (v1 or v2, any bitmap mode): the middle
                                     byte of the middle stored block, never a checksum byte and
                                     never a block's first byte
  synth_partclone.py selftest        check the CRC helpers against FORMATS.md §1.3 test vectors

IN must be a real v2 BM_BIT image written by partclone (checksum mode none or CRC32).
Its header, bitmap and group checksums are verified before anything is written.
Python 3 standard library only.
"""
import struct
import sys
import zlib

MAGIC = b"partclone-image"
CSM_NONE, CSM_CRC32 = 0x00, 0x20
BM_NONE, BM_BIT, BM_BYTE = 0x00, 0x01, 0x08
BITMAP_MAGIC = b"BiTmAgIc"
HDR_V2 = 110
HDR_V1 = 4160


def die(msg):
    sys.exit("synth_partclone.py: error: " + msg)


def pc_crc(data, state=0xFFFFFFFF):
    """partclone-CRC32 (§1.3): reflected table, init 0xFFFFFFFF, no final inversion."""
    return zlib.crc32(data, state ^ 0xFFFFFFFF) ^ 0xFFFFFFFF


def crc32_0001(block, state):
    """v1 CRC (§1.2.4): the first byte of the block processed block_size times."""
    return pc_crc(block[:1] * len(block), state)


def selftest():
    assert pc_crc(b"123456789") == 0x340BC6D9
    assert pc_crc(b"") == 0xFFFFFFFF
    assert crc32_0001(b"123456789", 0xFFFFFFFF) == 0xCE159010
    print("selftest ok")


def parse_v2(img):
    if len(img) < HDR_V2 or img[:15] != MAGIC or img[15] != 0 or img[30:34] != b"0002":
        die("input is not a partclone v2 image")
    h = {}
    (h["endian"],) = struct.unpack_from("<H", img, 34)
    h["fs"] = img[36:52]
    h["device_size"], h["totalblock"], h["sb_used"], h["usedblocks"] = struct.unpack_from("<QQQQ", img, 52)
    (h["block_size"], h["feature_size"], h["image_version"], h["cpu_bits"], h["cs_mode"],
     h["cs_size"], h["bpc"], h["reseed"], h["bitmap_mode"]) = struct.unpack_from("<IIHHHHIBB", img, 84)
    (h["header_crc"],) = struct.unpack_from("<I", img, 106)
    if h["endian"] != 0xC0DE:
        die("not a little-endian image")
    if pc_crc(img[:106]) != h["header_crc"]:
        die("header CRC mismatch")
    if h["feature_size"] != 18 or h["image_version"] != 2:
        die("unexpected feature_size/image_version")
    if h["bitmap_mode"] != BM_BIT:
        die("input must use BM_BIT (the only mode partclone writes)")
    if h["cs_mode"] not in (CSM_NONE, CSM_CRC32):
        die("only checksum modes none (0x00) and CRC32 (0x20) can be re-synthesized here")
    if h["cs_mode"] == CSM_CRC32 and (h["cs_size"] != 4 or h["bpc"] == 0):
        die("inconsistent CRC32 checksum fields")
    tb, bs = h["totalblock"], h["block_size"]
    nbytes = (tb + 7) // 8
    bitmap = img[HDR_V2:HDR_V2 + nbytes]
    (bcrc,) = struct.unpack_from("<I", img, HDR_V2 + nbytes)
    if pc_crc(bitmap) != bcrc:
        die("bitmap CRC mismatch")
    used = [bool(bitmap[n >> 3] >> (n & 7) & 1) for n in range(tb)]
    u = sum(used)
    if u != h["usedblocks"]:
        print("synth_partclone.py: note: header usedblocks %d != bitmap popcount %d" % (h["usedblocks"], u),
              file=sys.stderr)
    data_off = HDR_V2 + nbytes + 4
    cs = h["cs_size"] if h["cs_mode"] != CSM_NONE else 0
    bpc = h["bpc"]
    groups = (u + bpc - 1) // bpc if cs else 0
    if len(img) != data_off + u * bs + groups * cs:
        die("image length %d != expected %d" % (len(img), data_off + u * bs + groups * cs))
    # Extract the stored blocks, verifying the group checksums on the way.
    blocks = []
    p = data_off
    state = 0xFFFFFFFF
    k = 0
    for i in range(u):
        b = img[p:p + bs]
        p += bs
        blocks.append(b)
        if cs:
            state = pc_crc(b, state)
            k += 1
            if k == bpc or i == u - 1:
                (stored,) = struct.unpack_from("<I", img, p)
                p += 4
                if stored != state:
                    die("group checksum mismatch at stored block %d" % i)
                k = 0
                if h["reseed"]:
                    state = 0xFFFFFFFF
    assert p == len(img)
    return h, used, blocks, data_off


def midoffset(path):
    with open(path, "rb") as f:
        img = f.read()
    if img[:15] != MAGIC:
        die("not a partclone image")
    ver = img[30:34]
    if ver == b"0001":
        bs, _dev, tb = struct.unpack_from("<IQQ", img, 36)
        data_off = HDR_V1 + tb + 8
        u = sum(1 for x in img[HDR_V1:HDR_V1 + tb] if x == 1)
        k = u // 2
        off = data_off + k * (bs + 4)
    elif ver == b"0002":
        (tb,) = struct.unpack_from("<Q", img, 60)
        (bs,) = struct.unpack_from("<I", img, 84)
        cs_mode, cs_size, bpc, _reseed, bm = struct.unpack_from("<HHIBB", img, 96)
        if bm == BM_BIT:
            nbytes = (tb + 7) // 8
            bitmap = img[HDR_V2:HDR_V2 + nbytes]
            u = sum(1 for n in range(tb) if bitmap[n >> 3] >> (n & 7) & 1)
            data_off = HDR_V2 + nbytes + 4
        elif bm == BM_BYTE:
            u = sum(1 for x in img[HDR_V2:HDR_V2 + tb] if x == 1)
            data_off = HDR_V2 + tb + 8
        elif bm == BM_NONE:
            u = tb
            data_off = HDR_V2
        else:
            die("unknown bitmap mode")
        cs = cs_size if (cs_mode != CSM_NONE and bpc) else 0
        k = u // 2
        off = data_off + k * bs + ((k // bpc) * cs if cs else 0)
    else:
        die("unknown partclone image version")
    if u == 0 or bs < 2:
        die("no stored data")
    off += bs // 2
    if off >= len(img):
        die("image shorter than its layout")
    return off


def v2_header(h, bitmap_mode, usedblocks):
    hdr = bytearray(HDR_V2)
    hdr[0:16] = MAGIC + b"\0"

    hdr[30:34] = b"0002"
    struct.pack_into("<H", hdr, 34, 0xC0DE)
    hdr[36:52] = h["fs"]
    struct.pack_into("<QQQQ", hdr, 52, h["device_size"], h["totalblock"], h["sb_used"], usedblocks)
    struct.pack_into("<IIHHHHIBB", hdr, 84, h["block_size"], 18, 2, h["cpu_bits"], h["cs_mode"],
                     h["cs_size"], h["bpc"], h["reseed"], bitmap_mode)
    return hdr


def main():
    if len(sys.argv) == 2 and sys.argv[1] == "selftest":
        selftest()
        return
    if len(sys.argv) == 3 and sys.argv[1] == "midoffset":
        print(midoffset(sys.argv[2]))
        return
    if len(sys.argv) != 4 or sys.argv[1] not in ("v1", "bmbyte", "bmnone"):
        sys.exit(__doc__)
    mode, src, dst = sys.argv[1:]
    with open(src, "rb") as f:
        img = f.read()
    h, used, blocks, data_off = parse_v2(img)
    tb, bs = h["totalblock"], h["block_size"]
    out = bytearray()
    if mode == "bmbyte":
        hdr = v2_header(h, BM_BYTE, h["usedblocks"])
        hdr[16:30] = img[16:30]
        struct.pack_into("<I", hdr, 106, pc_crc(bytes(hdr[:106])))
        out += hdr
        out += bytes(1 if x else 0 for x in used) + BITMAP_MAGIC
        out += img[data_off:]  # the group layout does not depend on the bitmap
    elif mode == "bmnone":
        hdr = v2_header(h, BM_NONE, tb)
        hdr[16:30] = img[16:30]
        struct.pack_into("<I", hdr, 106, pc_crc(bytes(hdr[:106])))
        out += hdr
        zero = bytes(bs)
        it = iter(blocks)
        cs = h["cs_mode"] == CSM_CRC32
        state, k = 0xFFFFFFFF, 0
        for n in range(tb):
            b = next(it) if used[n] else zero
            out += b
            if cs:
                state = pc_crc(b, state)
                k += 1
                if k == h["bpc"] or n == tb - 1:
                    out += struct.pack("<I", state)
                    k = 0
                    if h["reseed"]:
                        state = 0xFFFFFFFF
    else:  # v1
        if h["device_size"] != tb * bs:
            die("v1 needs device_size == totalblock*block_size (partclone 0.3.23 rewrites it otherwise)")
        hdr = bytearray(HDR_V1)
        hdr[0:15] = MAGIC
        fs = h["fs"].split(b"\0", 1)[0][:15]
        hdr[15:15 + len(fs)] = fs
        hdr[30:34] = b"0001"
        struct.pack_into("<IQQQ", hdr, 36, bs, h["device_size"], tb, len(blocks))
        out += hdr
        out += bytes(1 if x else 0 for x in used) + BITMAP_MAGIC
        state = 0xFFFFFFFF
        for b in blocks:
            state = crc32_0001(b, state)
            out += b + struct.pack("<I", state)
    with open(dst, "wb") as f:
        f.write(out)


if __name__ == "__main__":
    main()
