"""What a user sees: the kit's own lines on the console, libraries' chatter in the run's log file.

- :func:`quiet_library_warnings` filters the known harmless warnings of the libraries the kit uses,
  each by its exact message, in this one place. Any other warning, the kit's own included, stays
  visible.
- :func:`setup_console` gives the ``motion_keypoints`` logger a plain console handler (message only,
  printed through tqdm so it never breaks a progress bar).
- :func:`setup_run_logging` sends detectron2's and fvcore's complete log to ``<run>/log.txt`` and
  not to the console; the kit's lines go to both.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from typing import Optional, Sequence

#: (category, regex matched at the start of the message, where it comes from and why it is
#: harmless[, regex of the module the warning is attributed to, for messages too generic to
#: filter everywhere]). Filtered by message (and module), never by category alone.
LIBRARY_WARNINGS = (
    (
        FutureWarning,
        r"`torch\.jit\.script` is deprecated",
        "fvcore scripts a helper at import time; the kit does not use TorchScript",
    ),
    (
        UserWarning,
        r"pkg_resources is deprecated as an API",
        "setuptools' warning, raised by libraries that still import pkg_resources",
    ),
    (
        UserWarning,
        r"torch\.meshgrid: in an upcoming release, it will be required to pass the indexing",
        "old callers of torch.meshgrid (detectron2's own call is patched at build time)",
    ),
    (
        UserWarning,
        r"Creating a tensor from a list of numpy\.ndarrays is extremely slow",
        "detectron2 structures built from lists (patched at build time for keypoints)",
    ),
    (
        UserWarning,
        r"The given NumPy array is not writable",
        "torch.as_tensor on read-only arrays in detectron2's data pipeline; never written to",
    ),
    (
        UserWarning,
        r"'pin_memory' argument is set as true but no accelerator is found",
        "detectron2's data loader asks for pinned memory on CPU-only machines",
    ),
    (
        UserWarning,
        r"Detected call of `lr_scheduler\.step\(\)` before `optimizer\.step\(\)`",
        "detectron2's AMP trainer skips an optimizer step when the loss scale is adjusted",
    ),
    (
        FutureWarning,
        r"`torch\.cuda\.amp\.(GradScaler|autocast)\(args\.\.\.\)` is deprecated",
        "detectron2 0.6's AMP trainer uses the old torch.cuda.amp names",
    ),
    (
        FutureWarning,
        r"`broadcast_buffers` is deprecated\. Use `forward_sync_buffers` instead",
        "detectron2's DefaultTrainer wraps a multi-process model with broadcast_buffers=False",
    ),
    (
        FutureWarning,
        r"You are using `torch\.load` with `weights_only=False`",
        "fvcore's checkpointer loads the kit's own checkpoints",
    ),
    (
        ResourceWarning,
        r"unclosed file <_io\.TextIOWrapper name=",
        "detectron2's default_setup reads the config file into log.txt without closing it",
        r"detectron2\.engine\.defaults",
    ),
    (
        DeprecationWarning,
        r"The 'warn' method is deprecated, use 'warning' instead",
        "detectron2's COCOEvaluator calls logger.warn (a message that goes to log.txt anyway)",
        r"detectron2\.",
    ),
)

#: (logger, start of the message, why it is harmless): library log records (not warnings) that
#: reach the console before the run's log file exists.
LIBRARY_LOG_RECORDS = (
    (
        "torch.utils.cpp_extension",
        "No CUDA runtime is found",
        "torch on a machine without a GPU, when detectron2 imports its extension helpers",
    ),
)

_KIT_LOGGER = "motion_keypoints"


class _DropMessages(logging.Filter):
    def __init__(self, starts):
        super().__init__()
        self.starts = tuple(starts)

    def filter(self, record):
        try:
            return not str(record.getMessage()).startswith(self.starts)
        except Exception:  # pragma: no cover - a record that cannot be formatted passes
            return True


def quiet_library_warnings() -> None:
    """Ignore the known harmless library warnings and log records above (by exact message);
    idempotent."""
    for category, message, _why, *module in LIBRARY_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category,
                                module=module[0] if module else "")
    for name, start, _why in LIBRARY_LOG_RECORDS:
        lg = logging.getLogger(name)
        if not any(isinstance(f, _DropMessages) and start in f.starts for f in lg.filters):
            lg.addFilter(_DropMessages([start]))


class _TqdmHandler(logging.Handler):
    """Console lines that do not break an active tqdm progress bar. Writes to the stream given,
    else to ``sys.stdout`` as it is when the line is written (so pytest's capture and
    ``redirect_stdout`` work)."""

    def __init__(self, stream=None):
        super().__init__()
        self._stream = stream

    @property
    def stream(self):
        return self._stream or sys.stdout

    def emit(self, record):
        try:
            from tqdm import tqdm

            tqdm.write(self.format(record), file=self.stream)
            self.stream.flush()
        except Exception:  # pragma: no cover - logging must never raise
            self.handleError(record)


class _ConsoleFormatter(logging.Formatter):
    def format(self, record):
        msg = super().format(record)
        if record.levelno >= logging.ERROR:
            return f"error: {msg}"
        if record.levelno >= logging.WARNING:
            return f"warning: {msg}"
        return msg


def setup_console(level: int = logging.INFO) -> logging.Logger:
    """The kit's logger with one plain console handler (idempotent)."""
    drop_library_consoles()
    logger = logging.getLogger(_KIT_LOGGER)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    if not any(isinstance(h, _TqdmHandler) for h in logger.handlers):
        handler = _TqdmHandler()
        handler.setLevel(level)
        handler.setFormatter(_ConsoleFormatter("%(message)s"))
        logger.addHandler(handler)
    return logger


def _is_console(handler: logging.Handler) -> bool:
    """A stream handler that does not write to a file on disk: a console, including a console
    stream replaced since (a closed capture, an earlier ``redirect_stdout``). detectron2 writes
    its log file through a plain ``StreamHandler`` on an opened file, which is kept."""
    if not isinstance(handler, logging.StreamHandler) or isinstance(handler, logging.FileHandler):
        return False
    name = getattr(getattr(handler, "stream", None), "name", None)
    return not (isinstance(name, str) and os.path.isfile(name))


def drop_library_consoles(names: Sequence[str] = ("detectron2", "fvcore")) -> None:
    """Remove the console handlers detectron2's ``setup_logger`` gave its loggers: the console
    shows the kit's lines only (their log goes to the run's ``log.txt``)."""
    for name in names:
        lg = logging.getLogger(name)
        for h in [h for h in lg.handlers if _is_console(h)]:
            lg.removeHandler(h)


def setup_run_logging(output_dir: str, rank: int = 0) -> Optional[str]:
    """detectron2's and fvcore's loggers write to ``<output_dir>/log.txt`` only (their console
    handlers are removed); the kit's logger writes there too, and keeps its console line.

    Call before ``default_setup``: it calls ``setup_logger`` with the same arguments, which is
    cached, so it reuses these loggers and adds no console handler. Calling it again for another
    folder moves the kit's file handler there (one run file at a time)."""
    from detectron2.utils.logger import setup_logger

    # Same arguments as detectron2's default_setup, so its own calls hit setup_logger's cache.
    loggers = [
        setup_logger(output_dir, distributed_rank=rank, name="fvcore"),
        setup_logger(output_dir, distributed_rank=rank),
    ]
    for lg in loggers:
        for h in list(lg.handlers):
            if _is_console(h):
                lg.removeHandler(h)
    kit = setup_console()
    if rank > 0:  # one console: the other processes of a multi-process run log to log.txt.rank<N>
        for h in [h for h in kit.handlers if isinstance(h, _TqdmHandler)]:
            kit.removeHandler(h)
    if not output_dir:
        return None
    for h in list(kit.handlers):  # one run file at a time
        if getattr(h, "_kit_run_file", None) not in (None, output_dir):
            kit.removeHandler(h)
    if not any(getattr(h, "_kit_run_file", None) == output_dir for h in kit.handlers):
        # detectron2's log.txt stream (log.txt.rank<N> for other ranks)
        file_handler = next((h for h in loggers[1].handlers if not _is_console(h)), None)
        if file_handler is not None:
            fh = logging.StreamHandler(file_handler.stream)
            fh.setFormatter(file_handler.formatter)
            fh.setLevel(logging.DEBUG)
            fh._kit_run_file = output_dir  # type: ignore[attr-defined]
            kit.addHandler(fh)
    return output_dir
