"""The super-resolution trainer behind srresnet, srgan, esrgan and realesrgan.

One class; the family table in ``imgan.train.config`` decides the discriminator (none,
VGG-style, U-Net SN), the adversarial loss (none, vanilla, relativistic average) and the
defaults. A step trains the generator on every micro-batch, then (after ``pretrain_steps``)
the discriminator on the same low-resolution inputs and the generator's detached outputs,
as BasicSR's SRGAN/ESRGAN/Real-ESRGAN models do.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from imgan.archs import ARCHS, build_model
from imgan.errors import ModelError, UsageError
from imgan.train import losses
from imgan.train.config import FAMILIES, SRConfig
from imgan.train.data import ImagePool, SRPairs, SRValidation, scan_images
from imgan.train.degrade import DegradationConfig
from imgan.train.loop import GeneratorSpec, Runtime, samples_needed

__all__ = ["LossLog", "SRTrainer", "generator_params", "lr_factor", "make_optimizer"]

log = logging.getLogger(__name__)

VALIDATION_FALLBACK = 4
"""Training images used for validation when no --val folder is given."""
SAMPLE_ROWS = 3


def generator_params(config: SRConfig) -> dict[str, Any]:
    """Constructor keywords of the generator the options describe, as its architecture declares them."""
    train_params = ARCHS[config.arch].train_params
    if train_params is None:  # SRConfig.check allows only the architectures with training params
        raise UsageError(f"--arch {config.arch}: imgan cannot train it")
    return train_params(features=config.features, blocks=config.blocks, scale=config.scale)


def lr_factor(step: int, *, config: SRConfig) -> float:
    """Learning-rate multiplier after ``step`` steps: linear warmup, then the schedule."""
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    if config.schedule == "cosine":
        span = max(1, config.steps - config.warmup_steps)
        progress = min(1.0, (step - config.warmup_steps) / span)
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    if config.schedule == "step":
        return config.gamma ** sum(step >= milestone for milestone in config.milestones)
    return 1.0


def make_optimizer(config: SRConfig, parameters: Iterable[nn.Parameter], lr: float) -> torch.optim.Optimizer:
    kind = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    return kind(parameters, lr=lr, betas=(config.betas[0], config.betas[1]), weight_decay=config.weight_decay)


def _scheduler(config: SRConfig, optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
    def factor(step: int) -> float:
        return lr_factor(step, config=config)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _discriminator(kind: str, config: SRConfig) -> nn.Module:
    """The family's discriminator, with as many base features as the generator (64 in the papers)."""
    from imgan.archs import discriminators

    try:
        if kind == "vgg":
            return discriminators.VGGStyleDiscriminator(in_channels=3, num_features=config.features,
                                                        input_size=config.crop)
        return discriminators.UNetDiscriminatorSN(in_channels=3, num_features=config.features,
                                                  skip_connection=True)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"--crop {config.crop}: the {kind} discriminator cannot take it ({exc})") from exc


class _FirstImages:
    """The first ``count`` images of a pool, as a pool (for validation without a --val folder)."""

    def __init__(self, pool: ImagePool, count: int) -> None:
        self._pool = pool
        self.names = pool.names[:count]

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> torch.Tensor:
        if index >= len(self.names):
            raise IndexError(index)
        return self._pool[index]


class LossLog:
    """Loss values of one step, averaged over its micro-batches; read back with one device sync."""

    def __init__(self, *, micro_batches: int) -> None:
        self.micro_batches = micro_batches
        self.totals: dict[str, torch.Tensor] = {}

    def add(self, name: str, value: torch.Tensor) -> None:
        value = value.detach().float() / self.micro_batches
        self.totals[name] = self.totals[name] + value if name in self.totals else value

    def means(self) -> dict[str, float]:
        if not self.totals:
            return {}
        return dict(zip(self.totals, torch.stack(list(self.totals.values())).tolist(), strict=True))


class SRTrainer:
    """Generator (and discriminator) of one SR family; see ``imgan.train.loop`` for the protocol."""

    def __init__(self, config: SRConfig, runtime: Runtime) -> None:
        self.config = config
        self.runtime = runtime
        self.family = FAMILIES[config.family]
        device = runtime.device

        self.pool = ImagePool(scan_images(config.data), min_side=config.crop, max_side=config.max_side or None)
        degradation = {"bicubic": None, "realesrgan": DegradationConfig(),
                       "light": DegradationConfig.light()}[config.degradation]
        self.pairs = SRPairs(self.pool, scale=config.scale, crop=config.crop,
                             length=samples_needed(config, runtime.context.world_size), seed=config.seed,
                             degradation=degradation)
        self._validation: SRValidation | None = None

        try:
            self.generator = build_model(config.arch, generator_params(config)).to(device)
        except ModelError as exc:
            raise UsageError(str(exc)) from exc
        self.g = runtime.wrap(self.generator)  # g, d: the networks as trained (DDP-wrapped when distributed)
        self.optimizer_g = make_optimizer(config, self.generator.parameters(), config.lr)
        self.scheduler_g = _scheduler(config, self.optimizer_g)

        self.discriminator: nn.Module | None = None
        if self.family.discriminator != "none":
            self.discriminator = _discriminator(self.family.discriminator, config).to(device)
            self.d = runtime.wrap(self.discriminator)
            self.optimizer_d = make_optimizer(config, self.discriminator.parameters(), config.lr_d or config.lr)
            self.scheduler_d = _scheduler(config, self.optimizer_d)

        if self.discriminator is not None and config.pretrain_steps >= config.steps:
            log.warning("--pretrain-steps %d covers all %d steps: this run trains with the pixel loss only",
                        config.pretrain_steps, config.steps)

        self.perceptual: nn.Module | None = None
        if config.perceptual > 0 and config.pretrain_steps < config.steps:  # else the GAN phase never comes
            layers = dict(self.family.perceptual_layers)
            self.perceptual = losses.PerceptualLoss(layer_weights=layers).to(device)

    # ----------------------------------------------------------------- protocol

    def modules(self) -> dict[str, nn.Module]:
        found = {"generator": self.generator}
        if self.discriminator is not None:
            found["discriminator"] = self.discriminator
        return found

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        found = {"generator": self.optimizer_g}
        if self.discriminator is not None:
            found["discriminator"] = self.optimizer_d
        return found

    def schedulers(self) -> dict[str, torch.optim.lr_scheduler.LRScheduler]:
        found = {"generator": self.scheduler_g}
        if self.discriminator is not None:
            found["discriminator"] = self.scheduler_d
        return found

    def dataset(self) -> Dataset:
        return self.pairs

    def export_generator(self) -> GeneratorSpec:
        return GeneratorSpec(module=self.generator, name="generator", arch=self.config.arch,
                             params=generator_params(self.config), task="upscale", scale=self.config.scale)

    def train_step(self, batch: Sequence[dict[str, torch.Tensor]], step: int) -> dict[str, float]:
        pretraining = step < self.config.pretrain_steps
        logs = LossLog(micro_batches=len(batch))
        fakes = self._generator_step(batch, pretraining=pretraining, logs=logs)
        if self.discriminator is not None and not pretraining:
            self._discriminator_step(batch, fakes, logs=logs)
        return logs.means()

    def _generator_step(self, batch: Sequence[dict[str, torch.Tensor]], *, pretraining: bool,
                        logs: LossLog) -> list[torch.Tensor]:
        """Pixel (+ perceptual + adversarial) loss on each micro-batch; returns the detached outputs."""
        config, run, discriminator = self.config, self.runtime, self.discriminator
        adversarial = discriminator is not None and not pretraining
        if discriminator is not None:
            discriminator.requires_grad_(False)  # it judges, unwrapped: no DDP sync, no gradients
        fakes = []
        for micro in run.micro_batches(batch, self.g):
            hr = micro["hr"]
            with run.autocast():
                fake = self.g(micro["lr"])
                loss = (1.0 if pretraining else config.pixel_weight) * losses.pixel_loss(
                    fake, hr, kind=config.pixel_loss)
                logs.add("l_pix", loss)
                if self.perceptual is not None and not pretraining:
                    perceptual = config.perceptual * self.perceptual(fake, hr)
                    logs.add("l_percep", perceptual)
                    loss = loss + perceptual
                if adversarial and discriminator is not None:
                    fake_logits = discriminator(fake)
                    if self.family.adversarial == "relativistic":
                        real_logits = discriminator(hr).detach()
                        gan = losses.relativistic_loss(real_logits, fake_logits, for_generator=True)
                    else:
                        gan = losses.gan_loss(fake_logits, real=True, kind="vanilla", for_discriminator=False)
                    gan = config.gan_weight * gan
                    logs.add("l_gan", gan)
                    loss = loss + gan
            run.backward(loss)
            fakes.append(fake.detach())
        run.step(self.optimizer_g)
        return fakes

    def _discriminator_step(self, batch: Sequence[dict[str, torch.Tensor]], fakes: list[torch.Tensor], *,
                            logs: LossLog) -> None:
        """Real HR crops against this step's generator outputs."""
        run = self.runtime
        if self.discriminator is not None:
            self.discriminator.requires_grad_(True)
        for micro, fake in zip(run.micro_batches(batch, self.d), fakes, strict=True):
            with run.autocast():
                real_logits = self.d(micro["hr"])
                fake_logits = self.d(fake)
                if self.family.adversarial == "relativistic":
                    loss = losses.relativistic_loss(real_logits, fake_logits, for_generator=False)
                else:
                    loss = (losses.gan_loss(real_logits, real=True, kind="vanilla")
                            + losses.gan_loss(fake_logits, real=False, kind="vanilla"))
            logs.add("l_d", loss)
            logs.add("d_real", real_logits.mean())
            logs.add("d_fake", fake_logits.mean())
            run.backward(loss)
        run.step(self.optimizer_d)

    def _validation_set(self) -> SRValidation:
        if self._validation is None:
            if self.config.val:
                pool: Any = ImagePool(scan_images(self.config.val), min_side=self.config.scale)
            else:
                pool = _FirstImages(self.pool, VALIDATION_FALLBACK)
                log.info("no --val folder: validating on %d training image(s)", len(pool))
            self._validation = SRValidation(pool, scale=self.config.scale)
        return self._validation

    def _upscale(self, generator: nn.Module, lr: torch.Tensor) -> torch.Tensor:
        """(3,h,w) -> (1,3,h*scale,w*scale) in [0,1], padding the input to the network's multiple."""
        from imgan.tiling import pad_to_multiple

        height, width = lr.shape[-2:]
        image = pad_to_multiple(lr.unsqueeze(0).to(self.runtime.device),
                                int(getattr(generator, "size_multiple", 1)))
        scale = self.config.scale
        return generator(image)[..., : height * scale, : width * scale].float().clamp(0, 1)

    def validate(self, generator: nn.Module) -> dict[str, float]:
        """Mean PSNR and SSIM on the Y channel, ``scale`` border pixels shaved, 8-bit outputs."""
        from imgan.metrics import psnr, ssim

        scale = self.config.scale
        psnrs, ssims = [], []
        for item in self._validation_set():
            output = self._upscale(generator, item["lr"]).mul(255).round().div(255).cpu()
            reference = item["hr"].unsqueeze(0)
            psnrs.append(psnr(output, reference, shave=scale, y_channel=True))
            try:
                ssims.append(ssim(output, reference, shave=scale, y_channel=True))
            except ValueError:  # too small for the SSIM window
                pass
        scores = {"psnr": sum(psnrs) / len(psnrs)}
        if ssims:
            scores["ssim"] = sum(ssims) / len(ssims)
        return scores

    def samples(self, generator: nn.Module) -> torch.Tensor:
        """Rows of [LR enlarged (nearest) | output | HR] for the first validation images."""
        validation = self._validation_set()
        rows = []
        for index in range(min(SAMPLE_ROWS, len(validation))):
            item = validation[index]
            hr = item["hr"].unsqueeze(0)
            output = self._upscale(generator, item["lr"]).cpu()
            nearest = F.interpolate(item["lr"].unsqueeze(0), scale_factor=self.config.scale, mode="nearest")
            rows.append(torch.cat([nearest, output, hr], dim=-1))
        width = max(row.shape[-1] for row in rows)
        rows = [F.pad(row, (0, width - row.shape[-1])) for row in rows]
        return torch.cat(rows, dim=-2)

