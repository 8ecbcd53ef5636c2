#!/usr/bin/env python3
"""The ioasis command line: errors name the bad flag and value, --version and --help answer, a bad
kernel or an unopenable --device is a clear error, and SIGTERM stops a running VM cleanly with status 128+15.

usage: cli_test.py --ioasis PATH --testguest PATH
"""
import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time

SKIP = 77


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ioasis", required=True)
    ap.add_argument("--testguest", required=True)
    args = ap.parse_args()
    failures = []

    def expect(cond, what):
        print(("ok   " if cond else "FAIL ") + what)
        if not cond:
            failures.append(what)

    def run(*a, timeout=30):
        return subprocess.run([args.ioasis] + list(a), capture_output=True, text=True, timeout=timeout)

    r = run("--version")
    expect(r.returncode == 0 and r.stdout.startswith("ioasis "), "--version prints the version")
    r = run("--help")
    expect(r.returncode == 0 and "--cpu-features" in r.stdout and "--api-socket" in r.stdout, "--help lists the flags")
    r = run()
    expect(r.returncode == 2 and "--kernel or --api-socket" in r.stderr, "no arguments is a usage error")
    for flag, value, named in [("--memory", "size=12Q", "size=12Q"), ("--memory", "colour=1", "colour"),
                               ("--cpus", "boot=0", "boot=0"), ("--serial", "tty", "tty"),
                               ("--cpu-features", "-warp_drive", "warp_drive"), ("--disk", "readonly=on", "path="),
                               ("--user-device", "socket=/x,group=z", "group=z"), ("--log-level", "loud", "loud"),
                               ("--device", "path=", "path="), ("--device", "path=/dev/vfio/devices/vfio0,bus=1", "bus"),
                               ("--device", "path=/dev/vfio/devices/vfio0,iommu=on,ioas=a", "exclude each other")]:
        r = run("--kernel", args.testguest, flag, value)
        expect(r.returncode == 2 and named in r.stderr, "%s %s is refused naming '%s' (%d: %s)" %
               (flag, value, named, r.returncode, r.stderr.strip()))
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        print("SKIP: no /dev/kvm for the VM runs")
        return SKIP if not failures else 1
    with tempfile.TemporaryDirectory() as work:
        bad = os.path.join(work, "bad.elf")
        with open(bad, "wb") as f:
            f.write(b"\x7fELF" + b"\x00" * 60)
        r = run("--kernel", bad)
        expect(r.returncode == 1 and "bad.elf" in r.stderr, "a malformed kernel is a clear error (%s)" % r.stderr.strip())
        r = run("--kernel", os.path.join(work, "missing"))
        expect(r.returncode == 1 and "missing" in r.stderr, "a missing kernel is a clear error")
        big = os.path.join(work, "big.cpio")
        with open(big, "wb") as f:
            f.truncate(8 << 20)
        r = run("--kernel", args.testguest, "--memory", "size=4M", "--initramfs", big, "--cmdline", "test=boot")
        expect(r.returncode == 1 and "big.cpio" in r.stderr, "an initramfs larger than RAM is a clear error (%s)" %
               r.stderr.strip())

        # Kernel VFIO devices that cannot be opened stop the VM before it starts, naming the path
        # and the reason (this is the case on hosts without VFIO or without that device).
        for dev in ["/dev/vfio/devices/vfio9999", "/sys/bus/pci/devices/0000:ff:1f.7"]:
            r = run("--kernel", args.testguest, "--memory", "size=64M", "--device", "path=" + dev)
            expect(r.returncode == 1 and ("--device path=" + dev) in r.stderr and
                   "No such file or directory" in r.stderr,
                   "--device path=%s that cannot be opened is a clear error (%d: %s)" %
                   (dev, r.returncode, r.stderr.strip()))

        console = os.path.join(work, "console.log")
        p = subprocess.Popen([args.ioasis, "--kernel", args.testguest, "--cmdline", "test=heartbeat period_ms=20",
                              "--memory", "size=64M", "--serial", "file=" + console], stderr=subprocess.PIPE, text=True)
        for _ in range(400):
            if os.path.exists(console) and open(console).read().count("tick ") >= 2:
                break
            time.sleep(0.05)
        p.send_signal(signal.SIGTERM)
        try:
            rc = p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            rc = None
        expect(rc == 128 + signal.SIGTERM, "SIGTERM stops the VM with status 143 (%s)" % rc)
    if failures:
        print("FAIL: " + "; ".join(failures))
        return 1
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
