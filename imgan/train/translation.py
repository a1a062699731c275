"""The image-to-image translation trainers: cyclegan and aging (unpaired), pix2pix (paired).

Defaults and their sources are in ``imgan.train.config.FAMILIES``. Images are [-1,1] throughout.

Unpaired (``UnpairedTrainer``; Zhu et al. 2017, arXiv:1703.10593, and Fast-AgingGAN, which is the
same recipe with other networks and weights): G: A -> B (exported) and F: B -> A, PatchGAN
discriminators D_B (real B against G(a)) and D_A. The generators, with one Adam over both, minimise
  gan_weight * (GAN(D_B(G(a))) + GAN(D_A(F(b))))
  + lambda_cycle * (|F(G(a)) - a| + |G(F(b)) - b|)
  + lambda_cycle * lambda_identity * (|G(b) - b| + |F(a) - a|);
then the discriminators, with one Adam over both, minimise 0.5 * (GAN(real) + GAN(fake)) each, the
fakes passing through a ``FakeHistory`` (CycleGAN's image pool) first.

Paired (``Pix2PixTrainer``; Isola et al. 2017, arXiv:1611.07004): U-Net G, conditional PatchGAN D
judging input and image concatenated; G minimises gan_weight * GAN(D(a, G(a))) + pixel_weight *
|G(a) - b|, D 0.5 * (GAN(D(a, b)) + GAN(D(a, G(a)))). Upstream updates D before G in a step; here G
goes first and D then judges the same fakes, as in the SR trainer, so each micro-batch runs G once.

Data: every image is resized once, at load, to load_size x load_size (bicubic, antialiased; the
aspect ratio is not kept, as in upstream's resize_and_crop); sample i then takes a random crop and
a horizontal flip with odds 1/2, drawn from ``sample_generator(seed, i)``. The learning rate is
constant, then falls linearly over the last decay_steps steps (``linear_decay``).
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Iterable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from imgan.archs import ARCHS, build_model
from imgan.errors import InputError, ModelError, UsageError
from imgan.train import losses
from imgan.train.config import FAMILIES, PairedConfig, UnpairedConfig
from imgan.train.data import ImagePool, SeededSamples, random_crop_augment, sample_generator, scan_images, some_names
from imgan.train.loop import GeneratorSpec, Runtime, in_eval_mode, samples_needed
from imgan.train.sr import SAMPLE_ROWS, VALIDATION_FALLBACK, LossLog, make_optimizer

__all__ = [
    "FakeHistory",
    "Pix2PixTrainer",
    "TranslationCrops",
    "UnpairedTrainer",
    "init_normal",
    "linear_decay",
    "load_pairs",
    "resize_square",
]

log = logging.getLogger(__name__)

_PATCH_NORMS = {"patch-instance": "instance", "patch-batch": "batch"}
"""Family.discriminator -> the norm of its PatchDiscriminator."""


# --------------------------------------------------------------------------- data


def resize_square(image: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 (C,H,W) -> uint8 (C,size,size), bicubic and antialiased like PIL's BICUBIC resize."""
    if image.shape[-2:] == (size, size):
        return image
    resized = F.interpolate(image.unsqueeze(0).float(), size=(size, size), mode="bicubic", antialias=True,
                            align_corners=False)
    return resized.squeeze(0).round_().clamp_(0, 255).to(torch.uint8)


def _load(paths: Sequence[Path]) -> ImagePool:
    """The images decoded; any size will do (they are resized), but side-by-side ones must split in two."""
    return ImagePool(paths, min_side=2)


def load_images(folder: str | Path, *, size: int) -> list[torch.Tensor]:
    """The images under ``folder`` as uint8 (3,size,size)."""
    pool = _load(scan_images(folder))
    return [resize_square(pool[index], size) for index in range(len(pool))]


def _side_by_side(folder: str | Path, *, size: int) -> list[torch.Tensor]:
    """pix2pix's aligned datasets: each image holds A in its left half and B in its right half."""
    pool = _load(scan_images(folder))
    pairs = []
    for index in range(len(pool)):
        image = pool[index]
        half = image.shape[-1] // 2
        pairs.append(torch.cat([resize_square(image[..., :half], size),
                                resize_square(image[..., half : 2 * half], size)]))
    return pairs


def _by_name(folder: str | Path, flag: str) -> dict[str, Path]:
    """The images under ``folder`` keyed by their path below it without the extension."""
    found: dict[str, Path] = {}
    for path in scan_images(folder):
        key = path.relative_to(folder).with_suffix("").as_posix()
        if key in found:
            raise UsageError(f"{flag} {folder}: {found[key].name} and {path.name} have the same name; pix2pix "
                             "pairs images by name, so keep one")
        found[key] = path
    return found


def _named(folder_a: str | Path, folder_b: str | Path, *, size: int, flags: tuple[str, str]) -> list[torch.Tensor]:
    """Pairs of images with the same name (and subfolder) in two folders."""
    a, b = _by_name(folder_a, flags[0]), _by_name(folder_b, flags[1])
    unmatched = [f"{flags[0]} {name}" for name in sorted(a.keys() - b.keys())]
    unmatched += [f"{flags[1]} {name}" for name in sorted(b.keys() - a.keys())]
    if unmatched:
        raise UsageError(f"{flags[0]} {folder_a} and {flags[1]} {folder_b}: pix2pix pairs images by file name, "
                         f"but {len(unmatched)} have no partner: {some_names(unmatched)}")
    names = sorted(a)
    pool_a, pool_b = _load([a[name] for name in names]), _load([b[name] for name in names])
    index_a = {path: index for index, path in enumerate(pool_a.names)}  # unreadable files were skipped
    index_b = {path: index for index, path in enumerate(pool_b.names)}
    return [torch.cat([resize_square(pool_a[index_a[os.fspath(a[name])]], size),
                       resize_square(pool_b[index_b[os.fspath(b[name])]], size)])
            for name in names if os.fspath(a[name]) in index_a and os.fspath(b[name]) in index_b]


def _edges(folder: str | Path, *, size: int) -> list[torch.Tensor]:
    """Pairs of (sketch, photo) for the photos under ``folder``, sketched once here."""
    from imgan.edges import sketch_from_photo

    pairs = []
    for photo in load_images(folder, size=size):
        sketch = sketch_from_photo(photo.unsqueeze(0).float().div(255))[0]
        pairs.append(torch.cat([sketch.mul(255).round_().clamp_(0, 255).to(torch.uint8), photo]))
    log.info("sketched %d photos", len(pairs))
    return pairs


def load_pairs(config: PairedConfig, *, size: int, val: bool = False) -> list[torch.Tensor]:
    """The run's pairs as uint8 (6,size,size), input then target (after --direction).

    From --data, --data-a/--data-b or --edges-from; with ``val``, from the --val folder laid out
    the same way (subfolders A and B for pairs by name).
    """
    folder = config.val if val else ""
    if config.edges_from:
        pairs = _edges(folder or config.edges_from, size=size)
    elif config.data:
        pairs = _side_by_side(folder or config.data, size=size)
    elif folder:
        pairs = _named(Path(folder) / "A", Path(folder) / "B", size=size, flags=("--val A", "--val B"))
    else:
        pairs = _named(config.data_a, config.data_b, size=size, flags=("--data-a", "--data-b"))
    if not pairs:
        raise InputError(f"{folder or config.data or config.data_a}: no pair has both images readable")
    return pairs if config.direction == "AtoB" else [pair[[3, 4, 5, 0, 1, 2]] for pair in pairs]


class TranslationCrops(SeededSamples):
    """Training samples made on the fly: item i = {key: (3,crop,crop) float in [-1,1]}.

    ``groups`` holds (keys, images) where each uint8 image stacks the images of its keys along the
    channels, 3 each: ``(("a",), images_a), (("b",), images_b)`` (unpaired) or ``(("a", "b"), pairs)``
    (paired). For each group in turn, item i draws an image uniformly, a crop and a flip (shared by
    the group's keys) from ``sample_generator(seed, i)``.
    """

    def __init__(self, groups: Sequence[tuple[tuple[str, ...], Sequence[torch.Tensor]]], *, crop: int, length: int,
                 seed: int) -> None:
        self.groups = groups
        self.crop = crop
        self.length = length
        self.seed = seed

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        generator = self.generator(index)
        item: dict[str, torch.Tensor] = {}
        for keys, images in self.groups:
            image = images[int(torch.randint(len(images), (), generator=generator))]
            crop = random_crop_augment(image, size=self.crop, generator=generator, augment=False)
            if torch.rand((), generator=generator) < 0.5:
                crop = crop.flip(-1)
            item.update(zip(keys, crop.mul(2).sub_(1).split(3), strict=True))
        return item


# --------------------------------------------------------------------------- training pieces


class FakeHistory(nn.Module):
    """CycleGAN's image pool: the discriminator sees this step's fakes mixed with older ones.

    Each fake in turn is stored and passed on while fewer than ``size`` are stored; after that,
    with odds 1/2 it is passed on, else it replaces a stored fake chosen uniformly, which is passed
    on instead (upstream util/image_pool.py). The stored images, their count and the state of the
    random generator are buffers, so checkpoints hold them and a resumed run makes the same choices.
    ``size`` 0 passes every fake on.
    """

    def __init__(self, size: int, shape: Sequence[int], *, generator: torch.Generator) -> None:
        super().__init__()
        self.size = size
        self.register_buffer("images", torch.zeros(size, *shape))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))
        self.register_buffer("rng", generator.get_state())

    def forward(self, fakes: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return fakes
        generator = torch.Generator()
        generator.set_state(self.rng.cpu())
        count, shown = int(self.count), []
        for fake in fakes.detach().to(self.images.dtype):
            if count < self.size:
                self.images[count].copy_(fake)
                count += 1
                shown.append(fake)
            elif torch.rand((), generator=generator) < 0.5:
                shown.append(fake)
            else:
                index = int(torch.randint(self.size, (), generator=generator))
                shown.append(self.images[index].clone())
                self.images[index].copy_(fake)
        self.count.fill_(count)
        self.rng.copy_(generator.get_state())
        return torch.stack(shown)


def linear_decay(step: int, *, steps: int, decay_steps: int) -> float:
    """Learning-rate factor during ``step``: 1, then linearly down over the last ``decay_steps`` steps.

    CycleGAN's "linear" policy, 1 - max(0, epoch + 1 - n_epochs) / (n_epochs_decay + 1), counted in
    steps: the last step runs at 1 / (decay_steps + 1).
    """
    return 1.0 - max(0, step + 1 - (steps - decay_steps)) / (decay_steps + 1)


def init_normal(module: nn.Module, gain: float) -> None:
    """CycleGAN's init_weights("normal"): conv and linear weights ~ N(0, gain), batch-norm scales
    ~ N(1, gain), biases 0."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(layer.weight, 0.0, gain)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, nn.BatchNorm2d):
            nn.init.normal_(layer.weight, 1.0, gain)
            nn.init.zeros_(layer.bias)


def _signed(image: torch.Tensor) -> torch.Tensor:
    """uint8 -> float in [-1,1]."""
    return image.float().div(127.5).sub(1)


def _unit(image: torch.Tensor) -> torch.Tensor:
    """[-1,1] -> [0,1], on the CPU, clamped."""
    return image.detach().float().cpu().clamp(-1, 1).add(1).div(2)


class _TranslationTrainer:
    """What both translation trainers share: networks, optimizers and schedules, export, the loss forms."""

    _dataset: Dataset
    """Set by the subclass."""

    def __init__(self, config: UnpairedConfig | PairedConfig, runtime: Runtime) -> None:
        self.config = config
        self.runtime = runtime
        self.family = FAMILIES[config.family]
        self.length = samples_needed(config, runtime.context.world_size)
        self._modules: dict[str, nn.Module] = {}
        self._optimizers: dict[str, torch.optim.Optimizer] = {}
        self._schedulers: dict[str, torch.optim.lr_scheduler.LRScheduler] = {}

    def generator_params(self) -> dict[str, Any]:
        """Constructor keywords of the generators."""
        raise NotImplementedError

    def _add(self, name: str, module: nn.Module) -> nn.Module:
        """``module`` on the device, initialised as the family says, checkpointed as ``name``."""
        if self.family.init_gain:
            init_normal(module, self.family.init_gain)
        self._modules[name] = module.to(self.runtime.device)
        return self._modules[name]

    def _generator(self, name: str) -> nn.Module:
        try:
            return self._add(name, build_model(self.config.arch, self.generator_params()))
        except ModelError as exc:
            raise UsageError(str(exc)) from exc

    def _discriminator(self, name: str, *, in_channels: int) -> nn.Module:
        from imgan.archs.discriminators import PatchDiscriminator

        norm = _PATCH_NORMS[self.family.discriminator]
        return self._add(name, PatchDiscriminator(in_channels=in_channels, num_features=self.config.features,
                                                  norm=norm))

    def _optimizer(self, name: str, parameters: Iterable[nn.Parameter], lr: float) -> torch.optim.Optimizer:
        """Adam (or AdamW) with the linear-decay schedule, checkpointed as ``name``."""
        optimizer = make_optimizer(self.config, parameters, lr)
        factor = partial(linear_decay, steps=self.config.steps, decay_steps=self.config.decay_steps)
        self._optimizers[name] = optimizer
        self._schedulers[name] = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return optimizer

    def _fool(self, logits: torch.Tensor) -> torch.Tensor:
        """The generator's adversarial loss: ``logits`` of its fakes judged real."""
        return losses.gan_loss(logits, real=True, kind=self.family.adversarial, for_discriminator=False)

    def _judge(self, discriminator: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """The discriminator's loss, halved as upstream does to slow it down relative to the generator."""
        kind = self.family.adversarial
        return 0.5 * (losses.gan_loss(discriminator(real), real=True, kind=kind)
                      + losses.gan_loss(discriminator(fake), real=False, kind=kind))

    def _translate(self, module: nn.Module, image: torch.Tensor) -> torch.Tensor:
        """(3,h,w) or (1,3,h,w) [-1,1] -> (1,3,h,w) [-1,1] on the device."""
        return module(image.reshape(1, *image.shape[-3:]).to(self.runtime.device))

    # ----------------------------------------------------------------- protocol

    def modules(self) -> dict[str, nn.Module]:
        return dict(self._modules)

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return dict(self._optimizers)

    def schedulers(self) -> dict[str, torch.optim.lr_scheduler.LRScheduler]:
        return dict(self._schedulers)

    def dataset(self) -> Dataset:
        return self._dataset

    def export_generator(self) -> GeneratorSpec:
        arch = ARCHS[self.config.arch]
        return GeneratorSpec(module=self._modules["generator"], name="generator", arch=arch.name,
                             params=self.generator_params(), task=arch.task, scale=1, value_range=arch.value_range)


class UnpairedTrainer(_TranslationTrainer):
    """cyclegan and aging: two ResNet generators and two PatchGANs (see the module docstring).

    The family's inputs name the folders of domains A and B; G: A -> B is exported.
    """

    config: UnpairedConfig

    def __init__(self, config: UnpairedConfig, runtime: Runtime) -> None:
        super().__init__(config, runtime)
        (option_a, _), (option_b, _) = self.family.inputs
        images_a = load_images(getattr(config, option_a), size=config.load_size)
        images_b = load_images(getattr(config, option_b), size=config.load_size)
        self._dataset = TranslationCrops([(("a",), images_a), (("b",), images_b)], crop=config.crop,
                                         length=self.length, seed=config.seed)
        self.eval_a = [_signed(resize_square(image, config.crop)) for image in images_a[:VALIDATION_FALLBACK]]
        self.eval_b = [_signed(resize_square(image, config.crop)) for image in images_b[:VALIDATION_FALLBACK]]

        self.generator = self._generator("generator")  # G: A -> B, exported
        self.generator_ba = self._generator("generator_ba")  # F: B -> A
        self.discriminator_a = self._discriminator("discriminator_a", in_channels=3)  # real A against F(b)
        self.discriminator_b = self._discriminator("discriminator_b", in_channels=3)  # real B against G(a)
        shape = (3, config.crop, config.crop)
        # Streams of their own: sample numbers are never negative.
        self.history_a = self._add("history_a", FakeHistory(config.pool_size, shape,
                                                            generator=sample_generator(config.seed, -1)))
        self.history_b = self._add("history_b", FakeHistory(config.pool_size, shape,
                                                            generator=sample_generator(config.seed, -2)))
        self.g_ab, self.g_ba = runtime.wrap(self.generator), runtime.wrap(self.generator_ba)
        self.d_a, self.d_b = runtime.wrap(self.discriminator_a), runtime.wrap(self.discriminator_b)
        self.optimizer_g = self._optimizer(
            "generator", itertools.chain(self.generator.parameters(), self.generator_ba.parameters()), config.lr)
        self.optimizer_d = self._optimizer(
            "discriminator", itertools.chain(self.discriminator_a.parameters(), self.discriminator_b.parameters()),
            config.lr_d or config.lr)

    def generator_params(self) -> dict[str, Any]:
        return {"in_channels": 3, "out_channels": 3, "num_features": self.config.features,
                "num_blocks": self.config.blocks}

    def train_step(self, batch: Sequence[dict[str, torch.Tensor]], step: int) -> dict[str, float]:
        config, run = self.config, self.runtime
        logs = LossLog(micro_batches=len(batch))
        judges = (self.discriminator_a, self.discriminator_b)
        for judge in judges:
            judge.requires_grad_(False)  # they judge, unwrapped: no DDP sync, no gradients
        fakes = []
        for micro in run.micro_batches(batch, self.g_ab, self.g_ba):
            real_a, real_b = micro["a"], micro["b"]
            with run.autocast():
                loss = real_a.new_zeros(())
                if config.lambda_identity > 0:  # first, as Fast-AgingGAN does (the order moves BatchNorm stats)
                    identity = config.lambda_cycle * config.lambda_identity * (
                        F.l1_loss(self.g_ab(real_b), real_b) + F.l1_loss(self.g_ba(real_a), real_a))
                    logs.add("l_idt", identity)
                    loss = loss + identity
                fake_b, fake_a = self.g_ab(real_a), self.g_ba(real_b)
                gan = config.gan_weight * (self._fool(self.discriminator_b(fake_b))
                                           + self._fool(self.discriminator_a(fake_a)))
                cycle = config.lambda_cycle * (F.l1_loss(self.g_ba(fake_b), real_a)
                                               + F.l1_loss(self.g_ab(fake_a), real_b))
                logs.add("l_gan", gan)
                logs.add("l_cycle", cycle)
                loss = loss + gan + cycle
            run.backward(loss)
            fakes.append((fake_a.detach(), fake_b.detach()))
        run.step(self.optimizer_g)

        for judge in judges:
            judge.requires_grad_(True)
        for micro, (fake_a, fake_b) in zip(run.micro_batches(batch, self.d_a, self.d_b), fakes, strict=True):
            shown_a, shown_b = self.history_a(fake_a), self.history_b(fake_b)
            with run.autocast():
                loss = self._judge(self.d_a, micro["a"], shown_a) + self._judge(self.d_b, micro["b"], shown_b)
            logs.add("l_d", loss)
            run.backward(loss)
        run.step(self.optimizer_d)
        return logs.means()

    def _cycles(self, generator: nn.Module, count: int) -> list[tuple[torch.Tensor, ...]]:
        """(x, translated, back) in [0,1] for the first ``count`` images of A (G then F) and of B (F then G)."""
        def run(backward: nn.Module) -> list[tuple[torch.Tensor, ...]]:
            found = []
            for images, there, back in ((self.eval_a, generator, backward), (self.eval_b, backward, generator)):
                for image in images[:count]:
                    translated = self._translate(there, image)
                    found.append((_unit(image).unsqueeze(0), _unit(translated), _unit(back(translated))))
            return found

        return in_eval_mode(run, self.generator_ba)  # F in eval mode too

    def validate(self, generator: nn.Module) -> dict[str, float]:
        """Mean L1 ([0,1] scale) between the first training images of each domain and their round trips."""
        cycles = self._cycles(generator, VALIDATION_FALLBACK)
        return {"cycle_l1": sum(float((back - x).abs().mean()) for x, _, back in cycles) / len(cycles)}

    def samples(self, generator: nn.Module) -> torch.Tensor:
        """Rows of [A | G(A) | F(G(A))], then [B | F(B) | G(F(B))]."""
        return torch.cat([torch.cat(row, dim=-1) for row in self._cycles(generator, SAMPLE_ROWS)], dim=-2)


class Pix2PixTrainer(_TranslationTrainer):
    """pix2pix: a U-Net generator and a conditional PatchGAN (see the module docstring)."""

    config: PairedConfig

    def __init__(self, config: PairedConfig, runtime: Runtime) -> None:
        super().__init__(config, runtime)
        pairs = load_pairs(config, size=config.load_size)
        self._dataset = TranslationCrops([(("a", "b"), pairs)], crop=config.crop, length=self.length,
                                         seed=config.seed)
        if config.val:
            held_out = load_pairs(config, size=config.crop, val=True)
        else:
            held_out = [resize_square(pair, config.crop) for pair in pairs[:VALIDATION_FALLBACK]]
            log.info("no --val folder: validating on %d training pair(s)", len(held_out))
        self.held_out = [_signed(pair) for pair in held_out]

        self.generator = self._generator("generator")
        self.discriminator = self._discriminator("discriminator", in_channels=6)  # judges input | image
        self.g, self.d = runtime.wrap(self.generator), runtime.wrap(self.discriminator)
        self.optimizer_g = self._optimizer("generator", self.generator.parameters(), config.lr)
        self.optimizer_d = self._optimizer("discriminator", self.discriminator.parameters(), config.lr_d or config.lr)

    def generator_params(self) -> dict[str, Any]:
        return {"in_channels": 3, "out_channels": 3, "num_features": self.config.features,
                "num_downs": self.config.downs, "dropout": True}

    def train_step(self, batch: Sequence[dict[str, torch.Tensor]], step: int) -> dict[str, float]:
        config, run = self.config, self.runtime
        logs = LossLog(micro_batches=len(batch))
        self.discriminator.requires_grad_(False)
        fakes = []
        for micro in run.micro_batches(batch, self.g):
            source, target = micro["a"], micro["b"]
            with run.autocast():
                fake = self.g(source)
                gan = config.gan_weight * self._fool(self.discriminator(torch.cat([source, fake], 1)))
                pixel = config.pixel_weight * losses.pixel_loss(fake, target, kind=config.pixel_loss)
            logs.add("l_gan", gan)
            logs.add("l_pix", pixel)
            run.backward(gan + pixel)
            fakes.append(fake.detach())
        run.step(self.optimizer_g)

        self.discriminator.requires_grad_(True)
        for micro, fake in zip(run.micro_batches(batch, self.d), fakes, strict=True):
            source = micro["a"]
            with run.autocast():
                loss = self._judge(self.d, torch.cat([source, micro["b"]], 1), torch.cat([source, fake], 1))
            logs.add("l_d", loss)
            run.backward(loss)
        run.step(self.optimizer_d)
        return logs.means()

    def _outputs(self, generator: nn.Module, count: int) -> list[tuple[torch.Tensor, ...]]:
        """(input, output, target) in [0,1] for the first ``count`` held-out pairs.

        BatchNorm normalises each image by its own statistics, as upstream's test (train-mode
        BatchNorm on one image) does; dropout is off.
        """
        from imgan.archs.pix2pix import set_batchnorm_mode

        set_batchnorm_mode(generator, per_image=True)
        try:
            return [(_unit(pair[:3]).unsqueeze(0), _unit(self._translate(generator, pair[:3])),
                     _unit(pair[3:]).unsqueeze(0)) for pair in self.held_out[:count]]
        finally:
            set_batchnorm_mode(generator, per_image=False)

    def validate(self, generator: nn.Module) -> dict[str, float]:
        """Mean L1 ([0,1] scale) and PSNR of the outputs against the held-out targets."""
        from imgan.metrics import psnr

        outputs = self._outputs(generator, len(self.held_out))
        return {"l1": sum(float((output - target).abs().mean()) for _, output, target in outputs) / len(outputs),
                "psnr": sum(psnr(output, target) for _, output, target in outputs) / len(outputs)}

    def samples(self, generator: nn.Module) -> torch.Tensor:
        """Rows of [input | output | target] for the first held-out pairs."""
        return torch.cat([torch.cat(row, dim=-1) for row in self._outputs(generator, SAMPLE_ROWS)], dim=-2)
