#!/usr/bin/env python3
"""Boots the test guest on QEMU (q35, KVM) or on ioasis and judges its verdict.

The guest prints its checks on the serial console (our stdout) and writes its failure count to
the exit port 0xf4. ioasis exits with that count; QEMU's isa-debug-exit exits with
(count << 1) | 1, so status 1 is a pass there. Exits 0 when the run matches the expectation
(TESTGUEST PASS, or --expect-fail n), 1 when it does not, 77 (ctest's skip code here) when
/dev/kvm is unusable.
"""
import argparse
import os
import select
import subprocess
import sys
import time

SKIP = 77


def guest_cmdline(args):
    return f"test={args.scenario}" + (" " + args.append if args.append else "")


def ioasis_command(args):
    return [args.ioasis, "--kernel", args.kernel, "--cmdline", guest_cmdline(args),
            "--memory", f"size={args.memory}", "--serial", "stdio"] + args.vmm_args


def qemu_command(args):
    append = guest_cmdline(args)
    return [
        args.qemu, "-accel", "kvm", "-M", "q35", "-m", args.memory,
        "-display", "none", "-vga", "none", "-monitor", "none", "-parallel", "none",
        "-serial", "stdio", "-no-reboot",
        "-kernel", args.kernel, "-append", append,
        "-device", "isa-debug-exit,iobase=0xf4,iosize=4",
    ] + args.vmm_args


def run_with_deadline(cmd, deadline):
    """Runs cmd, echoing its stdout as it comes. Returns (status or None on timeout, stdout,
    stderr, monotonic time of the first stdout byte or None)."""
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    chunks = {proc.stdout: [], proc.stderr: []}
    first_output = None
    open_pipes = [proc.stdout, proc.stderr]
    while open_pipes:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            proc.kill()
            proc.wait()
            return None, b"".join(chunks[proc.stdout]).decode(errors="replace"), \
                b"".join(chunks[proc.stderr]).decode(errors="replace"), first_output
        ready, _, _ = select.select(open_pipes, [], [], remaining)
        for pipe in ready:
            data = os.read(pipe.fileno(), 65536)
            if not data:
                open_pipes.remove(pipe)
                continue
            if pipe is proc.stdout:
                first_output = first_output or time.monotonic()
                sys.stdout.write(data.decode(errors="replace"))
                sys.stdout.flush()
            chunks[pipe].append(data)
    status = proc.wait()
    return status, b"".join(chunks[proc.stdout]).decode(errors="replace"), \
        b"".join(chunks[proc.stderr]).decode(errors="replace"), first_output


def verdict(args, status, output):
    failures = args.expect_fail or 0
    want_line = f"TESTGUEST FAIL {failures}" if failures else "TESTGUEST PASS"
    want_status = failures if args.ioasis else failures * 2 + 1
    problems = []
    if want_line not in output.splitlines():
        problems.append(f"no line '{want_line}' on the console")
    if status != want_status:
        problems.append(f"exit status {status}, want {want_status}")
    return problems


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--qemu", default="qemu-system-x86_64")
    p.add_argument("--ioasis", help="run on this ioasis binary instead of QEMU")
    p.add_argument("--kernel", required=True)
    p.add_argument("--scenario", required=True)
    p.add_argument("--append", default="", help="more command line tokens for the guest")
    p.add_argument("--memory", default="256M")
    p.add_argument("--timeout", type=float, default=90)
    p.add_argument("--expect-fail", type=int, help="expect the guest to report this many failures")
    p.add_argument("vmm_args", nargs=argparse.REMAINDER, help="-- then extra VMM arguments")
    args = p.parse_args()
    if args.vmm_args[:1] == ["--"]:
        args.vmm_args = args.vmm_args[1:]

    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        print("skipping: /dev/kvm is not usable")
        return SKIP
    cmd = ioasis_command(args) if args.ioasis else qemu_command(args)
    print("+ " + " ".join(cmd), flush=True)
    start = time.monotonic()
    status, output, errors, first_output = run_with_deadline(cmd, start + args.timeout)
    elapsed = time.monotonic() - start
    if errors.strip():
        print("--- qemu stderr ---\n" + errors.rstrip())
    if status is None:
        print(f"FAILED: guest did not finish within {args.timeout:.0f} s")
        return 1
    firmware = f"{first_output - start:.2f} s" if first_output else "n/a"
    vmm = "ioasis" if args.ioasis else "QEMU"
    print(f"--- scenario {args.scenario}: {vmm} exit status {status} after {elapsed:.2f} s "
          f"(first guest output after {firmware})")
    problems = verdict(args, status, output)
    for problem in problems:
        print("FAILED: " + problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
