"""The one wrapper every command runs in: user errors become one ``error: ...`` message on
stderr and exit status 1, argparse usage errors exit 2 (argparse's own), and ``--debug`` (or
``MOTION_KEYPOINTS_DEBUG=1``) shows the traceback instead. Output piped into a reader that stops
early (``| head``) ends the command quietly with status 141, as SIGPIPE would.

Before the command's body runs, the known harmless library warnings are filtered
(:func:`motion_keypoints.console.quiet_library_warnings`) and the kit's logger prints plain lines
(:func:`motion_keypoints.console.setup_console`). A file-system error on a path the user gave
(permission denied, a folder where a file is expected or the reverse, a read-only disk...) is one
line ``error: cannot write PATH: ...; choose ...``. A YAML syntax error is one line naming the
file, line and column; a yacs/detectron2 config error (unknown key, type mismatch, ...) is one
line when it was raised inside the config libraries. An error torch re-raises from a DataLoader
worker is unwrapped to the worker's original message (so a kit error raised while loading data
is still its one line). Any other exception is a bug and keeps its traceback.

The config itself is checked whole before any work by ``setup_cfg``
(:mod:`motion_keypoints.models.config_check`); this boundary is the net for what escapes it.
"""

from __future__ import annotations

import errno
import os
import re
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

#: errno values of an OSError on a user's path that the user can fix (not bugs).
PATH_ERRNOS = {
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EISDIR: "it is a folder, a file was expected",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EROFS: "read-only file system",
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.ENAMETOOLONG: "file name too long",
}


def debug_enabled(argv: Sequence[str]) -> bool:
    return DEBUG_FLAG in argv or os.environ.get(DEBUG_ENV, "").strip().lower() in ("1", "true", "yes")


def path_error_message(exc: OSError) -> Optional[str]:
    """One line for an OSError on a path the user can fix; None when it is not one (a bug)."""
    if exc.filename is None or exc.errno not in PATH_ERRNOS:
        return None
    path = os.fsdecode(exc.filename)
    why = PATH_ERRNOS[exc.errno]
    if exc.errno == errno.EISDIR:
        fix = "give a file name, not a folder"
    elif exc.errno == errno.ENOTDIR:
        fix = "choose a path whose folders are folders, not files"
    elif exc.errno in (errno.ENOSPC, errno.EDQUOT):
        fix = "free some space or choose another disk"
    else:
        fix = "choose a writable location or fix the permissions"
    return f"cannot write {path}: {why}; {fix}"


#: Where torch re-raises an exception of a DataLoader worker (torch._utils.ExceptionWrapper):
#: "Caught DataError in DataLoader worker process 0.\nOriginal Traceback (most recent call
#: last):\n..." with the same exception type.
_WRAPPED = re.compile(r"^Caught \w+ in .*\nOriginal Traceback \(most recent call last\):\n", re.S)


def unwrap_worker_message(message: str) -> str:
    """The original message of an exception re-raised by torch from a DataLoader worker (the
    last line(s) of the worker's traceback, without the exception's class name); any other
    message unchanged."""
    if not _WRAPPED.match(message):
        return message
    last = message.rsplit("Traceback (most recent call last):\n", 1)[-1].splitlines()
    start = next((i for i, line in enumerate(last) if line and not line[0].isspace()), None)
    if start is None:
        return message
    text = "\n".join(last[start:]).strip()
    head, sep, rest = text.partition(": ")
    return rest if sep and re.fullmatch(r"[\w.]+", head) else text


def user_message(exc: BaseException) -> Optional[str]:
    """The one line of a user's mistake (see the module); None for a bug, which keeps its
    traceback. yacs/detectron2 config errors count only when raised inside the config
    libraries, and YAML errors always (the kit writes no invalid YAML: the file is the user's)."""
    import yaml

    from ..models.config_check import raised_in_config_library, yaml_problem

    if isinstance(exc, USER_ERRORS):
        return unwrap_worker_message(str(exc))
    if isinstance(exc, yaml.YAMLError):
        return yaml_problem(exc)
    if isinstance(exc, OSError):
        return path_error_message(exc)
    if isinstance(exc, (KeyError, AssertionError, ValueError)) and raised_in_config_library(exc):
        return f"config: {exc.args[0] if exc.args else type(exc).__name__}"
    return None


def _prepare_console() -> None:
    from .. import console

    console.quiet_library_warnings()
    console.setup_console()


def _drop_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's last flush of a closed pipe is quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # pragma: no cover - no real stdout (a capture)
        pass


def _flush_stdout() -> None:
    """Flush what the command printed (argparse's --help included) while the boundary is in
    charge: a reader that went away is quiet here, not at the interpreter's exit."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _drop_stdout()
    except (OSError, ValueError):  # pragma: no cover - a closed capture
        pass


def run_command(body: Callable[[List[str]], Optional[int]], argv: Optional[Sequence[str]] = None) -> int:
    """Run a command's ``body(argv)`` and map its errors to exit statuses (see the module)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = debug_enabled(argv)
    argv = [a for a in argv if a != DEBUG_FLAG]
    _prepare_console()
    from ..io.outputs import OVERWRITE_FLAG, command_policy  # the one output policy

    overwrite = OVERWRITE_FLAG in argv
    argv = [a for a in argv if a != OVERWRITE_FLAG]
    try:
        with command_policy(body.__module__.rsplit(".", 1)[-1], overwrite=overwrite):
            return int(body(argv) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of the output went away (``... --help | head``)
        _drop_stdout()
        return 141  # as a shell reports a command ended by SIGPIPE
    except Exception as exc:
        message = user_message(exc)
        if message is None:
            raise  # a bug: its traceback
        if debug:
            traceback.print_exc()
        print(f"error: {message}", file=sys.stderr)
        return 1
    finally:
        _flush_stdout()
