"""One process per run folder: :class:`RunLock`.

A training (``train.py``, ``--resume``, ``--clear``, ``--eval-only``) holds an exclusive
``fcntl.flock`` on ``<run>/.lock`` for the whole run, taken before anything in the folder is
written or removed. A second process is refused at once with :class:`RunLockedError` naming the
holder (PID, host, start time, read from the lock file). The kernel releases a flock when its
holder dies, however it dies (kill -9 included), so a crashed training never blocks the folder:
the PID text it leaves behind is only informational and is overwritten by the next holder.

The lock file is removed when the lock is released (under the lock; a process that opened the
old file checks after locking that the path still names the file it locked, and retries
otherwise). A run folder the lock created, and that is still empty on release (the run's checks
failed), is removed too, so a refused start leaves nothing behind. A folder that is, lies in or
holds a data folder or an augmentation set is refused before the lock file is written
(:func:`motion_keypoints.io.outputs.check_run_place`).

:func:`held_runs` names the run folders this process holds: the output policy lets a training
write into its own run. Nothing here imports torch.
"""

from __future__ import annotations

import datetime
import fcntl
import os
import socket
from pathlib import Path
from typing import Optional

from ..errors import UserError
from ..files import PathLike
from .held import _HELD, HELD_ENV, LOCK_FILE, held_runs


class RunLockedError(UserError, RuntimeError):
    """Another process holds the run folder; the message names it and what to do."""


def _publish() -> None:
    """Tell the processes this one starts which runs it holds (see :data:`HELD_ENV`)."""
    me = str(os.getpid())
    inherited = [e for e in os.environ.get(HELD_ENV, "").split(os.pathsep)
                 if e and e.partition("=")[0] != me]
    value = os.pathsep.join(inherited + [f"{me}={p}" for p in sorted(_HELD)])
    if value:
        os.environ[HELD_ENV] = value
    else:
        os.environ.pop(HELD_ENV, None)


def lock_holder(run_dir: PathLike) -> Optional[str]:
    """What the lock file of ``run_dir`` says about its (last) holder, e.g. ``"PID 123 on host
    since 2026-01-01 10:00:00"``; None without a lock file or text."""
    try:
        text = (Path(run_dir) / LOCK_FILE).read_text().strip()
    except OSError:
        return None
    fields = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    if "pid" not in fields:
        return None
    where = f" on {fields['host']}" if fields.get("host") else ""
    since = f" since {fields['started']}" if fields.get("started") else ""
    return f"PID {fields['pid']}{where}{since}"


def _same_file(fd: int, path: Path) -> bool:
    try:
        a, b = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


class RunLock:
    """An exclusive lock on a run folder, as a context manager (or :meth:`acquire` /
    :meth:`release`). Creates the folder when it does not exist. Re-entrant within a process
    for the same folder (a second ``RunLock`` of a held folder is a no-op)."""

    def __init__(self, run_dir: PathLike):
        self.run_dir = Path(run_dir)
        self._fd: Optional[int] = None
        self._created = False
        self._nested = False

    @property
    def path(self) -> Path:
        return self.run_dir / LOCK_FILE

    @property
    def held(self) -> bool:
        return self._fd is not None or self._nested

    def acquire(self) -> RunLock:
        if self.held:
            return self
        if self.run_dir.exists() and not self.run_dir.is_dir():
            raise RunLockedError(f"OUTPUT_DIR {self.run_dir} is a file; give a folder for the run")
        key = self.run_dir.resolve()
        if key in _HELD:
            self._nested = True
            return self
        from .outputs import check_run_place

        check_run_place(self.run_dir)  # never a lock file in a data folder or a set
        if not self.run_dir.exists():
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self._created = True
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                self._forget_created()
                raise RunLockedError(self._refusal()) from None
            except BaseException:
                os.close(fd)
                raise
            # The holder before us may have removed the file after we opened it: then we hold a
            # lock on a file no one else can see; start again on the path's current file.
            if _same_file(fd, self.path):
                break
            os.close(fd)
        self._fd = fd
        self._write_holder()
        _HELD[key] = self
        _publish()
        return self

    def release(self) -> None:
        if self._nested:
            self._nested = False
            return
        if self._fd is None:
            return
        _HELD.pop(self.run_dir.resolve(), None)
        _publish()
        try:
            self.path.unlink(missing_ok=True)  # still ours: we hold the lock
        finally:
            os.close(self._fd)  # releases the flock
            self._fd = None
        self._forget_created()

    def _forget_created(self) -> None:
        """Remove the folder this lock created if nothing else was written into it."""
        if self._created:
            self._created = False
            try:
                self.run_dir.rmdir()
            except OSError:
                pass  # not empty: the run wrote into it

    def _write_holder(self) -> None:
        started = datetime.datetime.now().isoformat(sep=" ", timespec="seconds")
        text = f"pid={os.getpid()}\nhost={socket.gethostname()}\nstarted={started}\n"
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, text.encode(), 0)

    def _refusal(self) -> str:
        holder = lock_holder(self.run_dir) or "another process (PID not yet written)"
        pid = holder.split()[1] if holder.startswith("PID ") else None
        stop = f"stop it (kill {pid}), " if pid else "stop it, "
        return (f"{self.run_dir} is in use by {holder} (training, --resume, --clear or "
                f"--eval-only of that run): wait for it to finish, {stop}or give another "
                "OUTPUT_DIR")

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

    def __del__(self):  # pragma: no cover - a forgotten lock is released with the process
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass


__all__ = ["LOCK_FILE", "RunLock", "RunLockedError", "held_runs", "lock_holder"]
