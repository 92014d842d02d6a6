"""Fault injection for the tests: `FACEVOCAB_FAULT=PATTERN:ACTION[:N]` acts at the N-th (default 1st)
atomic write whose file name matches PATTERN (fnmatch), after the temporary file is written and
before it replaces the artifact (the worst moment to die). Unset, it costs one dictionary lookup.

    kill       SIGKILL this process (kill -9)
    interrupt  SIGINT this process (Ctrl-C)
    term       SIGTERM this process
    fail       raise OSError ENOSPC (a full disk)
    sleep      sleep 60 s (a process to be killed from outside)

e.g. `FACEVOCAB_FAULT='k6.pt:kill' python cluster.py ...`, `FACEVOCAB_FAULT='*.part:kill:3'`.
"""
from __future__ import annotations

import errno
import fnmatch
import os
import signal
import time

_seen: dict[str, int] = {}


def fault_point(name: str) -> None:
    spec = os.environ.get("FACEVOCAB_FAULT")
    if not spec:
        return
    pattern, action, *nth = spec.split(":")
    if not fnmatch.fnmatch(name, pattern):
        return
    _seen[spec] = _seen.get(spec, 0) + 1
    if _seen[spec] != int(nth[0] if nth else 1):
        return
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif action == "interrupt":
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)                           # the signal arrives here
    elif action == "term":
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
    elif action == "fail":
        raise OSError(errno.ENOSPC, f"No space left on device (injected at {name})")
    elif action == "sleep":
        time.sleep(60)
