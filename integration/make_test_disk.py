#!/usr/bin/env python3
"""Writes a raw disk image with the test guest's known pattern (virtio_blk.c blk_pattern_byte):
in sector s of a disk tagged t, bytes 0-7 hold s (little endian), byte 8 holds t and byte i >= 9
holds (7 s + i + t) mod 256. Each test run writes fresh images, so runs never share state."""
import argparse
import os

SECTOR = 512


def sector_bytes(tag, sector):
    head = sector.to_bytes(8, "little") + bytes([tag])
    return head + bytes((sector * 7 + i + tag) & 0xff for i in range(len(head), SECTOR))


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", required=True)
    p.add_argument("--sectors", type=int, default=256)
    p.add_argument("--tag", required=True, help="one ASCII character")
    args = p.parse_args()
    tag = ord(args.tag)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out + ".tmp", "wb") as f:
        for s in range(args.sectors):
            f.write(sector_bytes(tag, s))
    os.replace(args.out + ".tmp", args.out)


if __name__ == "__main__":
    main()
