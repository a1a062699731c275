"""Atomic file writing, shared by image outputs, checkpoints, configs and exported weights."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import stat
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

from imgan.errors import OutputError

log = logging.getLogger(__name__)

STALE_TEMPORARY_SECONDS = 15 * 60
"""A temporary file of ours untouched for this long was left by a killed run: the next write
into its folder removes it."""

# mkstemp(prefix=f".{name[:100]}.", suffix=".tmp"): 8 random characters from tempfile's alphabet.
_TEMPORARY_NAME = re.compile(r"\..{1,100}\.[a-z0-9_]{8}\.tmp", re.DOTALL)
_swept_folders: set[str] = set()
_swept_lock = threading.Lock()


def write_atomically(
    target: str | os.PathLike[str],
    data: bytes | Callable[[IO[bytes]], None],
    *,
    label: str | None = None,
) -> None:
    """Write ``data`` (or let a function write into the open file) to ``target`` atomically.

    The bytes go to a temporary file beside the target, are flushed and fsynced, get the
    permissions of the file they replace (else 0666 & ~umask), and are renamed over the target:
    readers see the old file or the complete new one, never a part. Any failure removes the
    temporary file; OSErrors become an OutputError naming ``label`` (default: the target).

    The temporary file is ``.NAME.XXXXXXXX.tmp``; one that ``kill -9`` left behind is removed by
    the first write of a later process into that folder once it is older than 15 minutes
    (``STALE_TEMPORARY_SECONDS``), is a regular file and belongs to the current user.
    """
    target = Path(target)
    label = label or str(target)
    if target.is_dir():
        raise OutputError(f"{label}: is a directory; give a file name to write to")
    folder = target.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _remove_stale_temporaries(folder)
        descriptor, temporary = tempfile.mkstemp(dir=folder, prefix=f".{target.name[:100]}.", suffix=".tmp")
    except OSError as exc:
        raise OutputError(
            f"{label}: cannot create a file in {folder} ({exc.strerror or exc}); check that the folder is writable"
        ) from exc
    try:
        with os.fdopen(descriptor, "wb") as file:
            if isinstance(data, bytes):
                file.write(data)
            else:
                data(file)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, _new_file_mode(target))
        os.replace(temporary, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        if isinstance(exc, OSError):
            raise OutputError(
                f"{label}: cannot write the file ({exc.strerror or exc}); check free space and permissions"
            ) from exc
        raise


def _remove_stale_temporaries(folder: Path) -> None:
    """Remove our old temporary files from ``folder``: once per folder per process, never raises."""
    key = os.path.abspath(folder)
    with _swept_lock:
        if key in _swept_folders:
            return
        _swept_folders.add(key)
    cutoff = time.time() - STALE_TEMPORARY_SECONDS
    user = os.getuid() if hasattr(os, "getuid") else None
    removed = 0
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                if not _TEMPORARY_NAME.fullmatch(entry.name):
                    continue
                try:
                    info = entry.stat(follow_symlinks=False)
                    if (stat.S_ISREG(info.st_mode) and info.st_mtime < cutoff
                            and (user is None or info.st_uid == user)):
                        os.unlink(entry.path)
                        removed += 1
                except OSError:
                    continue
    except OSError:
        return
    if removed:
        log.info("removed %d temporary file(s) left in %s by an interrupted run", removed, folder)


def _new_file_mode(target: Path) -> int:
    """Permissions for the written file: those of the file it replaces, else 0666 & ~umask."""
    try:
        return stat.S_IMODE(target.stat().st_mode)
    except OSError:
        return 0o666 & ~_umask()


@functools.cache
def _umask() -> int:
    try:  # Linux shows it without changing it
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
