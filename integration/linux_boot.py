#!/usr/bin/env python3
"""Boots Debian's own vmlinux under ioasis and checks what its early boot log says.

Passes when the serial log shows the kernel banner, the e820 map ioasis gave, and every ACPI
table ioasis generated, with no checksum complaint. The run stops as soon as all of that has been
seen (under an instruction emulator the kernel later stops at an instruction it cannot run; on a
VT-x/AMD-V host it would go on to boot).

usage: linux_boot.py --ioasis PATH --fetch PATH [--timeout S] [--expect-table SIG ...] -- [ioasis args]
"""
import argparse
import os
import re
import signal
import subprocess
import sys
import time

SKIP = 77


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ioasis", required=True)
    ap.add_argument("--fetch", required=True, help="script that prints the vmlinux path")
    ap.add_argument("--timeout", type=float, default=240)
    ap.add_argument("--memory-mib", type=int, default=512)
    ap.add_argument("--expect-table", action="append", default=[])
    ap.add_argument("extra", nargs="*")
    args = ap.parse_args()

    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        print("SKIP: no /dev/kvm")
        return SKIP
    fetched = subprocess.run([args.fetch], capture_output=True, text=True)
    if fetched.returncode != 0:
        print(fetched.stderr)
        print("FAIL: could not fetch the Debian kernel")
        return 1
    vmlinux = fetched.stdout.strip().splitlines()[-1]

    mem = args.memory_mib << 20
    tables = ["RSDP", "XSDT", "FACP", "DSDT", "APIC", "MCFG"] + args.expect_table
    wanted = {
        "banner": re.compile(r"Linux version 6\.12"),
        "e820 low RAM": re.compile(r"BIOS-e820: \[mem 0x0000000000000000-0x000000000009ffff\] usable"),
        "e820 RAM above 1 MiB": re.compile(
            r"BIOS-e820: \[mem 0x0000000000100000-0x%016x\] usable" % (min(mem, 0xC0000000) - 1)),
        "e820 ECAM reserved": re.compile(r"BIOS-e820: \[mem 0x00000000e0000000-0x00000000efffffff\] reserved"),
    }
    for t in tables:
        wanted["ACPI " + t] = re.compile(r"ACPI: %s 0x[0-9A-F]+ " % t)
    bad = re.compile(r"checksum|ACPI Error|ACPI BIOS Error", re.IGNORECASE)

    cmd = [args.ioasis, "--kernel", vmlinux, "--cmdline", "console=ttyS0 earlyprintk=serial",
           "--memory", "size=%dM" % args.memory_mib, "--serial", "stdio", "--log-level", "warn"]
    cmd += args.extra
    print("running:", " ".join(cmd), flush=True)
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            errors="replace")
    seen, complaints = {}, []
    try:
        for line in proc.stdout:
            sys.stdout.write(line)
            for name, rx in wanted.items():
                if name not in seen and rx.search(line):
                    seen[name] = time.monotonic() - start
            if bad.search(line) and "verification disabled" not in line:
                complaints.append(line.strip())
            if len(seen) == len(wanted) or time.monotonic() - start > args.timeout:
                break
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
    missing = [n for n in wanted if n not in seen]
    for n, t in sorted(seen.items(), key=lambda kv: kv[1]):
        print("seen %-22s after %.1f s" % (n, t))
    if complaints:
        print("FAIL: the kernel complained:", *complaints, sep="\n  ")
        return 1
    if missing:
        print("FAIL: never seen:", ", ".join(missing))
        return 1
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
