"""An `ioasis --api-socket` process for the API tests: started, waited for until its socket
exists, and stopped with SIGTERM when the `with` block ends."""
import contextlib
import os
import subprocess
import time


@contextlib.contextmanager
def api_vmm(ioasis, socket_path):
    vmm = subprocess.Popen([ioasis, "--api-socket", socket_path, "--log-level", "warn"])
    try:
        for _ in range(100):
            if os.path.exists(socket_path):
                break
            time.sleep(0.05)
        yield vmm
    finally:
        vmm.terminate()
        vmm.wait(timeout=10)
