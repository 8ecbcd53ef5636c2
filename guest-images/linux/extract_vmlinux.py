#!/usr/bin/env python3
"""Extracts the uncompressed ELF vmlinux from a bzImage.

The bzImage's payload is the compressed kernel; we look for each compression format's magic,
try to decompress from there, and keep the first result that is an ELF image.
usage: extract_vmlinux.py BZIMAGE OUT
"""
import gzip
import lzma
import shutil
import subprocess
import sys
import zlib

MAGICS = [
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"\x1f\x8b\x08", "gzip"),
    (b"\x5d\x00\x00", "lzma"),
]


def decompress(kind, data):
    if kind == "xz":
        return lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(data)
    if kind == "lzma":
        return lzma.LZMADecompressor(format=lzma.FORMAT_ALONE).decompress(data)
    if kind == "gzip":
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data)
    if kind == "zstd":
        if not shutil.which("zstd"):
            raise RuntimeError("zstd is not installed")
        r = subprocess.run(["zstd", "-dc"], input=data, capture_output=True)
        return r.stdout
    raise ValueError(kind)


def main():
    image = open(sys.argv[1], "rb").read()
    for magic, kind in MAGICS:
        pos = image.find(magic)
        while pos != -1:
            try:
                out = decompress(kind, image[pos:])
            except Exception:
                out = b""
            if out[:4] == b"\x7fELF":
                open(sys.argv[2], "wb").write(out)
                print(f"{kind} payload at {pos:#x}: {len(out)} bytes", file=sys.stderr)
                return 0
            pos = image.find(magic, pos + 1)
    print(f"{sys.argv[1]}: no compressed ELF payload found", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
