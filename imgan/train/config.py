"""Training options: one frozen dataclass, per-family defaults, TOML in and out.

Precedence, lowest first: the family's defaults, the ``--config`` TOML file (or the run
directory's ``config.toml`` on ``--resume``), then the command-line flags that were given.
Every run writes its resolved options to ``RUN_DIR/config.toml``; reading that file back
gives the same ``TrainConfig``.

The file is flat: ``key = value`` per option, keys named like the fields below (``batch_size``
for ``--batch-size``). Lists hold numbers (``betas = [0.9, 0.99]``). Nothing here imports torch.
"""

from __future__ import annotations

import math
import sys
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from imgan.errors import UsageError
from imgan.train.checkpoint import write_atomically

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = [
    "ARCH_SCALES",
    "FAMILIES",
    "KINDS",
    "Family",
    "Kind",
    "TrainConfig",
    "config_dict",
    "defaults_for",
    "load_config",
    "prepare_run",
    "resolve",
    "save_config",
]

ARCH_SCALES: dict[str, tuple[int, ...]] = {"rrdbnet": (2, 4), "srvgg": (2, 3, 4), "srresnet": (2, 3, 4)}
"""Generator architectures an SR run can train, and the scales each supports."""
OPTIMIZERS = ("adam", "adamw")
SCHEDULES = ("constant", "cosine", "step")
PIXEL_LOSSES = ("l1", "l2", "mse", "charbonnier")
DEGRADATIONS = ("bicubic", "realesrgan", "light")
PRECISION_CHOICES = ("auto", "fp32", "fp16", "bf16")
DIRECTIONS = ("AtoB", "BtoA")


@dataclass(frozen=True)
class TrainConfig:
    """Every option of a training run (flat values only, so it round-trips through TOML).

    A family uses the options its ``Family.options`` names; the others keep its defaults.
    """

    family: str
    data: str = ""
    """Folder of training images (searched recursively); pix2pix: side-by-side A|B images."""
    data_a: str = ""
    """Folder of domain A images (cyclegan); pix2pix: inputs, paired with data_b by file name."""
    data_b: str = ""
    data_young: str = ""
    """Folder of young faces (aging: the exported generator turns young into old)."""
    data_old: str = ""
    edges_from: str = ""
    """Folder of photos; pix2pix learns photo from sketch_from_photo(photo)."""
    direction: str = "AtoB"
    """pix2pix: AtoB translates the first image of each pair into the second; BtoA the reverse."""
    val: str = ""
    """Folder of validation images; empty: the first few training images (or pairs)."""
    out: str = ""
    """Run directory; empty: runs/<family>-x<scale> (SR) or runs/<family>."""
    arch: str = "rrdbnet"
    blocks: int = 23
    """num_blocks of rrdbnet/srresnet and of the cyclegan/aginggan ResNet generators, num_conv of srvgg."""
    downs: int = 8
    """num_downs of the pix2pix U-Net (upstream unet_256: 8, unet_128: 7)."""
    features: int = 64
    scale: int = 4
    steps: int = 400_000
    """Total optimisation steps, pretraining included."""
    decay_steps: int = 0
    """Translation: the last steps, over which the learning rate falls linearly towards 0."""
    batch_size: int = 16
    """Images per micro-batch and per process."""
    load_size: int = 286
    """Translation: images are resized to load_size x load_size before the random crop."""
    crop: int = 128
    """Side of the (high-resolution) training crops."""
    lr: float = 1e-4
    lr_d: float = 0.0
    """Discriminator learning rate; 0: the same as lr."""
    optimizer: str = "adam"
    betas: tuple[float, ...] = (0.9, 0.99)
    weight_decay: float = 0.0
    schedule: str = "constant"
    warmup_steps: int = 0
    milestones: tuple[int, ...] = ()
    """Steps at which the step schedule multiplies the learning rate by gamma."""
    gamma: float = 0.5
    ema: float = 0.999
    """Decay of the generator's exponential moving average; 0: no EMA."""
    accum: int = 1
    """Micro-batches per optimisation step (gradient accumulation)."""
    pixel_loss: str = "l1"
    pixel_weight: float = 1.0
    perceptual: float = 0.0
    """Weight of the VGG19 perceptual loss; 0 never loads VGG (works offline)."""
    gan_weight: float = 0.0
    lambda_cycle: float = 10.0
    """Weight of each cycle-consistency L1 loss (CycleGAN's lambda_A = lambda_B)."""
    lambda_identity: float = 0.5
    """Identity L1 weight as a fraction of lambda_cycle (CycleGAN's lambda_identity)."""
    pool_size: int = 50
    """Generated images kept per direction for the discriminators (CycleGAN's image pool); 0: none."""
    pretrain_steps: int = 0
    """Steps trained with the pixel loss alone before the adversarial phase."""
    degradation: str = "bicubic"
    val_every: int = 5000
    sample_every: int = 5000
    save_every: int = 5000
    log_every: int = 100
    seed: int = 0
    workers: int = 4
    device: str = "auto"
    precision: str = "auto"
    """auto: fp16 autocast with loss scaling on CUDA, fp32 on CPU; fp32, fp16 or bf16."""
    max_side: int = 0
    """Shrink training images whose longer side exceeds this on load; 0: keep them as they are."""


@dataclass(frozen=True)
class Kind:
    """What the families one trainer class trains have in common."""

    name: str
    trainer: str
    """``module:Class`` of the trainer, imported when a run starts (so this module needs no torch)."""
    options: tuple[str, ...]
    """Options that apply besides the family's input folders; the others keep the family's defaults."""
    fixed: tuple[str, ...]
    """Options that decide the shapes of checkpointed networks and buffers, fixed for the life of a run."""


_RUN_OPTIONS = ("steps", "batch_size", "accum", "workers", "features", "crop", "lr", "lr_d", "optimizer", "betas",
                "weight_decay", "ema", "gan_weight", "out", "val_every", "sample_every", "save_every", "log_every",
                "seed", "device", "precision")
"""Options every family takes."""
_TRANSLATION_OPTIONS = (*_RUN_OPTIONS, "load_size", "decay_steps")

KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in (
        Kind(name="sr", trainer="imgan.train.sr:SRTrainer",
             options=(*_RUN_OPTIONS, "val", "degradation", "max_side", "arch", "blocks", "scale", "schedule",
                      "warmup_steps", "milestones", "gamma", "pretrain_steps", "pixel_loss", "pixel_weight",
                      "perceptual"),
             fixed=("arch", "blocks", "features", "scale")),
        Kind(name="unpaired", trainer="imgan.train.translation:UnpairedTrainer",
             options=(*_TRANSLATION_OPTIONS, "blocks", "lambda_cycle", "lambda_identity", "pool_size"),
             fixed=("blocks", "features", "crop", "pool_size")),  # the image pools hold crops
        Kind(name="paired", trainer="imgan.train.translation:Pix2PixTrainer",
             options=(*_TRANSLATION_OPTIONS, "data", "data_a", "data_b", "edges_from", "direction", "val", "downs",
                      "pixel_loss", "pixel_weight"),
             fixed=("downs", "features")),
    )
}


@dataclass(frozen=True)
class Family:
    """A training recipe: which losses and discriminator, and the defaults its paper used."""

    name: str
    summary: str
    discriminator: str
    """none, vgg (VGG-style, fixed input size), unet (U-Net with spectral norm), or the 70x70
    PatchGAN with instance norm (patch-instance) or batch norm (patch-batch)."""
    adversarial: str
    """none, vanilla, lsgan (least squares) or relativistic (relativistic average GAN)."""
    perceptual_layers: tuple[tuple[str, float], ...]
    """VGG19 layers and weights of the perceptual loss."""
    defaults: TrainConfig
    kind: Kind = KINDS["sr"]
    inputs: tuple[tuple[str, str], ...] = (("data", "training images"),)
    """The folder options a run requires, and what each holds (unpaired: domain A, then domain B)."""
    init_gain: float = 0.0
    """Standard deviation of the normal weight init of every network; 0: PyTorch's default init."""

    @property
    def options(self) -> tuple[str, ...]:
        """The options that apply to this family (its command's flags)."""
        return (*(name for name, _ in self.inputs), *self.kind.options)


_BASE = TrainConfig(family="")

# junyanz/pytorch-CycleGAN-and-pix2pix (options/base_options.py, options/train_options.py): Adam
# lr 2e-4, beta1 0.5, batch 1, resize to 286 then random 256 crop and flip, constant lr for
# n_epochs = 100 then linear decay over n_epochs_decay = 100, normal(0, 0.02) init, no EMA.
_PIX2PIX_CYCLEGAN = replace(_BASE, lr=2e-4, betas=(0.5, 0.999), batch_size=1, load_size=286, crop=256, ema=0.0,
                            gan_weight=1.0)

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
            defaults=replace(_BASE, family="srresnet", arch="srresnet", blocks=16, steps=1_000_000,
                             crop=96, pixel_loss="mse"),
        ),
        # SRGAN: initialised from SRResNet, then VGG54 content loss + 1e-3 adversarial,
        # 1e5 updates at lr 1e-4 and 1e5 at 1e-5.
        Family(
            name="srgan",
            summary="SRGAN: pixel-loss pretraining, then VGG perceptual + vanilla GAN (VGG-style D).",
            discriminator="vgg",
            adversarial="vanilla",
            perceptual_layers=(("conv5_4", 1.0),),
            defaults=replace(_BASE, family="srgan", arch="srresnet", blocks=16, steps=300_000,
                             pretrain_steps=100_000, schedule="step", milestones=(200_000,), gamma=0.1,
                             crop=96, pixel_loss="mse", pixel_weight=1e-2, perceptual=1.0, gan_weight=1e-3),
        ),
        # Wang et al. 2018 (arXiv:1809.00219): RRDBNet, RaGAN, L1 1e-2, perceptual 1, GAN 5e-3,
        # lr 1e-4 halved at 50k/100k/200k/300k of 400k, 128 px crops, batch 16.
        Family(
            name="esrgan",
            summary="ESRGAN: RRDBNet, relativistic average GAN (VGG-style D), perceptual + pixel.",
            discriminator="vgg",
            adversarial="relativistic",
            perceptual_layers=(("conv5_4", 1.0),),
            defaults=replace(_BASE, family="esrgan", schedule="step",
                             milestones=(50_000, 100_000, 200_000, 300_000), pixel_weight=1e-2,
                             perceptual=1.0, gan_weight=5e-3),
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
            defaults=replace(_BASE, family="realesrgan", crop=256, batch_size=12, perceptual=1.0,
                             gan_weight=0.1, degradation="realesrgan"),
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
            defaults=replace(_PIX2PIX_CYCLEGAN, family="cyclegan", arch="cyclegan", blocks=9, steps=200_000,
                             decay_steps=100_000, lambda_cycle=10.0, lambda_identity=0.5, pool_size=50),
            kind=KINDS["unpaired"],
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
            defaults=replace(_PIX2PIX_CYCLEGAN, family="pix2pix", arch="pix2pix", downs=8, steps=80_000,
                             decay_steps=40_000, pixel_loss="l1", pixel_weight=100.0, pool_size=0),
            kind=KINDS["paired"],
            inputs=(),  # --data, --data-a with --data-b, or --edges-from: see _check_paired
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
            defaults=replace(_BASE, family="aging", arch="aginggan", blocks=9, features=32, steps=100_000,
                             batch_size=3, load_size=306, crop=256, lr=1e-4, betas=(0.5, 0.999), weight_decay=1e-4,
                             ema=0.0, gan_weight=2.0, lambda_cycle=10.0, lambda_identity=0.7, pool_size=0),
            kind=KINDS["unpaired"],
            inputs=(("data_young", "young faces"), ("data_old", "old faces")),
        ),
    )
}


def defaults_for(family: str) -> TrainConfig:
    """The published defaults of a training family."""
    try:
        return FAMILIES[family].defaults
    except KeyError:
        raise UsageError(f"unknown training family {family!r}; use one of {', '.join(FAMILIES)}") from None


# --------------------------------------------------------------------------- reading


def _field_types() -> dict[str, Any]:
    return typing.get_type_hints(TrainConfig)


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
    types = _field_types()
    unknown = sorted(set(data) - set(types))
    if unknown:
        raise UsageError(
            f"{path}: unknown key(s) {', '.join(unknown)}; known keys: {', '.join(types)}"
        )
    return {key: _coerce(key, value, types[key], source=str(path)) for key, value in data.items()}


def _coerce(key: str, value: Any, kind: Any, *, source: str) -> Any:
    """``value`` as the field's type, or a UsageError naming the key and where it came from."""
    def wrong(expected: str) -> UsageError:
        return UsageError(f"{source}: {key} must be {expected}, not {value!r}")

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
    defaults: TrainConfig,
    file: Mapping[str, Any],
    overrides: Mapping[str, Any],
) -> TrainConfig:
    """Defaults, then the file's options, then the overrides that are not None; checked.

    ``overrides`` are the command-line flags (None where a flag was not given).
    """
    types = _field_types()
    values: dict[str, Any] = {}
    for source, mapping in (("config file", file), ("command line", overrides)):
        for key, value in mapping.items():
            if key not in types:
                raise UsageError(f"{source}: unknown option {key!r}")
            if value is not None:
                values[key] = _coerce(key, value, types[key], source=f"--{key.replace('_', '-')}")
    config = replace(defaults, **values)
    check(config)
    return config


def _flag(option: str) -> str:
    return f"--{option.replace('_', '-')}"


def _bad(config: TrainConfig, option: str, problem: str) -> UsageError:
    return UsageError(f"{_flag(option)} {getattr(config, option)!r}: {problem}")


def _choice(config: TrainConfig, option: str, choices: tuple[str, ...]) -> None:
    if getattr(config, option) not in choices:
        raise _bad(config, option, f"use one of {', '.join(choices)}")


def check(config: TrainConfig) -> None:
    """UsageError naming the first option whose value cannot work."""
    if config.family not in FAMILIES:
        raise _bad(config, "family", f"use one of {', '.join(FAMILIES)}")
    family = FAMILIES[config.family]
    for option, holds in family.inputs:
        if not getattr(config, option):
            raise UsageError(f"{_flag(option)} is required: a folder of {holds}")
    applies = {"family", *family.options}
    for option in (f.name for f in fields(config) if f.name not in applies):
        if getattr(config, option) != getattr(family.defaults, option):
            raise UsageError(f"{option} = {getattr(config, option)!r}: {family.name} has no {_flag(option)} option; "
                             "leave it out of the config file")
    for option in ("blocks", "downs", "features", "steps", "batch_size", "accum", "log_every"):
        if getattr(config, option) < 1:
            raise _bad(config, option, "must be at least 1")
    for option in ("warmup_steps", "pretrain_steps", "val_every", "sample_every", "save_every", "workers",
                   "max_side", "seed", "load_size", "decay_steps", "pool_size"):
        if getattr(config, option) < 0:
            raise _bad(config, option, "must be 0 or more")
    _KIND_CHECKS[family.kind.name](config)
    for option in ("lr", "lr_d", "weight_decay", "pixel_weight", "perceptual", "gan_weight", "lambda_cycle",
                   "lambda_identity"):
        value = getattr(config, option)
        if not math.isfinite(value) or value < 0 or (option == "lr" and value == 0):
            raise _bad(config, option, "must be a finite number above 0" if option == "lr" else "must be 0 or more")
    _choice(config, "optimizer", OPTIMIZERS)
    if len(config.betas) != 2 or not all(0.0 <= beta < 1.0 for beta in config.betas):
        raise _bad(config, "betas", "give two numbers in [0, 1), such as 0.9,0.99")
    _choice(config, "schedule", SCHEDULES)
    if any(m < 1 for m in config.milestones) or list(config.milestones) != sorted(set(config.milestones)):
        raise _bad(config, "milestones", "give increasing step numbers, such as 50000,100000")
    if not 0.0 < config.gamma <= 1.0:
        raise _bad(config, "gamma", "must be above 0 and at most 1")
    if not 0.0 <= config.ema < 1.0:
        raise _bad(config, "ema", "must be in [0, 1): 0 turns the EMA off, 0.999 is usual")
    _choice(config, "pixel_loss", PIXEL_LOSSES)
    _choice(config, "degradation", DEGRADATIONS)
    _choice(config, "direction", DIRECTIONS)
    _choice(config, "precision", PRECISION_CHOICES)


def _check_sr(config: TrainConfig) -> None:
    """Architecture, scale and crop of a super-resolution run."""
    _choice(config, "arch", tuple(ARCH_SCALES))
    if config.scale not in ARCH_SCALES[config.arch]:
        others = [arch for arch, scales in ARCH_SCALES.items() if config.scale in scales]
        raise _bad(config, "scale", f"{config.arch} supports x{' and x'.join(map(str, ARCH_SCALES[config.arch]))}"
                   + (f"; use --arch {' or '.join(others)}" if others else ""))
    # RRDBNet x2 folds 2x2 pixels into channels, so its LR crops must be even.
    multiple = config.scale * (2 if config.arch == "rrdbnet" and config.scale == 2 else 1)
    if config.crop < 16 or config.crop % multiple:
        raise _bad(config, "crop", f"must be at least 16 and a multiple of {multiple} (x{config.scale} {config.arch})")
    discriminator = FAMILIES[config.family].discriminator
    if discriminator == "vgg" and config.crop % (64 if config.crop >= 256 else 32):
        raise _bad(config, "crop", f"the VGG-style discriminator of {config.family} needs a multiple of 32 "
                   "(of 64 from 256 on), such as 96 or 128")
    if discriminator == "unet" and config.crop % 8:
        raise _bad(config, "crop", "the U-Net discriminator needs a multiple of 8")
    if config.max_side and config.max_side < config.crop:
        raise _bad(config, "max_side", f"must be 0 or at least --crop ({config.crop})")


def _check_translation(config: TrainConfig) -> None:
    """Resize, crop and schedule of an image-to-image translation run."""
    if config.crop < 32:
        raise _bad(config, "crop", "must be at least 32 (the PatchGAN discriminator shrinks it 8 times)")
    if config.load_size < config.crop:
        raise _bad(config, "load_size", f"must be at least --crop ({config.crop}): images are resized to it, "
                   "then cropped")
    if config.decay_steps > config.steps:
        raise _bad(config, "decay_steps", f"must be at most --steps ({config.steps}); upstream decays over the "
                   f"second half: --decay-steps {config.steps // 2}")


def _check_unpaired(config: TrainConfig) -> None:
    """cyclegan and aging: ResNet generators halve the crop twice."""
    _check_translation(config)
    if config.crop % 4:
        raise _bad(config, "crop", f"must be a multiple of 4 (the {config.arch} generator halves it twice)")


def _check_paired(config: TrainConfig) -> None:
    """pix2pix: one source of pairs, and crops the U-Net can halve ``downs`` times."""
    for option, partner in (("data_a", "data_b"), ("data_b", "data_a")):
        if getattr(config, option) and not getattr(config, partner):
            raise UsageError(f"{_flag(partner)} is required with {_flag(option)}: pix2pix pairs the images of the "
                             "two folders by file name")
    sources = [option for option in ("data", "data_a", "edges_from") if getattr(config, option)]
    if len(sources) != 1:
        raise UsageError(("give one source of training pairs, not " + " and ".join(map(_flag, sources)) + ": "
                          if sources else "training pairs are required: ")
                         + "--data DIR (side-by-side A|B images), --data-a DIR --data-b DIR (pairs by file name) "
                         "or --edges-from DIR (photos; A is their sketch)")
    if config.downs < 5:
        raise _bad(config, "downs", "must be at least 5")
    _check_translation(config)
    if config.crop % 2**config.downs:
        raise _bad(config, "crop", f"must be a multiple of {2**config.downs} (the U-Net halves it --downs "
                   f"{config.downs} times); use a multiple or lower --downs")


_KIND_CHECKS: dict[str, Callable[[TrainConfig], None]] = {
    "sr": _check_sr,
    "unpaired": _check_unpaired,
    "paired": _check_paired,
}


# --------------------------------------------------------------------------- writing


def config_dict(config: TrainConfig) -> dict[str, Any]:
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


def save_config(config: TrainConfig, path: str | Path) -> None:
    """Write every option as flat TOML, atomically."""
    lines = [f"# imgan train {config.family}: resolved options of this run", ""]
    lines += [f"{key} = {_toml_value(value)}" for key, value in config_dict(config).items()]
    write_atomically(Path(path), ("\n".join(lines) + "\n").encode("utf-8"))


# --------------------------------------------------------------------------- runs

def prepare_run(
    family: str | None,
    *,
    config_file: str | None,
    resume: str | None,
    overrides: Mapping[str, Any],
) -> TrainConfig:
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
            name = f"{family}-x{config.scale}" if "scale" in FAMILIES[family].options else family
            config = replace(config, out=str(Path("runs") / name))
        run_dir = Path(config.out)
        if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
            raise UsageError(f"--out {run_dir}: exists and is not empty; continue that run with "
                             f"--resume {run_dir}, or choose another --out")
        return config

    run_dir = Path(resume)
    if config_file:
        raise UsageError("--config with --resume: a resumed run reads its own config.toml; leave out --config")
    saved_path = run_dir / "config.toml"
    if not saved_path.is_file():
        what = "no such folder" if not run_dir.exists() else "no config.toml in it"
        raise UsageError(f"--resume {run_dir}: {what}; give the run directory imgan train wrote")
    saved = load_config(saved_path)
    saved_family = saved.get("family", "")
    if family is not None and saved_family != family:
        raise UsageError(f"--resume {run_dir}: that run trains {saved_family}, not {family}; "
                         f"use imgan train --resume {run_dir}")
    if overrides.get("out") is not None and Path(overrides["out"]) != run_dir:
        raise UsageError("--out with --resume: a resumed run stays in its own folder")
    defaults = defaults_for(saved_family)
    fixed = [name for name in FAMILIES[saved_family].kind.fixed
             if overrides.get(name) is not None and overrides[name] != saved.get(name)]
    if fixed:
        raise UsageError(f"--{fixed[0].replace('_', '-')} cannot change when resuming: the checkpoint's networks "
                         "have their shape; start a new run with another --out")
    return resolve(defaults, saved, {**overrides, "out": str(run_dir)})
