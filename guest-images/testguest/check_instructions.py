#!/usr/bin/env python3
"""Fails when a guest binary contains instructions the test guest must not use.

Where the guest runs on KVM's instruction emulator (nested, no VT-x), VEX-encoded instructions
(AVX, BMI), SSE, cmpxchg16b and the xsave family stop the VM with an internal error, and the
guest treats ud2/int3 as bugs.

Usage: check_instructions.py OBJDUMP FILE [--expect-forbidden | --delete-on-failure]
--expect-forbidden inverts the check: it passes only when every forbidden class is found,
which is how the checker itself is tested. --delete-on-failure removes FILE when it fails, so a
rejected image is never left behind for a later boot.
"""
import os
import re
import subprocess
import sys

# Each class: a name and a regex on the mnemonic plus operands of one objdump line.
FORBIDDEN = [
    ("vector register", re.compile(r"%[xyz]mm\d|%k[0-7]\b|%mm\d")),
    ("trap", re.compile(r"^(ud0|ud1|ud2|int3|icebp|int1)\b")),
    ("cmpxchg16b", re.compile(r"^cmpxchg16b\b")),
    ("xsave family", re.compile(r"^(xsave\w*|xrstor\w*|fxsave\w*|fxrstor\w*)\b")),
    ("VEX/EVEX", re.compile(r"^v(?!err|erw|mcall|mlaunch|mresume|mxoff|mxon|mread|mwrite|mptrld|mptrst|mclear|mfunc|mrun|mload|msave|mmcall)\w+")),
    ("BMI", re.compile(r"^(andn|bextr|blsi|blsmsk|blsr|bzhi|mulx|pdep|pext|rorx|sarx|shlx|shrx)\b")),
    ("bit count", re.compile(r"^(tzcnt|lzcnt|popcnt)\b")),
    ("CET", re.compile(r"^(endbr32|endbr64)\b")),
    ("x87", re.compile(r"^f(ld|st|add|mul|div|sub|comp?|ucom|init|nop|wait|x87)\w*\b")),
]


def code_sections(objdump, path):
    out = subprocess.run([objdump, "-h", path], check=True, capture_output=True, text=True).stdout
    lines = out.splitlines()
    for i, line in enumerate(lines[:-1]):
        fields = line.split()
        if len(fields) >= 7 and fields[0].isdigit() and "CODE" in lines[i + 1]:
            yield fields[1]


def disassemble(objdump, path):
    for section in code_sections(objdump, path):
        # The PVH entry runs in 32-bit protected mode; decoding it as 64-bit code is noise.
        mode = "i386" if "boot32" in section else "x86-64"
        out = subprocess.run([objdump, "-d", "--no-show-raw-insn", "-M", f"att,{mode}", "-j",
                              section, path], check=True, capture_output=True, text=True).stdout
        yield from parse(out)


def parse(out):
    for line in out.splitlines():
        m = re.match(r"^\s*([0-9a-f]+):\s+(.*)$", line)
        if m:
            yield m.group(1), re.sub(r"^(rex\.?\w*|data16|addr32|lock|rep\w*|notrack|bnd|ds|cs)\s+", "", m.group(2).strip())


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    expect = "--expect-forbidden" in sys.argv
    if len(args) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    objdump, path = args
    found = {}
    for addr, insn in disassemble(objdump, path):
        for name, pattern in FORBIDDEN:
            if pattern.search(insn):
                found.setdefault(name, []).append(f"{addr}: {insn}")
    if expect:
        missing = [name for name, _ in FORBIDDEN if name not in found]
        for name in missing:
            print(f"checker missed class: {name}", file=sys.stderr)
        return 1 if missing else 0
    for name, lines in found.items():
        for line in lines[:20]:
            print(f"{path}: forbidden {name}: {line}", file=sys.stderr)
    if found and "--delete-on-failure" in sys.argv:
        os.remove(path)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
