"""What a training run tells whoever watches it: the ``Reporter`` protocol, and ``LogReporter``.

The loop calls a reporter on rank 0 only: ``started`` once, ``step`` after every optimisation
step (with the mean losses on the steps it logs them), ``validated``, ``sampled`` and ``saved``
as they happen, and ``finished`` when the last step is done (not when the run is interrupted).
``LogReporter`` turns them into log lines; the ``imgan train`` command passes one that draws a
progress bar on a terminal. Nothing here imports torch.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Protocol

__all__ = ["LogReporter", "Reporter", "format_eta", "format_values"]

log = logging.getLogger(__name__)


class Reporter(Protocol):
    """Receives the events of a training run."""

    def started(self, *, start: int, total: int) -> None:
        """Training runs from step ``start`` (0, or the step a resumed run had reached) to ``total``."""

    def step(self, step: int, *, speed: float, losses: Mapping[str, float] | None) -> None:
        """``step`` steps are done, at ``speed`` steps per second; ``losses``: means since the last log, or None."""

    def validated(self, step: int, scores: Mapping[str, float]) -> None:
        """Validation scores of the generator (its EMA, if the run keeps one) after ``step`` steps."""

    def sampled(self, step: int, path: Path) -> None:
        """A sample grid was written to ``path``."""

    def saved(self, step: int, path: Path) -> None:
        """A checkpoint was written to ``path``."""

    def finished(self, step: int, checkpoint: Path | None) -> None:
        """All steps are done; ``checkpoint`` is the one written last."""


def format_values(values: Mapping[str, float]) -> str:
    """``l_pix 0.0123  l_gan 0.693``."""
    return "  ".join(f"{key} {value:.4g}" for key, value in values.items())


def format_eta(seconds: float) -> str:
    """``1:02:03``, or ``?`` when not known."""
    if not math.isfinite(seconds):
        return "?"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


class LogReporter:
    """Log lines: the losses, speed and ETA every ``log_every`` steps (and at least every ``interval``
    seconds, without losses, on slow runs), validation scores, the end."""

    def __init__(self, *, interval: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.total = 0
        self.interval = interval
        self.clock = clock
        self.last_line = clock()

    def started(self, *, start: int, total: int) -> None:
        self.total = total
        self.last_line = self.clock()

    def step(self, step: int, *, speed: float, losses: Mapping[str, float] | None) -> None:
        now = self.clock()
        if losses is None and now - self.last_line < self.interval:
            return
        self.last_line = now
        eta = format_eta((self.total - step) / speed if speed > 0 else math.inf)
        if losses is None:
            log.info("step %d/%d  %.2f step/s  ETA %s", step, self.total, speed, eta)
        else:
            log.info("step %d/%d  %s  %.2f step/s  ETA %s", step, self.total, format_values(losses), speed, eta)

    def validated(self, step: int, scores: Mapping[str, float]) -> None:
        log.info("step %d: validation %s", step, format_values(scores))

    def sampled(self, step: int, path: Path) -> None:
        log.debug("step %d: samples %s", step, path)

    def saved(self, step: int, path: Path) -> None:
        log.debug("step %d: checkpoint %s", step, path)

    def finished(self, step: int, checkpoint: Path | None) -> None:
        log.info("finished %d steps; checkpoint %s", step, checkpoint)
