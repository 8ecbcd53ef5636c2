#!/usr/bin/env python3
"""virtio-iommu benchmark: guest-observed MAP+UNMAP round trips per second through the real
device, for ioasis and for QEMU running the same test guest (test=viommu-bench) in the same run.

usage: viommu_bench.py --ioasis PATH --kernel testguest.elf [--qemu PATH] [--ms 2000]
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
LINE = re.compile(r"viommu-bench: (\d+) MAP\+UNMAP round trips in (\d+) ms = (\d+) per second")


def run(name, cmd):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    m = LINE.search(r.stdout)
    if not m or "TESTGUEST PASS" not in r.stdout:
        print("%s: no result (exit %d)\n%s%s" % (name, r.returncode, r.stdout[-2000:], r.stderr[-2000:]))
        return None
    pairs, ms, rate = map(int, m.groups())
    print("%-7s %8d MAP+UNMAP round trips/s  (%d pairs in %d ms)" % (name, rate, pairs, ms))
    return rate


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ioasis", required=True)
    ap.add_argument("--kernel", required=True)
    ap.add_argument("--qemu", default=shutil.which("qemu-system-x86_64"))
    ap.add_argument("--ms", type=int, default=2000)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="viommu-bench-")
    disks = []
    for tag in "ab":
        path = os.path.join(work, tag + ".img")
        subprocess.run([sys.executable, os.path.join(HERE, "..", "integration", "make_test_disk.py"),
                        "--out", path, "--sectors", "256", "--tag", tag], check=True)
        disks.append(path)
    append = "test=viommu-bench ms=%d" % args.ms
    a = run("ioasis", [args.ioasis, "--kernel", args.kernel, "--cmdline", append, "--memory", "size=256M",
                       "--serial", "stdio", "--log-level", "warn", "--iommu", "on",
                       "--disk", "path=%s,iommu=on" % disks[0], "--disk", "path=%s,iommu=on" % disks[1]])
    b = None
    if args.qemu:
        b = run("qemu", [args.qemu, "-accel", "kvm", "-M", "q35", "-m", "256M", "-display", "none", "-vga", "none",
                         "-monitor", "none", "-parallel", "none", "-serial", "stdio", "-no-reboot",
                         "-kernel", args.kernel, "-append", append + " vmm=qemu",
                         "-device", "isa-debug-exit,iobase=0xf4,iosize=4", "-device", "virtio-iommu-pci",
                         "-drive", "file=%s,if=none,id=da,format=raw" % disks[0],
                         "-device", "virtio-blk-pci,drive=da,disable-legacy=on,iommu_platform=on",
                         "-drive", "file=%s,if=none,id=db,format=raw" % disks[1],
                         "-device", "virtio-blk-pci,drive=db,disable-legacy=on,iommu_platform=on"])
    if a and b:
        print("ratio ioasis/qemu: %.2fx" % (a / b))
    shutil.rmtree(work)
    return 0 if a else 1


if __name__ == "__main__":
    sys.exit(main())
