"""The one wrapper every command runs in: user errors become one ``error: ...`` message on
stderr and exit status 1, argparse usage errors exit 2 (argparse's own), and ``--debug`` (or
``MOTION_KEYPOINTS_DEBUG=1``) shows the traceback instead."""

from __future__ import annotations

import os
import sys
import traceback
from typing import Callable, List, Optional, Sequence

from ..errors import UserError

DEBUG_FLAG = "--debug"
DEBUG_ENV = "MOTION_KEYPOINTS_DEBUG"

#: Errors whose message says what to do: printed without a traceback. ``UserError`` covers the
#: kit's own (DataError, ConfigError, SetupError, AugmentationError, EnsembleError, RunError...);
#: FloatingPointError is a diverged loss (the trainer's message says how to fix it).
USER_ERRORS = (UserError, FileNotFoundError, FileExistsError, FloatingPointError)


def debug_enabled(argv: Sequence[str]) -> bool:
    return DEBUG_FLAG in argv or os.environ.get(DEBUG_ENV, "").strip().lower() in ("1", "true", "yes")


def run_command(body: Callable[[List[str]], Optional[int]], argv: Optional[Sequence[str]] = None) -> int:
    """Run a command's ``body(argv)`` and map its errors to exit statuses (see the module)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = debug_enabled(argv)
    argv = [a for a in argv if a != DEBUG_FLAG]
    try:
        return int(body(argv) or 0)
    except USER_ERRORS as exc:
        if debug:
            traceback.print_exc()
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
