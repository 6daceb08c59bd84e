"""One run, one folder: a lock, a refusal to mix runs, and a completion manifest written last.

Every writer of a run folder (``jaxreg run``, ``main``, ``sweep``, ``compare``) opens it with
:func:`open_run_folder`, which

* checks the path (a file, a folder under a file, an unwritable folder: one-line
  :class:`RunFolderError` naming the path and what is wrong);
* takes ``.jaxreg.lock`` in the folder, an ``flock`` the kernel drops when the process dies (even
  on ``kill -9``), so a second writer is refused with the holder's pid while a dead writer's lock
  is taken over with a line saying so;
* refuses a folder that already holds a run unless told what to do with it (``overwrite``:
  replace it; ``resume``: continue it, for runs that can); a run that did not complete (killed,
  crashed) is resumed when the run can resume, else the folder is started clean, and a line
  says which;
* writes ``manifest.json`` with ``status: "running"`` at the start and, through
  :meth:`RunFolder.complete`, rewrites it LAST with ``status: "complete"`` and every file's size
  and SHA-256, so a killed run is never read as complete (:func:`is_complete`).

Each run gets a run id (``YYYYmmdd-HHMMSS-xxxxxx``) that :mod:`jaxreg.lab.report` writes into
every result row, beside the seed. A folder inside an open run folder (``jaxreg main``'s
per-experiment subfolders) belongs to that run: :func:`find_open` returns the enclosing one.

PyTorch equivalent: none built in (Lightning's ``ModelCheckpoint`` and ``TensorBoardLogger``
version their folders instead of refusing them; ``filelock`` is the usual lock).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import secrets
import shutil
import socket
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

try:  # POSIX: an advisory lock the kernel releases when its process dies.
    import fcntl
except ImportError:  # pragma: no cover - Windows: fall back to an exclusive create + pid check
    fcntl = None

LOCK_NAME = ".jaxreg.lock"
MANIFEST_NAME = "manifest.json"
COMPLETE = "complete"
RUNNING = "running"
FAILED = "failed"

# What jaxreg writes into run folders, so that `overwrite` may clear a folder of an older jaxreg
# (one without a manifest) but never a folder holding anything else.
_KNOWN_FILES = frozenset(
    {
        "config.json",
        "metrics.jsonl",
        "results.jsonl",
        "results.csv",
        "results.json",
        "report.md",
        "metrics.npz",
        "comparison.json",
        "compare.json",
        "fits.json",
        "tuning.csv",
        MANIFEST_NAME,
        LOCK_NAME,
    }
)
_KNOWN_SUFFIXES = (".png",)

# Folders of this process that are open, by resolved path.
_OPEN: dict[Path, RunFolder] = {}


class RunFolderError(ValueError):
    """A run folder cannot be used as asked; the message (one line) names the path and why."""


def new_run_id(now: _dt.datetime | None = None) -> str:
    """A fresh run id: the UTC start time and 6 random hex digits.

    Example:
      >>> len(new_run_id())
      22
    """
    now = now or _dt.datetime.now(_dt.timezone.utc)
    return now.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def read_manifest(path: str | os.PathLike) -> dict[str, Any] | None:
    """The ``manifest.json`` of run folder ``path``, or None when it has none (or not JSON).

    Example:
      >>> import tempfile
      >>> read_manifest(tempfile.mkdtemp()) is None
      True
    """
    try:
        data = json.loads((Path(path) / MANIFEST_NAME).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def is_complete(path: str | os.PathLike) -> bool:
    """Whether run folder ``path`` holds a completed run (its manifest says so, written last).

    Example:
      >>> import tempfile
      >>> is_complete(tempfile.mkdtemp())
      False
    """
    manifest = read_manifest(path)
    return bool(manifest) and manifest.get("status") == COMPLETE


def find_open(path: str | os.PathLike) -> RunFolder | None:
    """The run folder of this process that ``path`` is (or lies inside), or None.

    Example:
      >>> find_open("/nonexistent/folder") is None
      True
    """
    target = Path(path).expanduser().resolve()
    for root, folder in _OPEN.items():
        if target == root or root in target.parents:
            return folder
    return None


def _stderr(line: str) -> None:
    print(f"jaxreg: {line}", file=sys.stderr, flush=True)


# ---- the path -----------------------------------------------------------------------------------
def _make_dir(path: Path, label: str) -> None:
    if path.exists() and not path.is_dir():
        raise RunFolderError(f"{label} {path} is a file, not a folder: choose a folder path")
    for parent in reversed(path.parents):
        if parent.exists() and not parent.is_dir():
            raise RunFolderError(
                f"{label} {path}: {parent} is a file, so no folder can be made under it"
            )
    try:
        path.mkdir(parents=True, exist_ok=True)
    except PermissionError:
        raise RunFolderError(
            f"{label} {path}: cannot create the folder (permission denied): choose a folder "
            "you can write to"
        ) from None
    except OSError as err:
        raise RunFolderError(
            f"{label} {path}: cannot create the folder ({err.strerror or err})"
        ) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise RunFolderError(
            f"{label} {path} is not writable (permission denied): choose a folder you can write to"
        )


# ---- the lock -----------------------------------------------------------------------------------
def _read_holder(fd: int) -> dict[str, Any]:
    os.lseek(fd, 0, os.SEEK_SET)
    raw = b""
    while chunk := os.read(fd, 4096):
        raw += chunk
    try:
        info = json.loads(raw.decode() or "{}")
    except ValueError:
        info = {}
    return info if isinstance(info, dict) else {}


def _describe(holder: Mapping[str, Any]) -> str:
    parts = [f"pid {holder.get('pid', '?')}"]
    if holder.get("host") and holder.get("host") != socket.gethostname():
        parts.append(f"on {holder['host']}")
    if holder.get("run_id"):
        parts.append(f"run {holder['run_id']}")
    if holder.get("started"):
        parts.append(f"since {holder['started']}")
    return ", ".join(parts)


def _pid_alive(pid: Any) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError, TypeError):
        return False
    except PermissionError:
        return True
    return True


def _acquire_lock(lock: Path, info: Mapping[str, Any], label: str) -> tuple[int, dict | None]:
    """Takes the folder's lock; returns ``(fd, the stale holder's info or None)``."""
    payload = json.dumps(dict(info)).encode()
    for _ in range(20):
        try:
            flags = os.O_RDWR | os.O_CREAT | (0 if fcntl else os.O_EXCL)
            fd = os.open(lock, flags, 0o644)
        except FileExistsError:  # pragma: no cover - no fcntl: the holder decides by its pid
            with open(lock, "rb") as f:
                holder = json.loads(f.read().decode() or "{}")
            if _pid_alive(holder.get("pid")):
                raise _held(lock, holder, label) from None
            lock.unlink(missing_ok=True)
            continue
        except PermissionError:
            raise RunFolderError(
                f"{label} {lock.parent} is not writable (cannot create its lock {lock.name})"
            ) from None
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(fd)
                os.close(fd)
                raise _held(lock, holder, label) from None
            # The previous holder unlinks the file when it finishes: a lock on an unlinked file
            # would lock nothing, so it must still be the file at this path.
            try:
                same = os.fstat(fd).st_ino == os.stat(lock).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
        previous = _read_holder(fd) or None
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, payload)
        os.fsync(fd)
        return fd, previous
    raise RunFolderError(f"{label} {lock.parent}: could not take the lock {lock} (contended)")


def _held(lock: Path, holder: Mapping[str, Any], label: str) -> RunFolderError:
    who = "this process" if holder.get("pid") == os.getpid() else "another jaxreg process"
    return RunFolderError(
        f"{label} {lock.parent} is being written by {who} ({_describe(holder)}; lock file "
        f"{lock}): wait for it to finish or choose another {label}"
    )


# ---- the folder ---------------------------------------------------------------------------------
def _foreign(path: Path) -> list[str]:
    """Entries of ``path`` that no jaxreg run writes (relative names), recursively."""
    out = []
    for entry in sorted(path.iterdir()):
        name = entry.name
        if entry.is_dir() and not entry.is_symlink():
            if name == "chunks":
                out += [
                    f"chunks/{e.name}" for e in entry.iterdir() if not e.name.startswith("chunk_")
                ]
            else:
                out += [f"{name}/{sub}" for sub in _foreign(entry)]
        elif not (name in _KNOWN_FILES or name.endswith(_KNOWN_SUFFIXES) or ".tmp-" in name):
            out.append(name)
    return out


def _clear(path: Path) -> None:
    for entry in path.iterdir():
        if entry.name == LOCK_NAME:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def _flag_hint(flags: Mapping[str, str], resumable: bool) -> str:
    hint = f"pass {flags['overwrite']} to replace it"
    if resumable:
        hint += f", or {flags['resume']} to continue it"
    return hint


class RunFolder:
    """An open run folder: locked by this process until :meth:`complete` or :meth:`fail`.

    Made by :func:`open_run_folder`. Use it as a context manager: leaving the block normally
    completes the run (the manifest written last), an exception marks it failed; either way the
    lock is released.

    Attributes:
      path: the folder.
      run_id: the run's id (kept when a run is resumed).
      kind: what wrote it (``"run"``, ``"main"``, ``"sweep"``, ``"compare"``).
      state: ``"new"`` (empty folder), ``"overwritten"``, ``"restarted"`` (an incomplete run
        was cleared) or ``"resumed"`` (files kept).
      notices: the lines said about it (stale lock taken over, started clean, resumed).
    """

    def __init__(self, path: Path, run_id: str, kind: str, state: str, fd: int, *, auto: bool):
        self.path = path
        self.run_id = run_id
        self.kind = kind
        self.state = state
        self.notices: list[str] = []
        self.auto = auto
        self._adopted = False  # handed to a writer by report.make_run_dir
        self._fd: int | None = fd
        self._manifest: dict[str, Any] = {}

    @property
    def active(self) -> bool:
        """True until the run is completed or failed (the lock is held)."""
        return self._fd is not None

    @property
    def resumed(self) -> bool:
        """Whether the folder's earlier files were kept to be continued."""
        return self.state == "resumed"

    def write_text(self, name: str, text: str) -> Path:
        """Writes ``path/name`` atomically (folders created); returns its path."""
        from jaxreg.lab.files import atomic_write_text

        target = self.path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        return atomic_write_text(target, text)

    def write_json(self, name: str, obj: Any) -> Path:
        """Writes ``path/name`` as indented JSON (numpy values converted), atomically."""
        from jaxreg.lab.files import write_json

        target = self.path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        return write_json(target, obj)

    def _write_manifest(self, **fields: Any) -> Path:
        from jaxreg.lab.files import write_json

        self._manifest.update(fields)
        return write_json(self.path / MANIFEST_NAME, self._manifest)

    def _files(self) -> list[dict[str, Any]]:
        out = []
        for file in sorted(p for p in self.path.rglob("*") if p.is_file()):
            name = file.relative_to(self.path).as_posix()
            if name in (MANIFEST_NAME, LOCK_NAME) or ".tmp-" in file.name:
                continue
            digest = hashlib.sha256(file.read_bytes()).hexdigest()
            out.append({"path": name, "bytes": file.stat().st_size, "sha256": digest})
        return out

    def complete(self, **extra: Any) -> Path:
        """Marks the run complete: ``manifest.json`` (every file, its size and SHA-256) is
        written last, then the lock is released. A second call does nothing.

        Args:
          **extra: JSON-able fields to add to the manifest.

        Returns:
          The manifest's path.
        """
        if not self.active:
            return self.path / MANIFEST_NAME
        path = self._write_manifest(status=COMPLETE, finished=_now(), files=self._files(), **extra)
        self._release()
        return path

    def fail(self, reason: str = "") -> Path:
        """Marks the run failed (a later run into the folder resumes or starts clean) and
        releases the lock. Does nothing once the run is complete."""
        if not self.active:
            return self.path / MANIFEST_NAME
        path = self._write_manifest(status=FAILED, finished=_now(), reason=reason)
        self._release()
        return path

    def close(self) -> None:
        """Releases the folder: a run not completed by now is marked failed."""
        self.fail("closed before completion")

    def _release(self) -> None:
        fd, self._fd = self._fd, None
        _OPEN.pop(self.path.resolve(), None)
        if fd is None:
            return
        # Unlinked while still held, so that a waiter that opened it sees a stale inode.
        (self.path / LOCK_NAME).unlink(missing_ok=True)
        os.close(fd)

    def __enter__(self) -> RunFolder:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.complete()
        else:
            self.fail(f"{exc_type.__name__}: {exc}")

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r}, run_id={self.run_id!r}, state={self.state!r})"


def open_run_folder(
    path: str | os.PathLike,
    *,
    kind: str = "run",
    overwrite: bool = False,
    resume: bool | None = None,
    resumable: bool = False,
    command: str = "",
    label: str = "run folder",
    flags: Mapping[str, str] | None = None,
    log: Callable[[str], None] | None = _stderr,
    auto: bool = False,
) -> RunFolder:
    """Opens ``path`` for one run: checked, locked, refused if it holds another run.

    Args:
      path: the folder; created (with its parents) if missing.
      kind: what is writing it, recorded in the manifest (``"run"``, ``"sweep"``, ...).
      overwrite: replace a run the folder holds (its files are deleted; only jaxreg run
        folders are ever cleared).
      resume: for a ``resumable`` run: True continues the folder's run, complete or not; None
        (default) continues a run that did not complete and refuses a complete one; False never
        continues (an incomplete run is started clean).
      resumable: whether this run can continue an earlier one (sweeps: chunk checkpoints).
      command: the command line, recorded in the manifest.
      label: how messages name the folder (the CLI passes ``"--out"``).
      flags: how messages name the options, ``{"overwrite": ..., "resume": ...}``; default
        ``overwrite=True`` / ``resume=True``.
      log: where the one-line notices go (stale lock taken over, started clean, resumed);
        default stderr; None: only kept in :attr:`RunFolder.notices`.
      auto: opened on a writer's behalf (:func:`jaxreg.lab.report.make_run_dir`): the report
        writer completes it when it writes ``report.md``.

    Returns:
      The locked :class:`RunFolder`, with ``manifest.json`` saying ``"running"``.

    Raises:
      RunFolderError: the path is a file or lies under one, cannot be created or written; another
        process holds the lock; the folder holds a run and neither ``overwrite`` nor ``resume``
        says what to do with it; the folder holds files no jaxreg run writes.

    Example:
      >>> import tempfile
      >>> with open_run_folder(tempfile.mkdtemp(), log=None) as folder:
      ...     _ = folder.write_text("report.md", "# done")
      >>> is_complete(folder.path), folder.state
      (True, 'new')
    """
    flags = {"overwrite": "overwrite=True", "resume": "resume=True", **(flags or {})}
    if resume and not resumable:
        raise RunFolderError(f"{flags['resume']}: a {kind} cannot resume; it starts clean")
    if overwrite and resume:
        raise RunFolderError(f"{flags['overwrite']} and {flags['resume']} exclude each other")
    path = Path(path).expanduser()
    _make_dir(path, label)
    run_id = new_run_id()
    info = {"pid": os.getpid(), "host": socket.gethostname(), "run_id": run_id, "started": _now()}
    fd, stale = _acquire_lock(path / LOCK_NAME, info, label)
    notices = []
    try:
        if stale and stale.get("pid") not in (None, os.getpid()):
            notices.append(
                f"took over the stale lock {path / LOCK_NAME} of pid {stale['pid']}"
                f"{' (run ' + stale['run_id'] + ')' if stale.get('run_id') else ''}, which no "
                "longer runs"
            )
        state, run_id = _decide(
            path, kind, run_id, overwrite, resume, resumable, label, flags, notices
        )
    except BaseException:
        (path / LOCK_NAME).unlink(missing_ok=True)
        os.close(fd)
        raise
    folder = RunFolder(path, run_id, kind, state, fd, auto=auto)
    folder.notices = notices
    previous = read_manifest(path) if state == "resumed" else None
    sessions = (previous or {}).get("sessions", 0) + 1
    folder._write_manifest(
        run_id=run_id,
        kind=kind,
        status=RUNNING,
        started=info["started"] if previous is None else previous.get("started", info["started"]),
        pid=info["pid"],
        host=info["host"],
        command=command,
        state=state,
        sessions=sessions,
        notices=notices,
    )
    _OPEN[path.resolve()] = folder
    if log is not None:
        for line in notices:
            log(line)
    return folder


def _decide(path, kind, run_id, overwrite, resume, resumable, label, flags, notices):
    """What to do with the folder's contents: ``(state, run id)``; clears or raises."""
    entries = [e for e in path.iterdir() if e.name != LOCK_NAME]
    if not entries:
        return "new", run_id
    manifest = read_manifest(path)
    foreign = _foreign(path)
    if foreign:
        # Never cleared, never mixed into: the folder holds something jaxreg did not write.
        shown = ", ".join(foreign[:3]) + (
            f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
        )
        raise RunFolderError(
            f"{label} {path} is not empty and not only a jaxreg run folder (it holds {shown}): "
            f"choose an empty or new {label}"
        )
    if manifest is None:
        what = "files of an earlier jaxreg run without a completion manifest"
        old_id, status, old_kind = None, None, kind
    else:
        old_id, status = manifest.get("run_id"), manifest.get("status")
        old_kind = manifest.get("kind", kind)
        what = f"the {status or 'unknown'} {old_kind} {old_id}"
    if overwrite:
        _clear(path)
        notices.append(f"{flags['overwrite']}: removed {what} from {path}")
        return "overwritten", run_id
    if old_kind != kind:
        raise RunFolderError(
            f"{label} {path} already holds {what}: {_flag_hint(flags, False)}, or choose another "
            f"{label}"
        )
    if status == COMPLETE or manifest is None:
        if resume and resumable:
            notices.append(f"{flags['resume']}: continuing {what} in {path}")
            return "resumed", old_id or run_id
        raise RunFolderError(
            f"{label} {path} already holds {what}: {_flag_hint(flags, resumable)}, or choose "
            f"another {label}"
        )
    # A run that did not complete: killed (status "running", its lock released by the kernel)
    # or failed. Continue it where possible, else start clean; say which.
    why = "was killed" if status == RUNNING else "failed"
    if resumable and resume is not False:
        notices.append(
            f"{what} in {path} {why} before completing: resuming it (finished work kept)"
        )
        return "resumed", old_id or run_id
    _clear(path)
    notices.append(f"{what} in {path} {why} before completing: starting clean")
    return "restarted", run_id
