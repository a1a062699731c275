"""One training loop for every trainer: data feeding, EMA, mixed precision, accumulation, DDP,
validation, samples, metrics, checkpoints, resume and Ctrl-C.

A trainer is any object with the methods of ``Trainer`` below; it builds its networks, losses
and optimizers from the config and the ``Runtime`` the loop lends it, and says how one
optimisation step goes. Everything else happens here. A pix2pix trainer, for example::

    class Pix2PixTrainer:
        def __init__(self, config: PairedConfig, runtime: Runtime) -> None:
            self.runtime = runtime
            self.generator = UNetGenerator(...).to(runtime.device)     # plain modules: checkpointed
            self.discriminator = PatchDiscriminator(...).to(runtime.device)
            self.g = runtime.wrap(self.generator)                      # DDP when several processes train
            self.d = runtime.wrap(self.discriminator)
            self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
            self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))

        def modules(self):    return {"generator": self.generator, "discriminator": self.discriminator}
        def optimizers(self): return {"generator": self.opt_g, "discriminator": self.opt_d}
        def schedulers(self): return {}
        def dataset(self):    return PairedImages(...)  # item i depends only on (seed, i), never on epochs
        def export_generator(self):
            return GeneratorSpec(module=self.generator, name="generator", arch="unet",
                                 params={...}, task="sketch2photo", scale=1)

        def train_step(self, batch, step):                  # batch: `accum` micro-batches on the device
            run, fakes = self.runtime, []
            self.discriminator.requires_grad_(False)
            for micro in run.micro_batches(batch, self.g):  # DDP no_sync on all but the last
                with run.autocast():
                    fake = self.g(micro["sketch"])
                    logits = self.discriminator(torch.cat([micro["sketch"], fake], 1))
                    loss = gan_loss(logits, real=True) + 100 * pixel_loss(fake, micro["photo"])
                run.backward(loss)                          # scaled for AMP, divided by accum
                fakes.append(fake.detach())
            run.step(self.opt_g)                            # optimizer step + zero_grad
            self.discriminator.requires_grad_(True)
            for micro, fake in zip(run.micro_batches(batch, self.d), fakes):
                with run.autocast():
                    real_logits = self.d(torch.cat([micro["sketch"], micro["photo"]], 1))
                    fake_logits = self.d(torch.cat([micro["sketch"], fake], 1))
                    loss = gan_loss(real_logits, real=True) + gan_loss(fake_logits, real=False)
                run.backward(loss)
            run.step(self.opt_d)
            return {"l_g": ..., "l_d": ...}                 # floats, averaged and logged by the loop

        def validate(self, generator):  return {"l1": ...}  # generator: the EMA copy (or the live one)
        def samples(self, generator):   return grid         # (1,3,H,W) in [0,1], written as PNG

``run(config, Pix2PixTrainer, ...)`` then trains it. The loop keeps the generator's EMA
(``generator_ema`` in checkpoints), calls ``validate`` and ``samples`` in eval mode without
gradients, and steps every scheduler once per optimisation step. Of the config it reads only
``RunConfig``'s options: out, family, steps, batch_size, accum, ema, ema_warmup, seed, workers,
device, precision and the *_every intervals. It reports progress to a ``Reporter``
(``imgan.train.progress``) and never prints.

Data: micro-batch m of step s on rank r holds samples ``((s*accum + m)*world + r)*batch + k``
for k < batch, so the stream depends only on (seed, step): a run resumed at step s sees
exactly the samples an uninterrupted run would have.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import logging
import math
import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Protocol, TypeVar

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from imgan import __version__
from imgan.errors import ImganError
from imgan.train import distributed
from imgan.train.checkpoint import CHECKPOINT_FORMAT, load_checkpoint, save_checkpoint
from imgan.train.config import RunConfig, config_dict, save_config
from imgan.train.progress import LogReporter, Reporter

__all__ = [
    "EMA",
    "GeneratorSpec",
    "RunResult",
    "Runtime",
    "StepSampler",
    "Trainer",
    "TrainingInterrupted",
    "run",
]

log = logging.getLogger(__name__)

T = TypeVar("T")
ConfigT = TypeVar("ConfigT", bound=RunConfig)
EMA_NAME = "generator_ema"


class TrainingInterrupted(ImganError):
    """Training stopped early on request; a checkpoint of the last finished step was saved."""

    def __init__(self, step: int, run_dir: Path) -> None:
        super().__init__(f"interrupted at step {step}; resume with imgan train --resume {run_dir}")
        self.step = step
        self.run_dir = run_dir


@dataclass(frozen=True)
class GeneratorSpec:
    """The network a run produces, and what ``imgan train export`` writes beside its weights."""

    module: nn.Module
    """The plain (unwrapped) generator; the loop keeps its EMA."""
    name: str
    """Its key in ``Trainer.modules()``."""
    arch: str
    params: Mapping[str, Any]
    task: str
    scale: int
    value_range: tuple[float, float] = (0.0, 1.0)
    metadata: Mapping[str, str] = field(default_factory=dict)
    """More safetensors metadata for the exported file (a text2img model's vocabulary)."""


class Trainer(Protocol):
    """What the loop needs from a trainer (see the module docstring for an example)."""

    def modules(self) -> dict[str, nn.Module]: ...
    def optimizers(self) -> dict[str, torch.optim.Optimizer]: ...
    def schedulers(self) -> dict[str, torch.optim.lr_scheduler.LRScheduler]: ...
    def dataset(self) -> Dataset: ...
    def export_generator(self) -> GeneratorSpec: ...
    def train_step(self, batch: Sequence[Any], step: int) -> dict[str, float]: ...
    def validate(self, generator: nn.Module) -> dict[str, float]: ...
    def samples(self, generator: nn.Module) -> torch.Tensor: ...


# --------------------------------------------------------------------------- runtime


def amp_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype: fp16 on CUDA for auto, none on CPU (mixed precision is CUDA only here)."""
    if device.type != "cuda":
        if precision in ("fp16", "bf16"):
            log.warning("--precision %s: mixed precision runs on CUDA only; training in fp32", precision)
        return None
    return {"auto": torch.float16, "fp16": torch.float16, "bf16": torch.bfloat16}.get(precision)


class Runtime:
    """What the loop lends a trainer: the device, DDP wrapping, autocast, scaled backward, steps."""

    def __init__(self, *, context: distributed.Distributed, accum: int, dtype: torch.dtype | None) -> None:
        self.context = context
        self.device = context.device
        self.accum = accum
        self.dtype = dtype
        self.scaler: Any = None
        if dtype == torch.float16:  # fp16 needs loss scaling; bf16 does not
            scaler = getattr(torch.amp, "GradScaler", None)
            self.scaler = scaler("cuda") if scaler is not None else torch.cuda.amp.GradScaler()

    def wrap(self, module: nn.Module) -> nn.Module:
        """``module`` in DistributedDataParallel when several processes train, else itself."""
        return distributed.wrap(module, self.context)

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """Mixed precision for forward passes and losses (nothing on CPU or in fp32)."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    def micro_batches(self, batch: Sequence[T], *wrapped: nn.Module) -> Iterator[T]:
        """The micro-batches, with DDP gradient sync of ``wrapped`` skipped on all but the last."""
        for index, micro in enumerate(batch):
            with contextlib.ExitStack() as stack:
                if index < len(batch) - 1:
                    for module in wrapped:
                        if hasattr(module, "no_sync"):
                            stack.enter_context(module.no_sync())
                yield micro

    def backward(self, loss: torch.Tensor) -> None:
        """Backward of ``loss / accum``, loss-scaled under fp16."""
        loss = loss / self.accum
        if self.scaler is not None:
            loss = self.scaler.scale(loss)
        loss.backward()

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """Apply the accumulated gradients (skipped by the scaler if they overflowed), then clear them."""
        if self.scaler is not None:
            self.scaler.step(optimizer)
        else:
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def end_step(self) -> None:
        if self.scaler is not None:
            self.scaler.update()


class EMA:
    """Exponential moving average of a module's parameters and floating-point buffers.

    With ``warmup`` the decay after step t (counted from 0) is min(decay, (1 + t) / (10 + t)), as
    in TensorFlow's ExponentialMovingAverage with num_updates: the average follows the early
    weights closely, so a short run exports trained weights rather than mostly its initial ones.
    """

    def __init__(self, module: nn.Module, *, decay: float, warmup: bool = True) -> None:
        self.decay = decay
        self.warmup = warmup
        self.module = copy.deepcopy(module).eval().requires_grad_(False)

    def decay_at(self, step: int) -> float:
        """The decay of the update after step ``step`` (0-based)."""
        return min(self.decay, (1 + step) / (10 + step)) if self.warmup else self.decay

    @torch.no_grad()
    def update(self, source: nn.Module, *, step: int) -> None:
        """Average the trained parameters; copy the frozen ones (a text2img run's frozen caption encoder)."""
        weight = 1.0 - self.decay_at(step)
        for average, live in zip(self.module.parameters(), source.parameters(), strict=True):
            if live.requires_grad:
                average.lerp_(live.detach(), weight)
            else:
                average.copy_(live)
        for average, live in zip(self.module.buffers(), source.buffers(), strict=True):
            if average.is_floating_point():
                average.lerp_(live, weight)
            else:
                average.copy_(live)


# --------------------------------------------------------------------------- data


class StepSampler(Sampler[int]):
    """Global sample numbers for steps ``start_step`` .. ``steps`` - 1 of one rank (see module docstring)."""

    def __init__(self, *, start_step: int, steps: int, batch_size: int, accum: int, world_size: int,
                 rank: int) -> None:
        self.start_step = start_step
        self.steps = steps
        self.batch_size = batch_size
        self.accum = accum
        self.world_size = world_size
        self.rank = rank

    def __iter__(self) -> Iterator[int]:
        for step in range(self.start_step, self.steps):
            for micro in range(self.accum):
                first = ((step * self.accum + micro) * self.world_size + self.rank) * self.batch_size
                yield from range(first, first + self.batch_size)

    def __len__(self) -> int:
        return max(0, self.steps - self.start_step) * self.accum * self.batch_size


def samples_needed(config: RunConfig, world_size: int) -> int:
    """How many sample numbers a run of ``config.steps`` steps uses, over all ranks."""
    return config.steps * config.accum * world_size * config.batch_size


def _ignore_interrupts(worker: int) -> None:
    """DataLoader workers leave Ctrl-C to the main process, which stops cleanly."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _to_device(value: Any, device: torch.device) -> Any:
    if isinstance(value, torch.Tensor):
        return value.to(device, non_blocking=True)
    if isinstance(value, Mapping):
        return {key: _to_device(item, device) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_device(item, device) for item in value)
    return value


# --------------------------------------------------------------------------- bookkeeping


class _Metrics:
    """metrics.csv (step,key,value; one row per value) and TensorBoard when it is installed."""

    def __init__(self, run_dir: Path, *, start_step: int) -> None:
        self.path = run_dir / "metrics.csv"
        rows: list[list[str]] = []
        if start_step and self.path.is_file():  # drop rows past the checkpoint we resume from
            with self.path.open(newline="", encoding="utf-8") as file:
                rows = [row for row in list(csv.reader(file))[1:] if row and int(row[0]) <= start_step]
        with self.path.open("w", newline="", encoding="utf-8") as file:
            csv.writer(file).writerows([["step", "key", "value"], *rows])
        self.board: Any = None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            return
        self.board = SummaryWriter(log_dir=str(run_dir / "tensorboard"), purge_step=start_step + 1)

    def write(self, step: int, values: Mapping[str, float]) -> None:
        with self.path.open("a", newline="", encoding="utf-8") as file:
            csv.writer(file).writerows([step, key, f"{value:.6g}"] for key, value in values.items())
        if self.board is not None:
            for key, value in values.items():
                self.board.add_scalar(key, value, step)

    def close(self) -> None:
        if self.board is not None:
            self.board.close()


class _Meter:
    """Running means of the losses since the last log line."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}

    def add(self, values: Mapping[str, float]) -> None:
        for key, value in values.items():
            self.sums[key] = self.sums.get(key, 0.0) + float(value)
            self.counts[key] = self.counts.get(key, 0) + 1

    def pop(self) -> dict[str, float]:
        means = {key: self.sums[key] / self.counts[key] for key in self.sums}
        self.sums, self.counts = {}, {}
        return means


@dataclass
class _Speed:
    """Steps per second over the last few hundred steps."""

    times: list[tuple[float, int]] = field(default_factory=list)

    def tick(self, step: int) -> float:
        self.times.append((time.perf_counter(), step))
        del self.times[:-200]
        (first, first_step), (last, last_step) = self.times[0], self.times[-1]
        return (last_step - first_step) / (last - first) if last > first else 0.0


class _StopNow(Exception):
    """Raised between steps once a stop was requested on any rank."""


class _StopRequest:
    """First Ctrl-C (or SIGTERM): finish this step, save, stop. A second Ctrl-C stops at once.

    A second signal within ``PATIENCE`` seconds of the first counts as the same request:
    torchrun passes the terminal's Ctrl-C on to its workers, which then get it twice.
    """

    PATIENCE = 2.0

    def __init__(self) -> None:
        self.requested = False
        self._since = 0.0
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopRequest:
        if threading.current_thread() is threading.main_thread():
            for number in (signal.SIGINT, signal.SIGTERM):
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def _handle(self, number: int, frame: FrameType | None) -> None:
        if self.requested:
            if number == signal.SIGINT and time.monotonic() - self._since > self.PATIENCE:
                raise KeyboardInterrupt
            return
        self.requested, self._since = True, time.monotonic()
        log.warning("stopping after this step (saving a checkpoint); press Ctrl-C again to stop at once")

    def __exit__(self, *exc_info: object) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous.clear()


# --------------------------------------------------------------------------- checkpoints


@dataclass(frozen=True)
class RunResult:
    """Where a run ended: its folder, its step, the checkpoint written last (rank 0 only)."""

    run_dir: Path
    step: int
    checkpoint: Path | None
    main: bool = True
    """False in the processes other than rank 0, which report nothing."""


def _rng_state(device: torch.device) -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _collect(step: int, *, config: RunConfig, trainer: Trainer, spec: GeneratorSpec, ema: EMA | None,
             runtime: Runtime) -> dict[str, Any]:
    modules = {name: module.state_dict() for name, module in trainer.modules().items()}
    if ema is not None:
        modules[EMA_NAME] = ema.module.state_dict()
    return {
        "format": CHECKPOINT_FORMAT,
        "imgan_version": __version__,
        "step": step,
        "config": config_dict(config),
        "export": {
            "module": EMA_NAME if ema is not None else spec.name,
            "arch": spec.arch,
            "params": dict(spec.params),
            "task": spec.task,
            "scale": spec.scale,
            "value_range": list(spec.value_range),
            "family": config.family,
            "metadata": dict(spec.metadata),
        },
        "modules": modules,
        "optimizers": {name: opt.state_dict() for name, opt in trainer.optimizers().items()},
        "schedulers": {name: sched.state_dict() for name, sched in trainer.schedulers().items()},
        "scaler": runtime.scaler.state_dict() if runtime.scaler is not None else {},
        "rng": _rng_state(runtime.device),
    }


def _restore(state: dict[str, Any], *, trainer: Trainer, spec: GeneratorSpec, ema: EMA | None,
             runtime: Runtime, where: Path) -> int:
    """Load a checkpoint into the trainer, the EMA, the scaler and the RNGs; returns its step."""
    saved = state.get("modules", {})

    def load(kind: str, name: str, target: Any, entries: Mapping[str, Any]) -> None:
        if name not in entries:
            raise ImganError(f"{where}: the checkpoint has no {kind} {name!r}; was it written by another "
                             "kind of run?")
        try:
            target.load_state_dict(entries[name])
        except (RuntimeError, ValueError, KeyError) as exc:
            first = str(exc).strip().splitlines()[0][:200]
            raise ImganError(f"{where}: the {kind} {name!r} in the checkpoint does not fit this run "
                             f"({first}); were the architecture options changed?") from exc

    for name, module in trainer.modules().items():
        load("network", name, module, saved)
    if ema is not None:
        load("network", EMA_NAME if EMA_NAME in saved else spec.name, ema.module, saved)
    for name, optimizer in trainer.optimizers().items():
        load("optimizer", name, optimizer, state.get("optimizers", {}))
    for name, scheduler in trainer.schedulers().items():
        load("scheduler", name, scheduler, state.get("schedulers", {}))
    if runtime.scaler is not None and state.get("scaler"):
        runtime.scaler.load_state_dict(state["scaler"])
    rng = state.get("rng", {})
    if "torch" in rng:
        torch.set_rng_state(rng["torch"].cpu())
    if "cuda" in rng and runtime.device.type == "cuda":
        torch.cuda.set_rng_state(rng["cuda"].cpu(), runtime.device)
    return int(state["step"])


# --------------------------------------------------------------------------- the loop


def _every(step: int, interval: int, final: bool) -> bool:
    return interval > 0 and (step % interval == 0 or final)


def _write_samples(grid: torch.Tensor, path: Path) -> None:
    from imgan.io import Picture, write_picture

    image = grid if grid.ndim == 4 else grid.unsqueeze(0)
    picture = Picture(rgb=image.detach().float().cpu().clamp(0, 1), alpha=None, bit_depth=8, grayscale=False,
                      icc_profile=None, exif=None, source_format="png", name=str(path))
    write_picture(picture, path)


@torch.no_grad()
def in_eval_mode(function: Callable[[nn.Module], T], module: nn.Module) -> T:
    was_training = module.training
    module.eval()
    try:
        return function(module)
    finally:
        module.train(was_training)


def run(
    config: ConfigT,
    build: Callable[[ConfigT, Runtime], Trainer],
    *,
    resume: bool,
    reporter: Reporter | None = None,
) -> RunResult:
    """Train ``build(config, runtime)`` for ``config.steps`` steps in ``config.out``.

    With ``resume`` the run continues from the newest checkpoint in ``config.out``. Progress goes
    to ``reporter`` on rank 0 (default: a ``LogReporter``). Raises TrainingInterrupted (after
    saving) on Ctrl-C or SIGTERM.
    """
    run_dir = Path(config.out)
    report: Reporter = reporter if reporter is not None else LogReporter()
    with distributed.session(config.device) as context:
        main = context.is_main
        torch.manual_seed(config.seed)
        if context.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        runtime = Runtime(context=context, accum=config.accum, dtype=amp_dtype(config.precision, context.device))
        trainer = build(config, runtime)
        spec = trainer.export_generator()
        if EMA_NAME in trainer.modules():
            raise ValueError(f"a trainer module may not be called {EMA_NAME!r}; the loop uses that name")
        ema = EMA(spec.module, decay=config.ema, warmup=config.ema_warmup) if config.ema > 0 else None
        start = 0
        if resume:
            state = load_checkpoint(run_dir, map_location="cpu")
            start = _restore(state, trainer=trainer, spec=spec, ema=ema, runtime=runtime, where=run_dir)
            del state
            log.info("resuming %s at step %d", run_dir, start)
        if start >= config.steps:
            log.warning("%s has already trained %d steps (--steps %d); raise --steps to continue",
                        run_dir, start, config.steps)
            return RunResult(run_dir=run_dir, step=start, checkpoint=None, main=main)

        metrics = None
        if main:
            run_dir.mkdir(parents=True, exist_ok=True)
            save_config(config, run_dir / "config.toml")
            metrics = _Metrics(run_dir, start_step=start)
        log.info("training %s (%s x%d) for %d steps on %s%s; run directory %s", config.family, spec.arch,
                 spec.scale, config.steps, context.device,
                 f" x {context.world_size} processes" if context.enabled else "", run_dir)
        if main:
            report.started(start=start, total=config.steps)

        sampler = StepSampler(start_step=start, steps=config.steps, batch_size=config.batch_size,
                              accum=config.accum, world_size=context.world_size, rank=context.rank)
        # The loader's own generator: starting an iterator draws a seed from it, which from torch's global
        # generator would shift every later random draw of a resumed run (the noise of a GAN step).
        loader = DataLoader(trainer.dataset(), batch_size=config.batch_size, sampler=sampler,
                            num_workers=config.workers, pin_memory=context.device.type == "cuda",
                            worker_init_fn=_ignore_interrupts if config.workers else None,
                            generator=torch.Generator().manual_seed(config.seed))
        batches = iter(loader)
        meter, speed = _Meter(), _Speed()
        speed.tick(start)
        step, saved_step, last_saved, in_step = start, None, None, False
        optimizers, schedulers = trainer.optimizers(), trainer.schedulers()
        stop = _StopRequest()

        def save() -> Path | None:
            if not main:
                return None
            path = save_checkpoint(run_dir, _collect(step, config=config, trainer=trainer, spec=spec, ema=ema,
                                                     runtime=runtime))
            report.saved(step, path)
            return path

        def report_losses(means: dict[str, float]) -> None:
            for name, value in means.items():
                if not math.isfinite(value):
                    log.warning("step %d: %s is %s", step, name, value)
            if metrics is not None:
                rates = {f"lr/{name}": opt.param_groups[0]["lr"] for name, opt in optimizers.items()}
                metrics.write(step, {**{f"train/{k}": v for k, v in means.items()}, **rates})

        def evaluate(*, final: bool) -> None:
            """Validation scores and sample grids of the EMA generator (else the live one)."""
            generator = ema.module if ema is not None else spec.module
            if _every(step, config.val_every, final):
                scores = in_eval_mode(trainer.validate, generator)
                report.validated(step, scores)
                if metrics is not None:
                    metrics.write(step, {f"val/{k}": v for k, v in scores.items()})
            if _every(step, config.sample_every, final):
                path = run_dir / "samples" / f"step_{step:07d}.png"
                _write_samples(in_eval_mode(trainer.samples, generator), path)
                report.sampled(step, path)

        try:
            with stop:
                while step < config.steps:
                    batch = [_to_device(next(batches), runtime.device) for _ in range(config.accum)]
                    in_step = True
                    losses = trainer.train_step(batch, step)
                    runtime.end_step()
                    with warnings.catch_warnings():  # a D scheduler steps before its optimizer while pretraining
                        warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step")
                        for scheduler in schedulers.values():
                            scheduler.step()
                    if ema is not None:
                        ema.update(spec.module, step=step)
                    step += 1
                    in_step = False
                    final = step == config.steps
                    meter.add(losses)
                    logged = None
                    if step % config.log_every == 0 or final:
                        logged = meter.pop()
                        report_losses(logged)
                    if main:
                        report.step(step, speed=speed.tick(step), losses=logged)
                        evaluate(final=final)
                        if _every(step, config.save_every, final) or final:
                            last_saved, saved_step = save(), step
                    if not final and distributed.any_rank(stop.requested, context):
                        raise _StopNow
        except (KeyboardInterrupt, _StopNow):
            if in_step:
                log.warning("step %d was cut short; the checkpoint may hold part of its updates", step + 1)
            if saved_step != step:
                save()
            raise TrainingInterrupted(step, run_dir) from None
        finally:
            del batches
            if metrics is not None:
                metrics.close()
        distributed.check_replicas(spec.module, context)
        if main:
            report.finished(step, last_saved)
        return RunResult(run_dir=run_dir, step=step, checkpoint=last_saved, main=main)
