"""How every script ends: done (exit 0), a mistake in the input or config (one line naming it, exit 2),
or interrupted (Ctrl-C or SIGTERM: one line, exit 130; every stage resumes where it stopped).

A bug still shows its traceback: only the error types that carry a user-facing message (bad config
keys, missing files, refused run directories, damaged artifacts, bad values in the input) are
shortened, and FACEVOCAB_TRACEBACK=1 shows the full traceback for those too.
"""
from __future__ import annotations

import os
import signal
import sys
from typing import Callable, Sequence

from utils.runs import RunDirError

# OSError: the machine refused (disk full, permission, read-only): the message names the file
USER_ERRORS = (ValueError, KeyError, OSError, RunDirError)
INTERRUPTED = "interrupted: rerun the same command to resume"


def _terminate(signum, frame) -> None:
    raise KeyboardInterrupt  # SIGTERM ends the run the way Ctrl-C does: finally blocks run, no partial file stays


def run_script(main: Callable[[list[str]], object], name: str, argv: Sequence[str] | None = None) -> None:
    """Call `main(argv)`; an int it returns is the exit status."""
    signal.signal(signal.SIGTERM, _terminate)
    try:
        code = main(list(sys.argv[1:] if argv is None else argv))
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)   # a second Ctrl-C must not interrupt the exit
        print(f"{name}: {INTERRUPTED}", file=sys.stderr, flush=True)
        sys.exit(130)
    except USER_ERRORS as err:
        if os.environ.get("FACEVOCAB_TRACEBACK"):
            raise
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"{name}: {message}", file=sys.stderr)
        sys.exit(2)
    sys.exit(code if isinstance(code, int) else 0)
