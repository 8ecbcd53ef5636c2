#!/usr/bin/env python3
"""Runs a command next to a vfio-user-dma-server.

Starts the server on a socket in a fresh temporary directory (function i > 0 on SOCKET.i),
waits until every function's socket is listening, runs the command with each "{socket}"
in its arguments replaced by the socket path, then stops the server with SIGTERM. The command's
exit status is ours, except that a server which died during the run fails it: the scenarios
never ask the server to go away.

  with_dma_server.py --server BIN [--functions N] [--group G] [--server-arg=ARG ...] -- CMD ARGS...

Each --server-arg is passed on to the server as it stands (e.g. --server-arg=--intx).
"""
import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

SOCKET_WAIT_S = 10
STOP_WAIT_S = 5


def socket_paths(base, functions):
    return [base] + [f"{base}.{i}" for i in range(1, functions)]


def listening_paths():
    """Paths of the listening UNIX sockets on the host, from /proc/net/unix (flag 0x10000 is
    __SO_ACCEPTCON, set by listen())."""
    paths = set()
    with open("/proc/net/unix") as f:
        next(f)
        for line in f:
            fields = line.split()
            if len(fields) >= 8 and int(fields[3], 16) & 0x10000:
                paths.add(fields[7])
    return paths


def wait_for_sockets(server, paths):
    """True once every path is a listening socket; False if the server exits or time runs out.

    A test connection would take the server's one client slot and race the VMM's, so the
    kernel's socket table is asked instead.
    """
    deadline = time.monotonic() + SOCKET_WAIT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            return False
        if set(paths) <= listening_paths():
            return True
        time.sleep(0.02)
    return False


def stop(server):
    if server.poll() is not None:
        return
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(STOP_WAIT_S)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--server", required=True, help="the vfio-user-dma-server binary")
    p.add_argument("--functions", type=int, default=1)
    p.add_argument("--group", type=int, help="isolation group of every function")
    p.add_argument("--server-arg", action="append", default=[], metavar="ARG",
                   help="one more server argument; repeatable")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command to run")
    args = p.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        p.error("no command given")

    # A short directory: UNIX socket paths are limited to 108 bytes.
    workdir = tempfile.mkdtemp(prefix="dma-server-")
    base = os.path.join(workdir, "dma.sock")
    server_cmd = [args.server, "--socket", base, "--functions", str(args.functions)]
    if args.group is not None:
        server_cmd += ["--group", str(args.group)]
    server_cmd += args.server_arg
    print("+ " + " ".join(server_cmd), flush=True)
    server = subprocess.Popen(server_cmd, stdin=subprocess.DEVNULL)
    try:
        if not wait_for_sockets(server, socket_paths(base, args.functions)):
            print(f"FAILED: the server did not listen on {base} within {SOCKET_WAIT_S} s "
                  f"(exit status {server.poll()})")
            return 1
        command = [a.replace("{socket}", base) for a in command]
        status = subprocess.call(command)
        if server.poll() is not None:
            print(f"FAILED: the server exited during the run (status {server.returncode})")
            return 1
        return status
    finally:
        stop(server)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
