"""Safe file writing for runs: atomic writes, OS-error translation, run-folder locks, stale temp files.

* :func:`atomic_write` — the one way this package writes a result file (checkpoints, results.json,
  predictions, config.yaml, profile JSON): a temporary ``PATH.tmp.<pid>`` in the same folder, flushed
  and fsync'ed, then renamed over ``PATH``. A crash, a kill or a full disk leaves the previous ``PATH``
  intact; a failure removes the temporary file and raises a one-line :class:`UserError` that names the
  cause ("no space left on device", "read-only file system", ...) and the path.
* :func:`describe_os_error` — that translation, also used for streamed appends.
* :class:`FolderLock` — an exclusive lock on a run folder / output file (``fcntl.flock`` on a lock
  file holding ``{"pid", "host"}``): a second writer is refused in one line naming the holder; a lock
  left by a dead process on this host is taken over with a note.
* :func:`remove_stale_temp_files` — ``*.tmp.<pid>`` files whose process is gone (left by a kill -9
  during a write) are deleted when a run starts.
"""
from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import re
import shutil
import socket
import time
from typing import Callable, List, Optional

from .errors import UserError

logger = logging.getLogger("video_ats")

TMP_RE = re.compile(r"\.tmp\.(\d+)$")

_ERRNO_TEXT = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EIO: "input/output error",
    errno.ENOENT: "folder does not exist (removed while running?)",
    errno.EISDIR: "is a folder",
    errno.ENOTDIR: "a parent of it is not a folder",
    errno.EFBIG: "file too large for this file system",
}
DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO, errno.EFBIG)


def describe_os_error(exc: BaseException, path: Optional[str] = None) -> str:
    """A short, lower-case cause for an OSError (``"no space left on device"``)."""
    if isinstance(exc, OSError) and exc.errno in _ERRNO_TEXT:
        return _ERRNO_TEXT[exc.errno]
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror[:1].lower() + exc.strerror[1:]
    if path is not None:                         # torch's writer hides the errno: look at the folder
        cause = _diagnose_folder(os.path.dirname(os.path.abspath(path)))
        if cause:
            return cause
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"{type(exc).__name__}: {text[:150]}"


def _diagnose_folder(folder: str) -> Optional[str]:
    try:
        st = os.statvfs(folder)
    except OSError:
        return None
    if st.f_flag & os.ST_RDONLY:
        return _ERRNO_TEXT[errno.EROFS]
    if st.f_bavail * st.f_frsize < 1 << 20 or (st.f_files and st.f_favail == 0):
        return _ERRNO_TEXT[errno.ENOSPC]
    if not os.access(folder, os.W_OK):
        return _ERRNO_TEXT[errno.EACCES]
    return None


class _RecordingFile:
    """A binary file that remembers the OSError of a failed write (torch's zip writer replaces it with
    'unexpected pos ...')."""

    def __init__(self, f):
        self._f = f
        self.error: Optional[OSError] = None

    def write(self, data):
        try:
            return self._f.write(data)
        except OSError as exc:
            if self.error is None:
                self.error = exc
            raise

    def flush(self):
        return self._f.flush()

    def __getattr__(self, name):
        return getattr(self._f, name)


def first_missing_dir(path: str) -> Optional[str]:
    """The top-most folder on the way to ``path`` (``path`` included) that does not exist yet: what
    ``os.makedirs(path)`` creates first, so that a command failing in its setup can remove all it made.
    None when ``path`` exists."""
    path, top = os.path.abspath(path), None
    while not os.path.exists(path):
        top, parent = path, os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return top


def remove_if_no_files(folder: Optional[str]) -> None:
    """Remove ``folder`` (made by a command whose setup then failed) if no file was written anywhere in it."""
    if folder is None or not os.path.isdir(folder):
        return
    if not any(files for _, _, files in os.walk(folder)):
        shutil.rmtree(folder, ignore_errors=True)


def temp_path(path: str) -> str:
    return f"{path}.tmp.{os.getpid()}"


def atomic_write(path, write: Callable, what: str = "file", binary: bool = True, hint: str = "",
                 make_parent: bool = False) -> None:
    """Write ``path`` atomically with ``write(fileobj)``; failures become one-line UserErrors.

    ``what`` names the file in the message ("checkpoint", "results"); ``hint`` is appended (e.g. "the
    previous checkpoint is kept"). ``make_parent`` creates the folder first (off for run files: a run
    folder removed while it runs is an error, not something to recreate).
    """
    path = os.fspath(path)
    if make_parent:
        try:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        except OSError as exc:
            raise UserError(f"cannot write {what} {path}: {describe_os_error(exc)}") from None
    tmp = temp_path(path)
    rec = None
    try:
        with open(tmp, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})) as raw:
            rec = _RecordingFile(raw)
            write(rec)
            rec.flush()
            os.fsync(raw.fileno())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as exc:
        cause = describe_os_error(rec.error if rec is not None and rec.error is not None else exc, path)
        raise UserError(f"cannot write {what} {path}: {cause}" + (f"; {hint}" if hint else "")) from None
    finally:
        try:
            os.remove(tmp)
        except OSError:
            pass


def atomic_write_text(path, text: str, what: str = "file", hint: str = "", make_parent: bool = False) -> None:
    atomic_write(path, lambda f: f.write(text), what, binary=False, hint=hint, make_parent=make_parent)


def atomic_write_json(path, obj, what: str = "file", hint: str = "", indent: int = 2,
                      make_parent: bool = False) -> None:
    atomic_write_text(path, json.dumps(obj, indent=indent) + "\n", what, hint, make_parent)


# ------------------------------------------------------------------------------------------------
# processes and stale files
# ------------------------------------------------------------------------------------------------
def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (a zombie counts as gone)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().split(b")")[-1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


def remove_stale_temp_files(folder: str, prefixes: Optional[List[str]] = None) -> List[str]:
    """Delete ``*.tmp.<pid>`` files in ``folder`` (only names starting with one of ``prefixes``, when
    given) whose process is no longer alive on this host; returns their paths."""
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        m = TMP_RE.search(name)
        if not m or (prefixes is not None and not any(name.startswith(p) for p in prefixes)):
            continue
        if pid_alive(int(m.group(1))):
            continue
        p = os.path.join(folder, name)
        try:
            size = os.path.getsize(p)
            os.remove(p)
        except OSError:
            continue
        removed.append(p)
        logger.info("removed %s (%.1f MB), a temporary file left by a process that no longer runs", p, size / 2**20)
    return removed


# ------------------------------------------------------------------------------------------------
# locks
# ------------------------------------------------------------------------------------------------
class FolderLock:
    """An exclusive, process-lifetime lock held through ``flock`` on ``lock_path``.

    ``acquire()`` raises a one-line :class:`UserError` when another live process holds it; the file
    names the holder's pid and host. ``flock`` is released by the kernel when the holder dies (also on
    kill -9), so a lock file left behind is *stale* and taken over with a note; a file naming another
    host is refused (we cannot tell from here whether that run is over). Use as a context manager or call :meth:`release`.
    """

    def __init__(self, lock_path: str, what: str):
        self.path = os.fspath(lock_path)
        self.what = what
        self.fd: Optional[int] = None
        self.note: Optional[str] = None

    @staticmethod
    def _holder(fd: int) -> dict:
        try:
            os.lseek(fd, 0, os.SEEK_SET)
            data = os.read(fd, 4096)
            info = json.loads(data.decode("utf-8")) if data.strip() else {}
            return info if isinstance(info, dict) else {}
        except (OSError, ValueError):
            return {}

    def acquire(self) -> "FolderLock":
        host = socket.gethostname()
        for _ in range(20):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise UserError(f"cannot create the lock file {self.path}: {describe_os_error(exc, self.path)}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                info = self._holder(fd)
                os.close(fd)
                who = f"pid {info.get('pid', '?')}" + (f" on host {info['host']}" if info.get("host") else "")
                raise UserError(f"{self.what} is in use by another video-ats process ({who}; lock file "
                                f"{self.path}); wait for it to finish or choose another folder") from None
            except OSError as exc:
                os.close(fd)
                raise UserError(f"cannot lock {self.path}: {describe_os_error(exc, self.path)}") from None
            try:                                  # the file we locked may have been unlinked meanwhile
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except OSError:
                same = False
            if not same:
                os.close(fd)
                continue
            info = self._holder(fd)
            old_pid, old_host = info.get("pid"), info.get("host")
            if old_pid not in (None, os.getpid()) and old_host not in (None, host):
                os.close(fd)
                raise UserError(f"{self.what} is locked by pid {old_pid} on host {old_host} (lock file "
                                f"{self.path}); if that run is over, delete the lock file and rerun")
            if old_pid not in (None, os.getpid()):
                self.note = (f"note: taking over the stale lock of pid {old_pid} (no longer running) on "
                             f"{self.what}")
            payload = json.dumps({"pid": os.getpid(), "host": host, "since": time.strftime("%Y-%m-%d %H:%M:%S")})
            try:
                os.ftruncate(fd, 0)
                os.lseek(fd, 0, os.SEEK_SET)
                os.write(fd, payload.encode() + b"\n")
            except OSError as exc:
                os.close(fd)
                raise UserError(f"cannot write the lock file {self.path}: {describe_os_error(exc, self.path)}") from None
            self.fd = fd
            return self
        raise UserError(f"cannot lock {self.path}: it keeps being replaced by another process")

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            os.remove(self.path)
        except OSError:
            pass
        try:
            os.close(self.fd)
        except OSError:
            pass
        self.fd = None

    def __enter__(self):
        return self.acquire() if self.fd is None else self

    def __exit__(self, *exc):
        self.release()
        return False


def replace_generated_block(path: str, block: str, begin: str, end: str, begin_line: Optional[str] = None) -> None:
    """Replace what lies between the marker ``begin`` (a prefix of its line is enough) and ``end`` in the
    text file ``path`` (a README) with ``block``; the begin marker is rewritten as ``begin_line`` when
    given. The file is written atomically."""
    if os.path.isdir(path):
        raise UserError(f"{path!r} is a folder; give the README file")
    if not os.path.isfile(path):
        raise UserError(f"{path!r} not found")
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except UnicodeDecodeError:
        raise UserError(f"{path} is not UTF-8 text") from None
    except OSError as exc:
        raise UserError(f"cannot read {path}: {describe_os_error(exc)}") from None
    if begin not in text or end not in text:
        raise UserError(f"{path} has no generated-block markers ({begin_line or begin} ... {end})")
    head, rest = text.split(begin, 1)
    if end not in rest:
        raise UserError(f"{path}: the end marker {end} comes before the begin marker; put the block back in order")
    _, tail = rest.split(end, 1)
    atomic_write_text(path, head + (begin_line or begin) + "\n" + block + end + tail, "README")


def publish_readme(repo: Optional[str]) -> Optional[str]:
    """The README.md of the repository folder a ``--publish`` option names (None: not publishing)."""
    if repo is None:
        return None
    readme = os.path.join(repo, "README.md")
    if not os.path.isfile(readme):
        raise UserError(f"--publish {repo}: no README.md there (give the repository folder)")
    return readme
