"""Atomic file writing, shared by image outputs, checkpoints, configs and exported weights."""

from __future__ import annotations

import contextlib
import functools
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

from imgan.errors import OutputError


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
    """
    target = Path(target)
    label = label or str(target)
    if target.is_dir():
        raise OutputError(f"{label}: is a directory; give a file name to write to")
    folder = target.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
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
