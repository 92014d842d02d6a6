"""How every script ends: a mistake in the input or config prints one line that names it and exits 2.

A bug still shows its traceback: only the error types that carry a user-facing message (bad config
keys, missing files, refused run directories, bad values in the input) are shortened, and
FACEVOCAB_TRACEBACK=1 shows the full traceback for those too.
"""
from __future__ import annotations

import os
import sys
from typing import Callable, Sequence

from utils.runs import RunDirError

USER_ERRORS = (ValueError, KeyError, FileNotFoundError, NotADirectoryError, RunDirError)


def run_script(main: Callable[[list[str]], object], name: str, argv: Sequence[str] | None = None) -> None:
    """Call `main(argv)`; an int it returns is the exit status."""
    try:
        code = main(list(sys.argv[1:] if argv is None else argv))
    except USER_ERRORS as err:
        if os.environ.get("FACEVOCAB_TRACEBACK"):
            raise
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"{name}: {message}", file=sys.stderr)
        sys.exit(2)
    sys.exit(code if isinstance(code, int) else 0)
