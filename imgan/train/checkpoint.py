"""Training checkpoints: everything needed to continue a run exactly, written atomically.

A checkpoint is a dict of plain containers and tensors, so it loads with
``torch.load(weights_only=True)``::

    {"format": 1, "imgan_version": "0.1.0", "step": 1200,
     "config": {...},                      # the resolved options, as plain values
     "export": {"module": "generator", "arch": ..., "params": {...}, ...},
     "modules": {"generator": state_dict, "generator_ema": ..., "discriminator": ...},
     "optimizers": {...}, "schedulers": {...}, "scaler": {...},
     "rng": {"torch": ByteTensor, "cuda": [ByteTensor, ...]}}

Files: ``RUN_DIR/checkpoints/step_0001200.pt`` and ``latest.pt`` (a hard link to the newest,
or a copy where links are not possible). Only the standard library is imported at module level.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
from pathlib import Path
from typing import Any

from imgan.errors import ImganError
from imgan.files import write_atomically

__all__ = [
    "CHECKPOINT_FORMAT",
    "checkpoint_dir",
    "checkpoint_path",
    "find_checkpoint",
    "load_checkpoint",
    "save_checkpoint",
    "write_atomically",
]

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 1
_STEP_FILE = re.compile(r"^step_(\d+)\.pt$")


def checkpoint_dir(run_dir: Path) -> Path:
    return run_dir / "checkpoints"


def checkpoint_path(run_dir: Path, step: int) -> Path:
    return checkpoint_dir(run_dir) / f"step_{step:07d}.pt"


def save_checkpoint(run_dir: Path, state: dict[str, Any]) -> Path:
    """Write ``state`` as ``step_N.pt`` and point ``latest.pt`` at it; returns the step file."""
    import torch

    target = checkpoint_path(run_dir, int(state["step"]))
    write_atomically(target, lambda file: torch.save(state, file))
    latest = checkpoint_dir(run_dir) / "latest.pt"
    temporary = latest.with_name(f".latest.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    try:
        os.link(target, temporary)
    except OSError:  # no hard links on this file system
        shutil.copyfile(target, temporary)
    os.replace(temporary, latest)
    log.debug("saved %s", target)
    return target


def find_checkpoint(location: Path) -> Path:
    """The checkpoint a path means: a .pt file itself, or a run directory's newest one."""
    if location.is_file():
        return location
    folder = checkpoint_dir(location)
    latest = folder / "latest.pt"
    if latest.is_file():
        return latest
    steps = sorted(
        (int(match.group(1)), path)
        for path in (folder.iterdir() if folder.is_dir() else ())
        if (match := _STEP_FILE.match(path.name))
    )
    if steps:
        return steps[-1][1]
    if not location.exists():
        raise ImganError(f"{location}: no such run directory or checkpoint")
    raise ImganError(f"{location}: no checkpoint in {folder} (not a run directory, or the run stopped before "
                     "its first save); start again with another --out")


def load_checkpoint(location: Path, *, map_location: Any = "cpu") -> dict[str, Any]:
    """A checkpoint's state, loaded with ``weights_only=True`` (a run directory means its latest)."""
    import torch

    path = find_checkpoint(location)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for a damaged file; all mean the same here
        from imgan.hub import torch_load_problem

        raise ImganError(f"{path}: cannot read the checkpoint ({torch_load_problem(exc)}); "
                         "use an earlier step_*.pt file") from exc
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT or "step" not in state:
        raise ImganError(f"{path}: not an imgan training checkpoint")
    return state
