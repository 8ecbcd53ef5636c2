#!/usr/bin/env python3
"""ioasisctl against a real `ioasis --api-socket`: a lifecycle through the CLI client, its table
and JSON output, and its exit codes (0 ok, 1 API error, 2 usage error, 3 no VMM).

usage: ioasisctl_test.py --ioasis PATH --ioasisctl PATH --testguest PATH
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

from api_vmm import api_vmm

SKIP = 77


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ioasis", required=True)
    ap.add_argument("--ioasisctl", required=True)
    ap.add_argument("--testguest", required=True)
    args = ap.parse_args()
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        print("SKIP: no /dev/kvm")
        return SKIP
    work = tempfile.mkdtemp(prefix="ioasisctl-")
    sock = os.path.join(work, "api.sock")

    def ctl(*a):
        r = subprocess.run([args.ioasisctl, "--api-socket", sock] + list(a), capture_output=True, text=True,
                           timeout=60)
        return r.returncode, r.stdout, r.stderr

    failures = []

    def expect(cond, what):
        print(("ok   " if cond else "FAIL ") + what)
        if not cond:
            failures.append(what)

    rc, _, err = ctl("ping")
    expect(rc == 3 and "no VMM" in err, "exit 3 when no VMM answers (%d: %s)" % (rc, err.strip()))
    rc, _, _ = ctl("frobnicate")
    expect(rc == 2, "exit 2 for an unknown command (%d)" % rc)

    with api_vmm(args.ioasis, sock):
        rc, out, _ = ctl("ping")
        expect(rc == 0 and out.startswith("ioasis "), "ping prints the version")
        rc, _, err = ctl("boot")
        expect(rc == 1 and "FAILED_PRECONDITION" in err, "exit 1 with the status for an API error")
        rc, _, err = ctl("create", "--kernel", args.testguest, "--memory", "12Q")
        expect(rc == 2, "exit 2 for a bad --memory value")
        rc, _, err = ctl("create", "--kernel", args.testguest, "--cmdline", "test=heartbeat", "--memory", "64M",
                         "--serial", "file=" + os.path.join(work, "console.log"))
        expect(rc == 0, "create (%s)" % err.strip())
        rc, _, err = ctl("boot")
        expect(rc == 0, "boot (%s)" % err.strip())
        rc, out, _ = ctl("info")
        expect(rc == 0 and "state:   RUNNING" in out and "serial0" in out, "info shows a running VM and its devices")
        rc, out, _ = ctl("--json", "info")
        doc = json.loads(out) if rc == 0 else {}
        expect(doc.get("state") == "VM_STATE_RUNNING" and doc.get("config", {}).get("memory_bytes") == str(64 << 20),
               "--json info is machine-readable")
        expect(ctl("pause")[0] == 0 and "PAUSED" in ctl("info")[1], "pause")
        expect(ctl("resume")[0] == 0 and "RUNNING" in ctl("info")[1], "resume")
        expect(ctl("shutdown")[0] == 0 and "SHUTDOWN" in ctl("info")[1], "shutdown")
    if failures:
        print("FAIL: " + "; ".join(failures))
        return 1
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
