"""Training options, declared once: one frozen dataclass per trainer kind, whose fields carry their flags.

``RunConfig`` holds what every run has (steps, batch, learning rates, EMA, run folder, seed,
device, ...). ``SRConfig``, ``UnpairedConfig`` and ``PairedConfig`` add the options of one trainer
each, and they are the trainer kinds: a family's defaults are an instance of one, and the class
says which trainer runs it (``Kind.trainer()``). Each field made with ``option(...)`` carries its
help, help panel and rules, and the ``imgan train`` flags, the resume rules, the summaries in the
help and the ``config.toml`` written beside the checkpoints are all read from those fields.

Precedence, lowest first: the family's defaults, the ``--config`` TOML file (or the run
directory's ``config.toml`` on ``--resume``), then the command-line flags that were given.
Every run writes its resolved options to ``RUN_DIR/config.toml``; reading that file back gives
the same config. The file is flat: ``key = value`` per option, keys named like the fields
(``batch_size`` for ``--batch-size``); lists hold numbers (``betas = [0.9, 0.99]``). The keys are
those earlier versions wrote, so their run directories resume (see ``prepare_run``).

Nothing here imports torch, except where an SR run's architecture is checked.
"""

from __future__ import annotations

import math
import os
import sys
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import Field, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, ClassVar

from imgan.errors import UsageError
from imgan.train.checkpoint import write_atomically

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = [
    "FAMILIES",
    "KINDS",
    "PANELS",
    "Family",
    "GanConfig",
    "InpaintConfig",
    "Option",
    "PairedConfig",
    "RunConfig",
    "SRConfig",
    "Text2ImgConfig",
    "UnpairedConfig",
    "config_dict",
    "defaults_for",
    "load_config",
    "option",
    "options_of",
    "prepare_run",
    "resolve",
    "save_config",
]

DATA, MODEL, OPTIMISATION, LOSSES, RUN, RUNTIME = "Data", "Model", "Optimisation", "Losses", "Run", "Runtime"
PANELS = (DATA, MODEL, OPTIMISATION, LOSSES, RUN, RUNTIME)
"""The help panels, in the order the commands show them."""

_OPTION = "imgan.option"
_UNSET: Any = object()


@dataclass(frozen=True)
class Option:
    """What a config field is on the command line and in a run's life (kept in the field's metadata)."""

    help: str
    panel: str
    fixed: bool = False
    """It decides the shape of checkpointed networks or buffers, so it is fixed for the life of a run."""
    resume: bool = False
    """``imgan train --resume RUN_DIR`` takes it too (a family's command takes every option of the family)."""
    folder: bool = False
    """A folder of training data: a family's command offers it only where ``Family.inputs`` names it."""
    at_least: float | None = None
    """The smallest value that works (numbers must also be finite)."""
    choices: tuple[str, ...] = ()
    summary: str = ""
    """How a family's help names the default, such as ``{} blocks``; empty: not named."""
    derived: tuple[str, Callable[[Any], Any]] | None = None
    """For a None default: what the help calls it, and how it is computed from the resolved config."""
    legacy: Any = _UNSET
    """The value for a run directory written before the option existed (its config.toml lacks the key)."""


def option(
    default: Any,
    *,
    help: str,
    panel: str,
    fixed: bool = False,
    resume: bool = False,
    folder: bool = False,
    at_least: float | None = None,
    choices: tuple[str, ...] = (),
    summary: str = "",
    derived: tuple[str, Callable[[Any], Any]] | None = None,
    legacy: Any = _UNSET,
) -> Any:
    """A config field that is a command-line option (see ``Option``)."""
    rules = Option(help=help, panel=panel, fixed=fixed, resume=resume, folder=folder, at_least=at_least,
                   choices=choices, summary=summary, derived=derived, legacy=legacy)
    return field(default=default, metadata={_OPTION: rules})


def option_of(item: Field) -> Option | None:
    """The option a field declares, or None for plain fields (family, arch of translation runs)."""
    return item.metadata.get(_OPTION)


def options_of(kind: type[RunConfig]) -> list[tuple[Field, Option]]:
    """The option fields of a kind, in declaration order."""
    return [(item, rules) for item in fields(kind) if (rules := option_of(item)) is not None]


def flag(name: str) -> str:
    """``batch_size`` -> ``--batch-size``."""
    return f"--{name.replace('_', '-')}"


OPTIMIZERS = ("adam", "adamw")
SCHEDULES = ("constant", "cosine", "step")
PIXEL_LOSSES = ("l1", "l2", "mse", "charbonnier")
DEGRADATIONS = ("bicubic", "realesrgan", "light")
PRECISION_CHOICES = ("auto", "fp32", "fp16", "bf16")
DIRECTIONS = ("AtoB", "BtoA")
INPAINT_GANS = ("hinge", "wgan-gp")
INPAINT_MASKS = ("mixed", "strokes", "boxes")  # imgan.masks.MASK_KINDS
INPAINT_SCHEDULES = ("constant", "cosine")


def _half_the_steps(config: Any) -> int:
    return int(config.steps) // 2


def _cores_up_to_four(config: Any) -> int:
    """More loader processes than cores only compete with the training step (and torch warns)."""
    return min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


# --------------------------------------------------------------------------- the kinds


@dataclass(frozen=True)
class RunConfig:
    """What every training run has; each kind below adds its own options."""

    trainer: ClassVar[Callable[[], Callable[..., Any]]]
    """Imports and returns the kind's trainer class (torch), when a run starts."""

    family: str
    arch: str = ""
    """The generator's ``imgan.archs`` name; set by the family (an option of SR runs only)."""
    crop: int = option(128, help="Side of the high-resolution training crops.", panel=DATA, summary="crop {}")
    batch_size: int = option(16, help="Crops per micro-batch and process.", panel=DATA, at_least=1,
                             summary="batch {}")
    accum: int = option(1, help="Micro-batches per step (gradient accumulation).", panel=DATA, at_least=1)
    workers: int | None = option(None, help="DataLoader worker processes (0: load in the main process).",
                                 panel=DATA, resume=True, at_least=0,
                                 derived=("the CPU cores, at most 4", _cores_up_to_four))
    features: int = option(64, help="Feature channels of the generator and discriminator (CycleGAN's ngf and "
                           "ndf).", panel=MODEL, fixed=True, at_least=1, summary="{} features")
    steps: int = option(400_000, help="Total optimisation steps, pretraining included.", panel=OPTIMISATION,
                        resume=True, at_least=1, summary="{} steps")
    lr: float = option(1e-4, help="Generator learning rate.", panel=OPTIMISATION)
    lr_d: float = option(0.0, help="Discriminator learning rate (0: the same as --lr).", panel=OPTIMISATION,
                         at_least=0)
    optimizer: str = option("adam", help="adam or adamw.", panel=OPTIMISATION, choices=OPTIMIZERS)
    betas: tuple[float, ...] = option((0.9, 0.99), help="Adam betas, such as 0.9,0.99.", panel=OPTIMISATION)
    weight_decay: float = option(0.0, help="Weight decay.", panel=OPTIMISATION, at_least=0)
    ema: float = option(0.999, help="Decay of the generator's moving average (0: off).", panel=OPTIMISATION)
    ema_warmup: bool = option(True, help="Warm the moving average up: decay min(--ema, (1+t)/(10+t)) at step t, "
                              "so that short runs export trained weights.", panel=OPTIMISATION, legacy=False)
    gan_weight: float = option(0.0, help="Weight of the adversarial loss.", panel=LOSSES, at_least=0)
    out: str = option("", help="Run directory (default: runs/<family>-x<scale>).", panel=RUN)
    val_every: int = option(5000, help="Validate every N steps (0: never).", panel=RUN, resume=True, at_least=0)
    sample_every: int = option(5000, help="Write a sample grid every N steps (0: never).", panel=RUN, resume=True,
                               at_least=0)
    save_every: int = option(5000, help="Save a checkpoint every N steps (and at the end).", panel=RUN,
                             resume=True, at_least=0)
    log_every: int = option(100, help="Log the losses every N steps.", panel=RUN, resume=True, at_least=1)
    seed: int = option(0, help="Seed of the weights and of the data stream.", panel=RUN, at_least=0)
    device: str = option("auto", help="auto, cpu, cuda or mps (several GPUs: torchrun).", panel=RUNTIME,
                         resume=True)
    precision: str = option("auto", help="auto (fp16 mixed precision on CUDA, fp32 on CPU), fp32, fp16 or bf16.",
                            panel=RUNTIME, resume=True, choices=PRECISION_CHOICES)

    @property
    def run_name(self) -> str:
        """The folder under runs/ when no --out is given."""
        return self.family

    def check(self) -> None:
        """UsageError naming the first option whose value cannot work."""
        family = FAMILIES[self.family]
        self._check_inputs(family)
        defaults = family.defaults
        for item in fields(self):
            if item.name != "family" and not family.takes(item.name) and \
                    getattr(self, item.name) != getattr(defaults, item.name):
                raise UsageError(f"{item.name} = {getattr(self, item.name)!r}: {family.name} has no "
                                 f"{flag(item.name)} option; leave it out of the config file")
        for item, rules in options_of(type(self)):
            value = getattr(self, item.name)
            if rules.choices and value not in rules.choices:
                raise self._bad(item.name, f"use one of {', '.join(rules.choices)}")
            if rules.at_least is not None and (not math.isfinite(value) or value < rules.at_least):
                raise self._bad(item.name, "must be 0 or more" if rules.at_least == 0
                                else f"must be at least {rules.at_least}")
        if not math.isfinite(self.lr) or self.lr <= 0:
            raise self._bad("lr", "must be a finite number above 0")
        if len(self.betas) != 2 or not all(0.0 <= beta < 1.0 for beta in self.betas):
            raise self._bad("betas", "give two numbers in [0, 1), such as 0.9,0.99")
        if not 0.0 <= self.ema < 1.0:
            raise self._bad("ema", "must be in [0, 1): 0 turns the EMA off, 0.999 is usual")

    def _check_inputs(self, family: Family) -> None:
        """Every folder the family takes is given (kinds with alternatives say otherwise)."""
        for name, holds in family.inputs:
            if not getattr(self, name):
                raise UsageError(f"{flag(name)} is required: a folder of {holds}")

    def _bad(self, name: str, problem: str) -> UsageError:
        return UsageError(f"{flag(name)} {getattr(self, name)!r}: {problem}")


def _sr_trainer() -> Callable[..., Any]:
    from imgan.train.sr import SRTrainer

    return SRTrainer


@dataclass(frozen=True)
class SRConfig(RunConfig):
    """Super-resolution: srresnet, srgan, esrgan and realesrgan (``imgan.train.sr.SRTrainer``)."""

    trainer: ClassVar[Callable[[], Callable[..., Any]]] = staticmethod(_sr_trainer)

    data: str = option("", help="Folder of training images (searched recursively).", panel=DATA, folder=True)
    val: str = option("", help="Folder of validation images (default: the first 4 training images).", panel=DATA)
    degradation: str = option("bicubic", help="How LR inputs are made: bicubic, realesrgan or light.", panel=DATA,
                              choices=DEGRADATIONS)
    max_side: int = option(0, help="Shrink training images larger than this on load (0: never).", panel=DATA,
                           at_least=0)
    arch: str = option("rrdbnet", help="Generator: rrdbnet, srvgg or srresnet.", panel=MODEL, fixed=True)
    blocks: int = option(23, help="Residual blocks (rrdbnet, srresnet) or body convolutions (srvgg).", panel=MODEL,
                         fixed=True, at_least=1, summary="{} blocks")
    scale: int = option(4, help="Upscaling factor: 2, 3 or 4 (rrdbnet: 2 or 4).", panel=MODEL, fixed=True,
                        summary="x{}")
    schedule: str = option("constant", help="Learning-rate schedule: constant, cosine or step.", panel=OPTIMISATION,
                           choices=SCHEDULES)
    warmup_steps: int = option(0, help="Steps of linear learning-rate warmup.", panel=OPTIMISATION, at_least=0)
    milestones: tuple[int, ...] = option((), help="Steps where the step schedule multiplies the rate by --gamma, "
                                         "such as 50000,100000.", panel=OPTIMISATION)
    gamma: float = option(0.5, help="Factor of the step schedule.", panel=OPTIMISATION)
    pretrain_steps: int = option(0, help="Steps with the pixel loss alone before the GAN phase.",
                                 panel=OPTIMISATION, at_least=0)
    pixel_loss: str = option("l1", help="l1, l2 (mse) or charbonnier.", panel=LOSSES, choices=PIXEL_LOSSES)
    pixel_weight: float = option(1.0, help="Weight of the pixel loss (in the GAN phase).", panel=LOSSES, at_least=0)
    perceptual: float = option(0.0, help="Weight of the VGG19 perceptual loss; 0 never loads VGG (offline).",
                               panel=LOSSES, at_least=0)
    val_every: int = option(5000, help="Validate (PSNR/SSIM) every N steps (0: never).", panel=RUN, resume=True,
                            at_least=0)

    @property
    def run_name(self) -> str:
        return f"{self.family}-x{self.scale}"

    def check(self) -> None:
        super().check()
        if any(m < 1 for m in self.milestones) or list(self.milestones) != sorted(set(self.milestones)):
            raise self._bad("milestones", "give increasing step numbers, such as 50000,100000")
        if not 0.0 < self.gamma <= 1.0:
            raise self._bad("gamma", "must be above 0 and at most 1")
        from imgan.archs import ARCHS  # torch; the architectures declare the scales they train

        scales = {name: arch.train_scales for name, arch in ARCHS.items() if arch.train_scales}
        if self.arch not in scales:
            raise self._bad("arch", f"use one of {', '.join(scales)}")
        if self.scale not in scales[self.arch]:
            others = [arch for arch, supported in scales.items() if self.scale in supported]
            raise self._bad("scale", f"{self.arch} supports x{' and x'.join(map(str, scales[self.arch]))}"
                            + (f"; use --arch {' or '.join(others)}" if others else ""))
        # RRDBNet x2 folds 2x2 pixels into channels, so its LR crops must be even.
        multiple = self.scale * (2 if self.arch == "rrdbnet" and self.scale == 2 else 1)
        if self.crop < 16 or self.crop % multiple:
            raise self._bad("crop", f"must be at least 16 and a multiple of {multiple} (x{self.scale} {self.arch})")
        discriminator = FAMILIES[self.family].discriminator
        if discriminator == "vgg" and self.crop % (64 if self.crop >= 256 else 32):
            raise self._bad("crop", f"the VGG-style discriminator of {self.family} needs a multiple of 32 "
                            "(of 64 from 256 on), such as 96 or 128")
        if discriminator == "unet" and self.crop % 8:
            raise self._bad("crop", "the U-Net discriminator needs a multiple of 8")
        if self.max_side and self.max_side < self.crop:
            raise self._bad("max_side", f"must be 0 or at least --crop ({self.crop})")


@dataclass(frozen=True)
class _TranslationConfig(RunConfig):
    """What both image-to-image translation kinds add: resizing and the linear decay of the rate."""

    crop: int = option(256, help="Side of the training crops.", panel=DATA, summary="crop {}")
    out: str = option("", help="Run directory (default: runs/<family>).", panel=RUN)
    load_size: int = option(286, help="Resize images to this square size before cropping (CycleGAN's "
                            "--load_size).", panel=DATA, at_least=0, summary="load {}")
    decay_steps: int | None = option(None, help="Last steps, over which the learning rate falls linearly towards 0 "
                                     "(CycleGAN's n_epochs_decay, in steps).", panel=OPTIMISATION, at_least=0,
                                     derived=("half of --steps", _half_the_steps))

    def check(self) -> None:
        super().check()
        if self.crop < 32:
            raise self._bad("crop", "must be at least 32 (the PatchGAN discriminator shrinks it 8 times)")
        if self.load_size < self.crop:
            raise self._bad("load_size", f"must be at least --crop ({self.crop}): images are resized to it, "
                            "then cropped")
        if self.decay_steps is not None and self.decay_steps > self.steps:
            raise self._bad("decay_steps", f"must be at most --steps ({self.steps}); upstream decays over the "
                            f"second half: --decay-steps {self.steps // 2}")


def _unpaired_trainer() -> Callable[..., Any]:
    from imgan.train.translation import UnpairedTrainer

    return UnpairedTrainer


@dataclass(frozen=True)
class UnpairedConfig(_TranslationConfig):
    """Unpaired translation: cyclegan and aging (``imgan.train.translation.UnpairedTrainer``)."""

    trainer: ClassVar[Callable[[], Callable[..., Any]]] = staticmethod(_unpaired_trainer)

    data_a: str = option("", help="Folder of domain A images (the exported generator translates A into B).",
                         panel=DATA, folder=True)
    data_b: str = option("", help="Folder of domain B images.", panel=DATA, folder=True)
    data_young: str = option("", help="Folder of young faces (the exported generator ages them).", panel=DATA,
                             folder=True)
    data_old: str = option("", help="Folder of old faces.", panel=DATA, folder=True)
    crop: int = option(256, help="Side of the training crops.", panel=DATA, fixed=True,  # the image pools hold crops
                       summary="crop {}")
    blocks: int = option(9, help="Residual blocks of the ResNet generators (CycleGAN's resnet_9blocks: 9).",
                         panel=MODEL, fixed=True, at_least=1, summary="{} blocks")
    lambda_cycle: float = option(10.0, help="Weight of each cycle-consistency L1 loss (CycleGAN's lambda_A and "
                                 "lambda_B).", panel=LOSSES, at_least=0)
    lambda_identity: float = option(0.5, help="Identity L1 weight as a fraction of --lambda-cycle (0: no identity "
                                    "loss).", panel=LOSSES, at_least=0)
    pool_size: int = option(50, help="Generated images kept per direction to show the discriminators (0: none).",
                            panel=LOSSES, fixed=True, at_least=0)
    val_every: int = option(5000, help="Validate (cycle L1) every N steps (0: never).", panel=RUN, resume=True,
                            at_least=0)

    def check(self) -> None:
        super().check()
        if self.crop % 4:
            raise self._bad("crop", f"must be a multiple of 4 (the {self.arch} generator halves it twice)")


def _paired_trainer() -> Callable[..., Any]:
    from imgan.train.translation import Pix2PixTrainer

    return Pix2PixTrainer


@dataclass(frozen=True)
class PairedConfig(_TranslationConfig):
    """Paired translation: pix2pix (``imgan.train.translation.Pix2PixTrainer``)."""

    trainer: ClassVar[Callable[[], Callable[..., Any]]] = staticmethod(_paired_trainer)

    data: str = option("", help="Folder of side-by-side A|B images (pix2pix's aligned datasets).", panel=DATA,
                       folder=True)
    data_a: str = option("", help="Folder of input images, paired by file name with those of --data-b.",
                         panel=DATA, folder=True)
    data_b: str = option("", help="Folder of target images, named like those of --data-a.", panel=DATA,
                         folder=True)
    edges_from: str = option("", help="Folder of photos: learn each photo from its sketch (made once by "
                             "imgan.edges).", panel=DATA, folder=True)
    direction: str = option("AtoB", help="AtoB: translate the first image of each pair into the second; BtoA: the "
                            "reverse.", panel=DATA, choices=DIRECTIONS)
    val: str = option("", help="Held-out pairs laid out like the training data; for --data-a/--data-b, in "
                      "subfolders A and B (default: the first 4 training pairs).", panel=DATA)
    downs: int = option(8, help="Downsamplings of the U-Net (upstream unet_256: 8, unet_128: 7); crops must be "
                        "multiples of 2**downs.", panel=MODEL, fixed=True, at_least=1, summary="{} downsamplings")
    pixel_loss: str = option("l1", help="l1, l2 (mse) or charbonnier.", panel=LOSSES, choices=PIXEL_LOSSES)
    pixel_weight: float = option(1.0, help="Weight of the pixel loss (pix2pix's lambda_L1).", panel=LOSSES,
                                 at_least=0)
    val_every: int = option(5000, help="Validate (L1, PSNR) every N steps (0: never).", panel=RUN, resume=True,
                            at_least=0)

    def _check_inputs(self, family: Family) -> None:
        """One source of pairs: side by side, two folders by name, or photos and their sketches."""
        for name, partner in (("data_a", "data_b"), ("data_b", "data_a")):
            if getattr(self, name) and not getattr(self, partner):
                raise UsageError(f"{flag(partner)} is required with {flag(name)}: pix2pix pairs the images of the "
                                 "two folders by file name")
        sources = [name for name in ("data", "data_a", "edges_from") if getattr(self, name)]
        if len(sources) != 1:
            raise UsageError(("give one source of training pairs, not " + " and ".join(map(flag, sources)) + ": "
                              if sources else "training pairs are required: ")
                             + "--data DIR (side-by-side A|B images), --data-a DIR --data-b DIR (pairs by file "
                             "name) or --edges-from DIR (photos; A is their sketch)")

    def check(self) -> None:
        super().check()
        if self.downs < 5:
            raise self._bad("downs", "must be at least 5")
        if self.crop % 2**self.downs:
            raise self._bad("crop", f"must be a multiple of {2**self.downs} (the U-Net halves it --downs "
                            f"{self.downs} times); use a multiple or lower --downs")


def _inpaint_trainer() -> Callable[..., Any]:
    from imgan.train.inpaint import InpaintTrainer

    return InpaintTrainer


@dataclass(frozen=True)
class InpaintConfig(RunConfig):
    """Inpainting: an FFC generator against an SN-PatchGAN critic (``imgan.train.inpaint.InpaintTrainer``)."""

    trainer: ClassVar[Callable[[], Callable[..., Any]]] = staticmethod(_inpaint_trainer)

    data: str = option("", help="Folder of training photos (searched recursively).", panel=DATA, folder=True)
    val: str = option("", help="Folder of held-out photos, scored in the hole with seeded masks (default: the "
                      "first 4 training photos).", panel=DATA)
    max_side: int = option(0, help="Shrink training images larger than this on load (0: never).", panel=DATA,
                           at_least=0)
    masks: str = option("mixed", help="Training holes: mixed (free-form strokes and boxes), strokes or boxes.",
                        panel=DATA, choices=INPAINT_MASKS)
    hole_min: float = option(0.05, help="Smallest share of a crop a training hole covers.", panel=DATA,
                             at_least=0.001)
    hole_max: float = option(0.25, help="Largest share of a crop a training hole covers.", panel=DATA,
                             at_least=0.001)
    blocks: int = option(6, help="FFC residual blocks of the generator.", panel=MODEL, fixed=True, at_least=1,
                         summary="{} FFC blocks")
    schedule: str = option("constant", help="Learning-rate schedule: constant or cosine.", panel=OPTIMISATION,
                           choices=INPAINT_SCHEDULES)
    warmup_steps: int = option(0, help="Steps of linear learning-rate warmup.", panel=OPTIMISATION, at_least=0)
    gan: str = option("hinge", help="Adversarial loss: hinge (SN-PatchGAN, as DeepFill v2) or wgan-gp (a "
                      "Wasserstein critic without spectral norm, and a gradient penalty).", panel=LOSSES,
                      fixed=True, choices=INPAINT_GANS)
    lambda_gp: float = option(10.0, help="Weight of the gradient penalty (wgan-gp).", panel=LOSSES, at_least=0)
    pixel_loss: str = option("l1", help="l1, l2 (mse; what PSNR measures) or charbonnier, in and outside the hole.",
                             panel=LOSSES, choices=PIXEL_LOSSES)
    hole_weight: float = option(1.0, help="Weight of the pixel loss inside the hole.", panel=LOSSES, at_least=0)
    valid_weight: float = option(0.1, help="Weight of the pixel loss of the raw prediction outside the hole (the "
                                 "output keeps the input there).", panel=LOSSES, at_least=0)
    perceptual: float = option(0.0, help="Weight of the VGG19 perceptual loss; 0 never loads VGG (offline).",
                               panel=LOSSES, at_least=0)
    val_every: int = option(5000, help="Validate (PSNR and SSIM in the hole) every N steps (0: never).",
                            panel=RUN, resume=True, at_least=0)

    def check(self) -> None:
        super().check()
        if self.crop < 64 or self.crop % 4:
            raise self._bad("crop", "must be a multiple of 4 and at least 64 (the critic halves it 6 times)")
        if not self.hole_min <= self.hole_max < 1:
            raise self._bad("hole_max", f"must be at least --hole-min ({self.hole_min}) and below 1")
        if self.max_side and self.max_side < self.crop:
            raise self._bad("max_side", f"must be 0 or at least --crop ({self.crop})")


DFGAN_GANS = ("hinge", "wgan-gp")


def _contrastive_weight(config: Any) -> float:
    """On when the condition encoder trains (a given DAMSM encoder has no image encoder here)."""
    return 0.0 if getattr(config, "text_encoder", "") else 1.0


def _encoder_steps(config: Any) -> int:
    return 0 if getattr(config, "text_encoder", "") else 1000


@dataclass(frozen=True)
class _DFGANConfig(RunConfig):
    """What text2img and gan share: DF-GAN's generator and critic at one image size."""

    size: int = option(256, help="Side of the generated images, a power of two from 32 to 256 (training images "
                       "are resized to it).", panel=DATA, fixed=True, summary="{} px")
    flip: bool = option(True, help="Random horizontal flips of the training images (leave them off for digits "
                        "and letters).", panel=DATA)
    noise_dim: int = option(100, help="Length of the noise vector.", panel=MODEL, fixed=True, at_least=1)
    gan: str = option("hinge", help="hinge: DF-GAN's hinge loss with its matching-aware gradient penalty (MA-GP); "
                      "wgan-gp: the Wasserstein loss with WGAN-GP's penalty.", panel=LOSSES, choices=DFGAN_GANS)
    lambda_gp: float = option(2.0, help="Weight of the gradient penalty (DF-GAN's MA-GP: 2; WGAN-GP: 10).",
                              panel=LOSSES, at_least=0)
    gp_every: int = option(1, help="Apply the gradient penalty every N steps, weighted by N (lazy regularisation; "
                           "DF-GAN: every step).", panel=LOSSES, at_least=1)
    encoder_steps: int | None = option(None, help="First steps, in which the caption (or class) encoder learns "
                                       "alone, contrastively against a small image encoder on the real pairs; it is "
                                       "frozen for the GAN steps that follow (DF-GAN freezes its pretrained DAMSM "
                                       "encoder). Give it enough: imgan's digits default told captions apart by their "
                                       "colours alone after 500 steps, by their classes too after 10,000.",
                                       panel=OPTIMISATION, fixed=True, at_least=0,
                                       derived=("1000 with a trained encoder, 0 with --text-encoder", _encoder_steps))
    contrastive: float | None = option(None, help="Weight of the contrastive loss of the generated images against "
                                       "their captions, judged by the image encoder of --encoder-steps (AttnGAN's "
                                       "DAMSM loss, sentence level).", panel=LOSSES, at_least=0,
                                       derived=("1 with a trained encoder, 0 with --text-encoder", _contrastive_weight))

    def check(self) -> None:
        super().check()
        if self.size not in (32, 64, 128, 256):
            raise self._bad("size", "use 32, 64, 128 or 256 (DF-GAN's generator doubles a 4x4 start)")


def _text2img_trainer() -> Callable[..., Any]:
    from imgan.train.text2img import Text2ImgTrainer

    return Text2ImgTrainer


@dataclass(frozen=True)
class Text2ImgConfig(_DFGANConfig):
    """Text to image: DF-GAN on captioned images (``imgan.train.text2img.Text2ImgTrainer``)."""

    trainer: ClassVar[Callable[[], Callable[..., Any]]] = staticmethod(_text2img_trainer)

    data: str = option("", help="Folder of training images, each with its captions beside it (IMAGE.txt, one "
                       "a line).", panel=DATA, folder=True)
    captions: str = option("", help="A file of file<TAB>caption lines (files relative to --data), instead of the "
                           "IMAGE.txt files.", panel=DATA)
    max_words: int = option(18, help="Words of a caption the text encoder reads (DF-GAN: 18).", panel=DATA,
                            fixed=True, at_least=1)
    text_encoder: str = option("", help="A DAMSM text encoder (.pth) to use frozen, as DF-GAN does; default: train "
                               "imgan's caption encoder with the critic.", panel=MODEL, fixed=True)
    vocabulary: str = option("", help="The vocabulary of --text-encoder: captions_DAMSM.pickle (read without "
                             "running code) or JSON.", panel=MODEL, fixed=True)
    cond_dim: int = option(256, help="Length of the caption embedding of imgan's encoder (a DAMSM encoder has "
                           "its own).", panel=MODEL, fixed=True, at_least=2)
    embedding_dim: int = option(300, help="Length of the word embeddings of imgan's encoder.", panel=MODEL,
                                fixed=True, at_least=1)

    def check(self) -> None:
        super().check()
        if self.cond_dim % 2:
            raise self._bad("cond_dim", "must be even (the encoder reads captions in both directions)")
        if bool(self.text_encoder) != bool(self.vocabulary):
            raise UsageError("--text-encoder and --vocabulary go together: a DAMSM encoder reads word indices of "
                             "its own vocabulary")


def _gan_trainer() -> Callable[..., Any]:
    from imgan.train.text2img import GanTrainer

    return GanTrainer


@dataclass(frozen=True)
class GanConfig(_DFGANConfig):
    """Image GANs, unconditional or on class folders (``imgan.train.text2img.GanTrainer``)."""

    trainer: ClassVar[Callable[[], Callable[..., Any]]] = staticmethod(_gan_trainer)

    data: str = option("", help="Folder of training images, or one subfolder of them per class (the model then "
                       "draws the class a caption names).", panel=DATA, folder=True)
    cond_dim: int = option(128, help="Length of the learnt class vectors.", panel=MODEL, fixed=True, at_least=1)


KINDS: tuple[type[RunConfig], ...] = (SRConfig, UnpairedConfig, PairedConfig, InpaintConfig, Text2ImgConfig,
                                      GanConfig)
"""Every trainer kind; a family's defaults are an instance of one."""


# --------------------------------------------------------------------------- the families


@dataclass(frozen=True)
class Family:
    """A training recipe: which losses and discriminator, and the defaults its paper used."""

    name: str
    summary: str
    discriminator: str
    """none, vgg (VGG-style, fixed input size), unet (U-Net with spectral norm), the 70x70
    PatchGAN with instance norm (patch-instance) or batch norm (patch-batch), or DeepFill v2's
    SN-PatchGAN on image and mask (sn-patch)."""
    adversarial: str
    """none, vanilla, lsgan (least squares), relativistic (relativistic average GAN), or the kind's
    own --gan option (option)."""
    perceptual_layers: tuple[tuple[str, float], ...]
    """VGG19 layers and weights of the perceptual loss."""
    defaults: RunConfig
    """An instance of the family's kind (its class), holding the family's defaults."""
    inputs: tuple[tuple[str, str], ...] = (("data", "training images"),)
    """The folder options the family's command takes, and what each holds; all required unless the
    kind's check allows alternatives (pix2pix)."""
    init_gain: float = 0.0
    """Standard deviation of the normal weight init of every network; 0: PyTorch's default init."""
    hides: tuple[str, ...] = ()
    """Options of the kind's base that mean nothing to this family: its command leaves them out."""

    @property
    def kind(self) -> type[RunConfig]:
        return type(self.defaults)

    def takes(self, name: str) -> bool:
        """Whether the family's command has the option ``name``."""
        item = next((item for item in fields(self.kind) if item.name == name), None)
        rules = option_of(item) if item is not None else None
        return rules is not None and (not rules.folder or name in dict(self.inputs)) and name not in self.hides

    def options(self) -> list[tuple[Field, Option]]:
        """The options of the family's command, in the order of ``PANELS`` (folders first in theirs)."""
        declared = [(item, rules) for item, rules in options_of(self.kind) if self.takes(item.name)]
        order = {item.name: index for index, (item, _) in enumerate(declared)}
        return sorted(declared, key=lambda pair: (PANELS.index(pair[1].panel), not pair[1].folder,
                                                  order[pair[0].name]))


# junyanz/pytorch-CycleGAN-and-pix2pix (options/base_options.py, options/train_options.py): Adam
# lr 2e-4, beta1 0.5, batch 1, resize to 286 then random 256 crop and flip, constant lr for
# n_epochs = 100 then linear decay over n_epochs_decay = 100 (the second half), normal(0, 0.02)
# init, no EMA.
_PIX2PIX_CYCLEGAN: dict[str, Any] = {"lr": 2e-4, "betas": (0.5, 0.999), "batch_size": 1, "load_size": 286,
                                     "crop": 256, "ema": 0.0, "gan_weight": 1.0}

FAMILIES: dict[str, Family] = {
    family.name: family
    for family in (
        # Ledig et al. 2017 (arXiv:1609.04802): SRResNet, MSE, 96 px crops, batch 16, lr 1e-4, 1e6 updates.
        Family(
            name="srresnet",
            summary="SRResNet trained with a pixel loss only (PSNR-oriented).",
            discriminator="none",
            adversarial="none",
            perceptual_layers=(("conv5_4", 1.0),),
            defaults=SRConfig(family="srresnet", arch="srresnet", blocks=16, steps=1_000_000, crop=96,
                              pixel_loss="mse"),
        ),
        # SRGAN: initialised from SRResNet, then VGG54 content loss + 1e-3 adversarial,
        # 1e5 updates at lr 1e-4 and 1e5 at 1e-5.
        Family(
            name="srgan",
            summary="SRGAN: pixel-loss pretraining, then VGG perceptual + vanilla GAN (VGG-style D).",
            discriminator="vgg",
            adversarial="vanilla",
            perceptual_layers=(("conv5_4", 1.0),),
            defaults=SRConfig(family="srgan", arch="srresnet", blocks=16, steps=300_000, pretrain_steps=100_000,
                              schedule="step", milestones=(200_000,), gamma=0.1, crop=96, pixel_loss="mse",
                              pixel_weight=1e-2, perceptual=1.0, gan_weight=1e-3),
        ),
        # Wang et al. 2018 (arXiv:1809.00219): RRDBNet, RaGAN, L1 1e-2, perceptual 1, GAN 5e-3,
        # lr 1e-4 halved at 50k/100k/200k/300k of 400k, 128 px crops, batch 16.
        Family(
            name="esrgan",
            summary="ESRGAN: RRDBNet, relativistic average GAN (VGG-style D), perceptual + pixel.",
            discriminator="vgg",
            adversarial="relativistic",
            perceptual_layers=(("conv5_4", 1.0),),
            defaults=SRConfig(family="esrgan", schedule="step", milestones=(50_000, 100_000, 200_000, 300_000),
                              pixel_weight=1e-2, perceptual=1.0, gan_weight=5e-3),
        ),
        # Wang et al. 2021 (arXiv:2107.10833): second-order degradations, U-Net SN D, L1 1,
        # perceptual 1 (conv1_2 .. conv5_4), GAN 0.1, 256 px crops, lr 1e-4, EMA 0.999, 400k steps.
        Family(
            name="realesrgan",
            summary="Real-ESRGAN: synthetic real-world degradations, U-Net SN discriminator.",
            discriminator="unet",
            adversarial="vanilla",
            perceptual_layers=(("conv1_2", 0.1), ("conv2_2", 0.1), ("conv3_4", 1.0), ("conv4_4", 1.0),
                               ("conv5_4", 1.0)),
            defaults=SRConfig(family="realesrgan", crop=256, batch_size=12, perceptual=1.0, gan_weight=0.1,
                              degradation="realesrgan"),
        ),
        # Zhu et al. 2017 (arXiv:1703.10593), upstream models/cycle_gan_model.py: resnet_9blocks G,
        # 70x70 PatchGAN D (instance norm), LSGAN, cycle lambda 10, identity 0.5 x lambda, image
        # pool of 50. 100 + 100 epochs of about 1000 images (horse2zebra) at batch 1 ~ 200k steps.
        Family(
            name="cyclegan",
            summary="CycleGAN: unpaired translation A -> B with cycle and identity losses (ResNet G, PatchGAN D).",
            discriminator="patch-instance",
            adversarial="lsgan",
            perceptual_layers=(),
            defaults=UnpairedConfig(family="cyclegan", **_PIX2PIX_CYCLEGAN, arch="cyclegan", blocks=9,
                                    steps=200_000, lambda_cycle=10.0, lambda_identity=0.5, pool_size=50),
            inputs=(("data_a", "domain A images"), ("data_b", "domain B images")),
            init_gain=0.02,
        ),
        # Isola et al. 2017 (arXiv:1611.07004), upstream models/pix2pix_model.py: unet_256 G (batch
        # norm, dropout), conditional 70x70 PatchGAN on A|B (batch norm), vanilla GAN + 100 x L1, no
        # image pool. 100 + 100 epochs of the 400 facades pairs at batch 1 = 80k steps.
        Family(
            name="pix2pix",
            summary="pix2pix: paired translation A -> B (U-Net G, conditional PatchGAN D, GAN + 100 x L1).",
            discriminator="patch-batch",
            adversarial="vanilla",
            perceptual_layers=(),
            defaults=PairedConfig(family="pix2pix", **_PIX2PIX_CYCLEGAN, arch="pix2pix", downs=8, steps=80_000,
                                  pixel_loss="l1", pixel_weight=100.0),
            inputs=(("data", "side-by-side A|B images"), ("data_a", "input images"), ("data_b", "target images"),
                    ("edges_from", "photos")),  # one source of pairs: see PairedConfig._check_inputs
            init_gain=0.02,
        ),
        # HasnainRaz/Fast-AgingGAN (configs/aging_gan.yaml, gan_module.py): CycleGAN with a BatchNorm
        # ResNet G (ngf 32, 9 blocks), ndf 32, LSGAN weight 2, cycle 10, identity 7 (= 0.7 x 10), Adam
        # lr 1e-4 betas (0.5, 0.999) weight decay 1e-4, batch 3, resize to 256 + 50 then crop 256 and
        # flip, constant lr, no image pool, PyTorch's default init. Upstream trains 100 epochs of its
        # CACD split; 100k steps is our choice. Left out: its random rotation (0-80 degrees), and its
        # discriminator (batch then instance norm, logits averaged) is the instance-norm PatchGAN here.
        Family(
            name="aging",
            summary="Fast-AgingGAN: unpaired young -> old faces (CycleGAN recipe, BatchNorm ResNet G).",
            discriminator="patch-instance",
            adversarial="lsgan",
            perceptual_layers=(),
            defaults=UnpairedConfig(family="aging", arch="aginggan", blocks=9, features=32, steps=100_000,
                                    decay_steps=0, batch_size=3, load_size=306, crop=256, lr=1e-4,
                                    betas=(0.5, 0.999), weight_decay=1e-4, ema=0.0, gan_weight=2.0,
                                    lambda_cycle=10.0, lambda_identity=0.7, pool_size=0),
            inputs=(("data_young", "young faces"), ("data_old", "old faces")),
        ),
        # imgan's own recipe. The generator is a small LaMa-style FFC network (Suvorov et al. 2022,
        # arXiv:2109.07161: Adam, lr 1e-3 for G and 1e-4 for D, 256 px crops); the critic DeepFill
        # v2's SN-PatchGAN with the hinge loss (Yu et al. 2019, arXiv:1806.03589), or a WGAN-GP critic
        # (Gulrajani et al. 2017) as in the WGAN inpainting study imgan grew from; losses L1 in the hole,
        # a light L1 on the raw prediction outside it, and a small adversarial weight, so the fill stays
        # close to the photo (imgan's eval scores PSNR and SSIM in the hole).
        Family(
            name="inpaint",
            summary="Inpainting: a small FFC generator (LaMa's Fourier convolutions), SN-PatchGAN critic, "
                    "masked L1 + hinge or WGAN-GP.",
            discriminator="sn-patch",
            adversarial="option",
            perceptual_layers=(("conv1_2", 0.1), ("conv2_2", 0.1), ("conv3_4", 1.0), ("conv4_4", 1.0),
                               ("conv5_4", 1.0)),
            defaults=InpaintConfig(family="inpaint", arch="inpaint_ffc", features=32, blocks=6, crop=256,
                                   batch_size=8, steps=100_000, lr=1e-3, lr_d=1e-4, betas=(0.9, 0.999),
                                   gan_weight=0.01),
            inputs=(("data", "training photos"),),
        ),
        # Tao et al. 2022 (arXiv:2008.05865), tobran/DF-GAN (cfg/bird.yml, src/train.py): NetG and NetD
        # with nf 32, noise 100, 256-d sentence embeddings, 256 px, batch 32, Adam lr 1e-4 (G) and 4e-4
        # (D) with betas (0, 0.9), hinge loss with mismatched pairs, MA-GP weight 2 and power 6, random
        # flips. Ours: the EMA, and a caption encoder trained with the critic unless --text-encoder
        # gives a DAMSM one (DF-GAN's is pretrained and frozen).
        Family(
            name="text2img",
            summary="DF-GAN: text to image with a one-stage generator fused with the caption at every scale, a "
                    "matching-aware hinge loss and MA-GP.",
            discriminator="dfgan",
            adversarial="option",
            perceptual_layers=(),
            defaults=Text2ImgConfig(family="text2img", arch="dfgan", features=32, size=256, batch_size=32,
                                    steps=100_000, lr=1e-4, lr_d=4e-4, betas=(0.0, 0.9), val_every=0),
            inputs=(("data", "captioned images"),),
            hides=("crop", "gan_weight", "val_every"),
        ),
        # The digit GAN imgan grew from: DCGAN-sized, conditional on class folders, trained as WGAN-GP
        # (Gulrajani et al. 2017: Adam lr 1e-4, betas (0, 0.9), lambda 10; we take one critic step per
        # generator step, not five), with DF-GAN's generator and critic so its export runs in text2img.
        Family(
            name="gan",
            summary="An image GAN, unconditional or on class folders (the class names become its words), with "
                    "DF-GAN's networks; WGAN-GP or hinge.",
            discriminator="dfgan",
            adversarial="option",
            perceptual_layers=(),
            defaults=GanConfig(family="gan", arch="dfgan", features=32, size=32, batch_size=64, steps=20_000,
                               gan="wgan-gp", lambda_gp=10.0, lr=1e-4, lr_d=1e-4, betas=(0.0, 0.9), flip=False,
                               val_every=0),
            inputs=(("data", "images (or one subfolder of them per class)"),),
            hides=("crop", "gan_weight", "val_every"),
        ),
    )
}


def defaults_for(family: str) -> RunConfig:
    """The published defaults of a training family."""
    try:
        return FAMILIES[family].defaults
    except KeyError:
        raise UsageError(f"unknown training family {family!r}; use one of {', '.join(FAMILIES)}") from None


# --------------------------------------------------------------------------- reading


def _field_types(kind: type[RunConfig]) -> dict[str, Any]:
    hints = typing.get_type_hints(kind)
    return {item.name: hints[item.name] for item in fields(kind)}


_TYPES: dict[str, Any] = {name: hint for kind in KINDS for name, hint in _field_types(kind).items()}
"""Every key a config file may hold, over all kinds (a key means the same in each kind that has it)."""


def load_config(path: str | Path) -> dict[str, Any]:
    """The options of a TOML file, checked for unknown keys and value types (not yet merged)."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{path}: no such config file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read the config file ({exc})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: not valid TOML ({exc})") from exc
    unknown = sorted(set(data) - set(_TYPES))
    if unknown:
        raise UsageError(f"{path}: unknown key(s) {', '.join(unknown)}; known keys: {', '.join(_TYPES)}")
    return {key: _coerce(key, value, _TYPES[key], source=str(path)) for key, value in data.items()}


def _coerce(key: str, value: Any, kind: Any, *, source: str) -> Any:
    """``value`` as the field's type, or a UsageError naming the key and where it came from."""
    def wrong(expected: str) -> UsageError:
        return UsageError(f"{source}: {key} must be {expected}, not {value!r}")

    if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:  # X | None
        kind = next(arg for arg in typing.get_args(kind) if arg is not type(None))
    if kind is str:
        if not isinstance(value, str):
            raise wrong("a string")
        return value
    if kind is bool:
        if not isinstance(value, bool):
            raise wrong("true or false")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise wrong("a whole number")
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise wrong("a number")
        return float(value)
    item = typing.get_args(kind)[0]
    if isinstance(value, str):  # from the command line: "0.9,0.99"
        parts = [part.strip() for part in value.split(",") if part.strip()]
        try:
            value = [item(part) for part in parts]
        except ValueError:
            raise wrong(f"a comma-separated list of {'whole numbers' if item is int else 'numbers'}") from None
    if not isinstance(value, (list, tuple)):
        raise wrong("a list")
    return tuple(_coerce(key, element, item, source=source) for element in value)


def resolve(
    defaults: RunConfig,
    file: Mapping[str, Any],
    overrides: Mapping[str, Any],
) -> RunConfig:
    """Defaults, then the file's options, then the overrides that are not None; derived values; checked.

    ``overrides`` are the command-line flags (None where a flag was not given). A file that names
    another family is read as that family's options.
    """
    family = file.get("family", defaults.family)
    if family != defaults.family:
        defaults = defaults_for(family)
    types_ = _field_types(type(defaults))
    values: dict[str, Any] = {}
    for source, mapping in (("config file", file), ("command line", overrides)):
        for key, value in mapping.items():
            if key not in types_:
                if source == "config file" and key in _TYPES:
                    raise UsageError(f"{key} = {value!r}: {family} has no {flag(key)} option; leave it out of "
                                     "the config file")
                raise UsageError(f"{source}: unknown option {key!r}")
            if value is not None:
                values[key] = _coerce(key, value, types_[key], source=flag(key))
    config = replace(defaults, **values)
    derived = {item.name: rules.derived[1](config) for item, rules in options_of(type(config))
               if rules.derived is not None and getattr(config, item.name) is None}
    config = replace(config, **derived)
    config.check()
    return config


# --------------------------------------------------------------------------- writing


def config_dict(config: RunConfig) -> dict[str, Any]:
    """The options as plain values (tuples as lists), for checkpoints and TOML."""
    return {f.name: list(v) if isinstance(v := getattr(config, f.name), tuple) else v for f in fields(config)}


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)  # floats as Python writes them (1e-05, inf) are valid TOML
    if isinstance(value, str):
        escaped = "".join(
            {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r"}.get(char)
            or (f"\\u{ord(char):04x}" if ord(char) < 0x20 or ord(char) == 0x7F else char)
            for char in value
        )
        return f'"{escaped}"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def save_config(config: RunConfig, path: str | Path) -> None:
    """Write every option of the run's kind as flat TOML, atomically."""
    lines = [f"# imgan train {config.family}: resolved options of this run", ""]
    lines += [f"{key} = {_toml_value(value)}" for key, value in config_dict(config).items()]
    write_atomically(Path(path), ("\n".join(lines) + "\n").encode("utf-8"))


# --------------------------------------------------------------------------- runs


def _saved_options(run_dir: Path) -> dict[str, Any]:
    """A run directory's config.toml, as this version reads it.

    Earlier versions wrote every option of every kind; the keys the run's kind does not have
    were held at the family's defaults and never used, so they are left out. Keys the file
    lacks (options added since) take their ``Option.legacy`` value, so the run goes on as it began.
    """
    saved_path = run_dir / "config.toml"
    if not saved_path.is_file():
        what = "no such folder" if not run_dir.exists() else "no config.toml in it"
        raise UsageError(f"--resume {run_dir}: {what}; give the run directory imgan train wrote")
    saved = load_config(saved_path)
    kind = type(defaults_for(saved.get("family", "")))
    names = {item.name for item in fields(kind)}
    legacy = {item.name: rules.legacy for item, rules in options_of(kind)
              if rules.legacy is not _UNSET and item.name not in saved}
    return {**{key: value for key, value in saved.items() if key in names}, **legacy}


def prepare_run(
    family: str | None,
    *,
    config_file: str | None,
    resume: str | None,
    overrides: Mapping[str, Any],
) -> RunConfig:
    """The resolved options of a new run (its folder must be new or empty) or of one to resume.

    ``family`` is the command's family (None for ``imgan train --resume``); ``overrides`` are the
    command-line flags, None where not given.
    """
    if resume is None:
        if family is None:
            raise UsageError(f"name what to train (imgan train {{{','.join(FAMILIES)}}} ...) "
                             "or continue a run with --resume RUN_DIR")
        file = load_config(config_file) if config_file else {}
        if file.get("family", family) != family:
            raise UsageError(f"{config_file}: family = {file['family']!r}, but this command trains {family}")
        config = resolve(defaults_for(family), file, overrides)
        if not config.out:
            config = replace(config, out=str(Path("runs") / config.run_name))
        run_dir = Path(config.out)
        if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
            raise UsageError(f"--out {run_dir}: exists and is not empty; continue that run with "
                             f"--resume {run_dir}, or choose another --out")
        return config

    run_dir = Path(resume)
    if config_file:
        raise UsageError("--config with --resume: a resumed run reads its own config.toml; leave out --config")
    saved = _saved_options(run_dir)
    saved_family = saved["family"]
    if family is not None and saved_family != family:
        raise UsageError(f"--resume {run_dir}: that run trains {saved_family}, not {family}; "
                         f"use imgan train --resume {run_dir}")
    if overrides.get("out") is not None and Path(overrides["out"]) != run_dir:
        raise UsageError("--out with --resume: a resumed run stays in its own folder")
    defaults = defaults_for(saved_family)
    fixed = [item.name for item, rules in options_of(type(defaults)) if rules.fixed
             and overrides.get(item.name) is not None and overrides[item.name] != saved.get(item.name)]
    if fixed:
        raise UsageError(f"{flag(fixed[0])} cannot change when resuming: the checkpoint's networks "
                         "have their shape; start a new run with another --out")
    return resolve(defaults, saved, {**overrides, "out": str(run_dir)})
