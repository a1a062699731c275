"""The inpainting trainer: an FFC generator against an SN-PatchGAN critic, on random holes in photos.

Defaults and their sources are in ``imgan.train.config.FAMILIES["inpaint"]``. Images are [0,1].

Data: sample i takes a photo (drawn with odds proportional to its area, so every pixel of the pool
is equally likely to be seen), a random crop with the 8 square symmetries, and a random hole of
free-form strokes and boxes (``imgan.masks.random_hole``) covering ``--hole-min`` to
``--hole-max`` of the crop, all drawn from ``sample_generator(seed, i)``.

A step: the generator predicts the whole crop from the photo with the hole blanked; the fake is
the photo outside the hole and the prediction inside. G minimises
  hole_weight * pixel loss in the hole + valid_weight * pixel loss of the prediction outside it
  + gan_weight * GAN(D(fake, hole)) (+ perceptual * VGG19 distance, when asked),
then the critic judges photo | hole against fake | hole: hinge loss with spectral norm
(``--gan hinge``), or the Wasserstein loss plus ``lambda_gp`` times the gradient penalty
(``--gan wgan-gp``). Validation: PSNR and SSIM in the hole on held-out photos under the protocol
of ``imgan eval --task inpaint`` (``imgan.tasks.inpaint_eval``), next to OpenCV's Telea on the
same holes.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from imgan.archs import ARCHS, build_model
from imgan.errors import InputError, ModelError, UsageError
from imgan.train import losses
from imgan.train.config import FAMILIES, InpaintConfig
from imgan.train.data import ImagePool, SeededSamples, random_crop_augment, scan_images
from imgan.train.loop import GeneratorSpec, Runtime, samples_needed
from imgan.train.sr import SAMPLE_ROWS, VALIDATION_FALLBACK, LossLog, make_optimizer

__all__ = ["HoleSamples", "InpaintTrainer", "ValidationHoles", "hole_scores"]

log = logging.getLogger(__name__)

class HoleSamples(SeededSamples):
    """Training samples made on the fly: item i = {"image": (3,crop,crop) [0,1], "hole": (1,crop,crop) 0/1}."""

    def __init__(self, pool: ImagePool, *, crop: int, length: int, seed: int, kind: str,
                 coverage: tuple[float, float]) -> None:
        self.pool = pool
        self.crop = crop
        self.length = length
        self.seed = seed
        self.kind = kind
        self.coverage = coverage
        self._indices = [index for index in range(len(pool)) if min(pool[index].shape[-2:]) >= crop]
        if not self._indices:
            raise InputError(f"no training photo is at least {crop} pixels on its shorter side; use a smaller "
                             "--crop or larger photos")
        areas = [float(pool[index].shape[-2] * pool[index].shape[-1]) for index in self._indices]
        self._cumulative = torch.tensor(areas, dtype=torch.float64).cumsum(0)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        from imgan.masks import random_hole

        generator = self.generator(index)
        point = torch.rand((), generator=generator, dtype=torch.float64) * self._cumulative[-1]
        position = min(int(torch.searchsorted(self._cumulative, point, right=True)), len(self._indices) - 1)
        image = random_crop_augment(self.pool[self._indices[position]], size=self.crop, generator=generator)
        hole = random_hole(self.crop, self.crop, generator=generator, coverage=self.coverage, kind=self.kind)
        return {"image": image, "hole": hole[0].float()}


class ValidationHoles(Dataset):
    """Held-out items: each photo's crop and hole as ``imgan eval --task inpaint`` makes them
    (``imgan.tasks.inpaint_eval.protocol_item``), so validation scores are that table's numbers."""

    def __init__(self, photos: Sequence[tuple[str, torch.Tensor]]) -> None:
        from imgan.tasks.inpaint_eval import protocol_item

        self.items: list[dict[str, torch.Tensor]] = []
        for name, image in photos:
            crop, hole = protocol_item(image, name)
            self.items.append({"image": crop[0], "hole": hole[0].float()})

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.items[index]


def hole_scores(output: torch.Tensor, reference: torch.Tensor, hole: torch.Tensor) -> tuple[float, float]:
    """(PSNR in dB, SSIM) inside ``hole``, on RGB (see ``imgan.metrics.masked_psnr``)."""
    from imgan.metrics import masked_psnr, masked_ssim

    return masked_psnr(output, reference, hole), masked_ssim(output, reference, hole)


class InpaintTrainer:
    """Generator and critic of the inpaint family; see ``imgan.train.loop`` for the protocol."""

    def __init__(self, config: InpaintConfig, runtime: Runtime) -> None:
        self.config = config
        self.runtime = runtime
        self.family = FAMILIES[config.family]
        device = runtime.device
        coverage = (config.hole_min, config.hole_max)
        self.pool = ImagePool(scan_images(config.data), min_side=config.crop, max_side=config.max_side or None)
        self.training_samples = HoleSamples(self.pool, crop=config.crop, seed=config.seed, kind=config.masks,
                                    length=samples_needed(config, runtime.context.world_size), coverage=coverage)
        self._validation: ValidationHoles | None = None
        self._telea: tuple[float, float] | None = None

        try:
            self.generator = build_model(config.arch, self.generator_params()).to(device)
        except ModelError as exc:
            raise UsageError(str(exc)) from exc
        from imgan.archs.discriminators import SNPatchDiscriminator

        self.discriminator = SNPatchDiscriminator(in_channels=4, num_features=config.features,
                                                  spectral=config.gan == "hinge").to(device)
        self.g, self.d = runtime.wrap(self.generator), runtime.wrap(self.discriminator)
        self.optimizer_g = make_optimizer(config, self.generator.parameters(), config.lr)
        self.optimizer_d = make_optimizer(config, self.discriminator.parameters(), config.lr_d or config.lr)
        self.scheduler_g = torch.optim.lr_scheduler.LambdaLR(self.optimizer_g, self.lr_factor)
        self.scheduler_d = torch.optim.lr_scheduler.LambdaLR(self.optimizer_d, self.lr_factor)
        self.perceptual: nn.Module | None = None
        if config.perceptual > 0:
            self.perceptual = losses.PerceptualLoss(layer_weights=dict(self.family.perceptual_layers)).to(device)

    def generator_params(self) -> dict[str, Any]:
        return {"in_channels": 4, "out_channels": 3, "num_features": self.config.features,
                "num_blocks": self.config.blocks}

    def lr_factor(self, step: int) -> float:
        """Linear warmup, then constant or a cosine fall to 0 at the last step."""
        import math

        config = self.config
        if step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        if config.schedule == "cosine":
            progress = min(1.0, (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps))
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        return 1.0

    # ----------------------------------------------------------------- protocol

    def modules(self) -> dict[str, nn.Module]:
        return {"generator": self.generator, "discriminator": self.discriminator}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"generator": self.optimizer_g, "discriminator": self.optimizer_d}

    def schedulers(self) -> dict[str, torch.optim.lr_scheduler.LRScheduler]:
        return {"generator": self.scheduler_g, "discriminator": self.scheduler_d}

    def dataset(self) -> Dataset:
        return self.training_samples

    def export_generator(self) -> GeneratorSpec:
        arch = ARCHS[self.config.arch]
        return GeneratorSpec(module=self.generator, name="generator", arch=arch.name, params=self.generator_params(),
                             task=arch.task, scale=1, value_range=arch.value_range)

    @property
    def _gan_kind(self) -> str:
        """``imgan.train.losses.gan_loss``'s name for the run's --gan."""
        return "hinge" if self.config.gan == "hinge" else "wgan"

    def _critic(self, image: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        return self.d(torch.cat([image, hole], dim=1))

    def train_step(self, batch: Sequence[dict[str, torch.Tensor]], step: int) -> dict[str, float]:
        config, run = self.config, self.runtime
        logs = LossLog(micro_batches=len(batch))
        self.discriminator.requires_grad_(False)  # it judges, unwrapped: no DDP sync, no gradients
        fakes = []
        for micro in run.micro_batches(batch, self.g):
            image, hole = micro["image"], micro["hole"]
            with run.autocast():
                prediction = self.g(torch.cat([image, hole], dim=1), composite=False)
                fake = image * (1 - hole) + prediction * hole
                kind = config.pixel_loss
                inside = config.hole_weight * losses.masked_pixel_loss(prediction, image, hole, kind=kind)
                outside = config.valid_weight * losses.masked_pixel_loss(prediction, image, 1 - hole, kind=kind)
                gan = config.gan_weight * losses.gan_loss(self.discriminator(torch.cat([fake, hole], dim=1)),
                                                          real=True, kind=self._gan_kind, for_discriminator=False)
                loss = inside + outside + gan
                if self.perceptual is not None:
                    perceptual = config.perceptual * self.perceptual(fake, image)
                    logs.add("l_percep", perceptual)
                    loss = loss + perceptual
            logs.add("l_hole", inside)
            logs.add("l_valid", outside)
            logs.add("l_gan", gan)
            run.backward(loss)
            fakes.append(fake.detach())
        run.step(self.optimizer_g)

        self.discriminator.requires_grad_(True)
        for micro, fake in zip(run.micro_batches(batch, self.d), fakes, strict=True):
            image, hole = micro["image"], micro["hole"]
            with run.autocast():
                real_logits, fake_logits = self._critic(image, hole), self._critic(fake, hole)
                loss = (losses.gan_loss(real_logits, real=True, kind=self._gan_kind)
                        + losses.gan_loss(fake_logits, real=False, kind=self._gan_kind))
            if config.gan == "wgan-gp":  # in float32: the penalty differentiates through the critic twice
                penalty = losses.gradient_penalty(lambda images, hole=hole: self._critic(images, hole), image, fake)
                logs.add("l_gp", penalty)
                loss = loss + config.lambda_gp * penalty
            logs.add("l_d", loss)
            run.backward(loss)
        run.step(self.optimizer_d)
        return logs.means()

    # ----------------------------------------------------------------- validation

    def _validation_set(self) -> ValidationHoles:
        if self._validation is None:
            if self.config.val:
                from imgan.io import read_picture
                from imgan.tasks.evaluate import list_images

                photos = [(name, read_picture(path).rgb) for name, path in list_images(self.config.val)]
            else:
                count = min(VALIDATION_FALLBACK, len(self.pool))
                photos = [(Path(self.pool.names[index]).stem, self.pool[index].float().div(255).unsqueeze(0))
                          for index in range(count)]
                log.info("no --val folder: validating on %d training photo(s)", count)
            self._validation = ValidationHoles(photos)
        return self._validation

    def _fill(self, generator: nn.Module, item: dict[str, torch.Tensor]) -> torch.Tensor:
        """(1,3,h,w) in [0,1]: the generator's fill of one held-out item, 8-bit as if saved."""
        device = self.runtime.device
        inputs = torch.cat([item["image"], item["hole"]]).unsqueeze(0).to(device)
        return generator(inputs).float().clamp(0, 1).mul(255).round().div(255).cpu()

    def validate(self, generator: nn.Module) -> dict[str, float]:
        """Mean PSNR and SSIM in the hole, and Telea's on the same holes (computed once)."""
        validation = self._validation_set()
        scores = [hole_scores(self._fill(generator, item), item["image"].unsqueeze(0), item["hole"].unsqueeze(0))
                  for item in validation]
        if self._telea is None:
            telea = build_model("inpaint_opencv", {"method": "telea"})
            baseline = [hole_scores(self._fill(telea, item).cpu(), item["image"].unsqueeze(0),
                                    item["hole"].unsqueeze(0)) for item in validation]
            self._telea = (sum(p for p, _ in baseline) / len(baseline), sum(s for _, s in baseline) / len(baseline))
        return {"psnr": sum(p for p, _ in scores) / len(scores), "ssim": sum(s for _, s in scores) / len(scores),
                "psnr_telea": self._telea[0], "ssim_telea": self._telea[1]}

    def samples(self, generator: nn.Module) -> torch.Tensor:
        """Rows of [photo with the hole in white | fill | photo] for the first held-out photos."""
        validation = self._validation_set()
        rows = []
        for index in range(min(SAMPLE_ROWS, len(validation))):
            item = validation[index]
            image, hole = item["image"].unsqueeze(0), item["hole"].unsqueeze(0)
            rows.append(torch.cat([image * (1 - hole) + hole, self._fill(generator, item), image], dim=-1))
        width = max(row.shape[-1] for row in rows)
        return torch.cat([torch.nn.functional.pad(row, (0, width - row.shape[-1])) for row in rows], dim=-2)
