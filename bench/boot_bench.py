#!/usr/bin/env python3
"""Boot benchmark: time from VMM start to the guest's first UART byte, and the VMM's resident
memory beyond guest RAM, for ioasis and QEMU booting the same test guest in the same run.

Guest RAM is a memfd in both VMMs (ioasis always; QEMU through memory-backend-memfd), so the
figure "beyond guest RAM" is RssAnon + RssFile: everything resident except shared memory.

usage: boot_bench.py --ioasis PATH --kernel testguest.elf [--runs N] [--qemu PATH]
"""
import argparse
import os
import select
import shutil
import statistics
import subprocess
import sys
import time


def rss_beyond_ram(pid):
    fields = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                k, _, v = line.partition(":")
                fields[k] = v.strip()
    except OSError:
        return None
    kib = lambda k: int(fields.get(k, "0 kB").split()[0])
    return kib("RssAnon") + kib("RssFile")


def one_run(cmd):
    """Returns (seconds to first stdout byte, peak RSS beyond RAM in KiB, saw PASS)."""
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL)
    first, peak, out = None, 0, b""
    while True:
        r, _, _ = select.select([proc.stdout], [], [], 0.002)
        rss = rss_beyond_ram(proc.pid)
        if rss:
            peak = max(peak, rss)
        if r:
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                break
            if first is None:
                first = time.monotonic() - start
            out += chunk
        if time.monotonic() - start > 60:
            proc.kill()
            break
    proc.wait()
    return first, peak, b"TESTGUEST PASS" in out


def measure(name, cmd, runs):
    firsts, peaks = [], []
    for _ in range(runs):
        first, peak, ok = one_run(cmd)
        if not ok or first is None:
            print("%s: the guest did not pass; command: %s" % (name, " ".join(cmd)))
            return None
        firsts.append(first)
        peaks.append(peak)
    ms = statistics.median(firsts) * 1000
    kib = statistics.median(peaks)
    print("%-7s first UART byte: median %7.1f ms (min %.1f, max %.1f) | RSS beyond guest RAM: "
          "median %6d KiB" % (name, ms, min(firsts) * 1000, max(firsts) * 1000, kib))
    return ms, kib


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ioasis", required=True)
    ap.add_argument("--kernel", required=True)
    ap.add_argument("--qemu", default=shutil.which("qemu-system-x86_64"))
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--memory-mib", type=int, default=256)
    args = ap.parse_args()

    m = args.memory_mib
    ioasis = [args.ioasis, "--kernel", args.kernel, "--cmdline", "test=boot",
              "--memory", "size=%dM" % m, "--serial", "stdio", "--log-level", "off"]
    a = measure("ioasis", ioasis, args.runs)
    b = None
    if args.qemu:
        qemu = [args.qemu, "-accel", "kvm", "-M", "q35", "-m", "%dM" % m, "-nodefaults",
                "-object", "memory-backend-memfd,id=ram,size=%dM" % m, "-machine", "memory-backend=ram",
                "-kernel", args.kernel, "-append", "test=boot", "-device",
                "isa-debug-exit,iobase=0xf4,iosize=4", "-serial", "stdio", "-display", "none",
                "-monitor", "none", "-no-reboot"]
        b = measure("qemu", qemu, args.runs)
    if a and b:
        print("ratio ioasis/qemu: first byte %.2fx, RSS beyond RAM %.2fx" % (a[0] / b[0], a[1] / b[1]))
    return 0 if a else 1


if __name__ == "__main__":
    sys.exit(main())
