"""`streamflow-dbt`: dbt that dies with the process that started it.

A run worker killed with SIGKILL cannot stop its children, and dbt went on writing to the
warehouse for seconds after its run was gone. This launcher asks the kernel to send dbt
SIGKILL when its parent dies (prctl PR_SET_PDEATHSIG, kept across exec) and then becomes
the real dbt installed beside this Python, with the same arguments.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from pathlib import Path

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def die_with_parent(parent_pid: int) -> None:
    """Ask for SIGKILL when the parent dies; exit now if it already has (a race at start)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent_pid:
        sys.exit(f"streamflow-dbt: the process that started dbt ({parent_pid}) is gone")


def main() -> None:
    die_with_parent(os.getppid())
    dbt = Path(sys.executable).with_name("dbt")
    os.execv(dbt, [str(dbt), *sys.argv[1:]])


if __name__ == "__main__":
    main()
