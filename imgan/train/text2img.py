"""Text-to-image and image GANs of the DF-GAN family: ``imgan train text2img`` and ``imgan train gan``.

Defaults and their sources are in ``imgan.train.config.FAMILIES["text2img"]`` and ``["gan"]``.
Images are [0,1] at the boundaries; the networks work in [-1,1] (tanh output).

Networks (``imgan.archs.dfgan``): the generator is DF-GAN's NetG inside a ``TextToImage`` with its
condition encoder: imgan's caption encoder (a bidirectional GRU, ``text2img``), a frozen DAMSM
encoder given with ``--text-encoder`` and ``--vocabulary``, one learnt vector per class folder
(``gan`` on class folders) or none (``gan`` on one folder of images). The critic is DF-GAN's NetD
trunk and NetC matching head.

Two phases. DF-GAN conditions on a DAMSM text encoder pretrained against an image encoder and then
frozen; a trained encoder here does the same within the run: for the first ``--encoder-steps``
steps it learns, with a small image encoder (a NetD trunk and a projection), a symmetric InfoNCE
loss between the images and the captions of each batch (temperature 0.1: DAMSM's sentence loss in
spirit), and is frozen afterwards. (Trained instead on the critic's side through the matching loss
alone, a first run of the default learnt the colours, which are easy to tell apart, and after
1,800 steps still drew the same shape for every digit word.) The encoders need many steps: in a
batch of 32 captions, colour and background already tell most pairs apart, so after 500 steps
the encoder's sentences for "a red 3 on black" and "a red 7 on black" were nearly the same
(cosine 0.95), and 6,000 GAN steps on them drew 37% of the classes right; after 10,000 encoder
steps (loss 1.32 -> 0.27) the classes count too, and 6,000 GAN steps drew 95% right.

In the GAN steps that follow, the frozen image encoder also judges the generated images:
``--contrastive`` weighs the same InfoNCE loss of the fakes against their captions in the
generator's loss, as AttnGAN adds its DAMSM loss.

A GAN step (DF-GAN's, ``code/lib/modules.py``): the critic sees real images with their captions
(real), real images with the next sample's caption (mismatched) and generated ones (fake); with
``--gan hinge`` its loss is hinge(real) + (hinge(fake) + hinge(mismatched)) / 2 plus the
matching-aware gradient penalty ``lambda_gp * mean(||grad D(real, caption)||^6)`` taken with
respect to both the image and the caption embedding (MA-GP; every ``--gp-every`` steps, weighted
by that interval); with ``--gan wgan-gp`` it is the Wasserstein loss and WGAN-GP's penalty on
images between real and fake. The generator then minimises -D(fake, caption) (+ the contrastive
loss).

Data: ``--data DIR`` holds images, each with its captions beside it (``IMAGE.txt``, one per line;
one is drawn per sample) or listed in ``--captions FILE`` (``file<TAB>caption`` lines, paths
relative to DIR); for ``gan``, the images, or one subfolder of them per class. Sample i picks an
image, a caption and a flip from ``sample_generator(seed, i)`` alone.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from imgan.archs import build_model
from imgan.archs.dfgan import NetC, NetD, TextToImage, damsm_params
from imgan.errors import InputError, UsageError
from imgan.text import MAX_WORDS, Vocabulary, read_vocabulary_pickle, vocabulary_from_json, vocabulary_json
from imgan.train.config import GanConfig, Text2ImgConfig
from imgan.train.data import ImagePool, SeededSamples, scan_images
from imgan.train.loop import GeneratorSpec, Runtime, samples_needed
from imgan.train.sr import LossLog, make_optimizer

__all__ = ["CaptionedImages", "GanTrainer", "Text2ImgTrainer", "build_vocabulary", "read_captioned_folder"]

log = logging.getLogger(__name__)

END = "<end>"  # index 0, as in DF-GAN's vocabularies: never produced by the tokeniser
SAMPLE_CAPTIONS = 8
TEMPERATURE = 0.1
SAMPLE_NOISES = 6
MAX_CAPTION_LINES = 100


# --------------------------------------------------------------------------------------------
# Data


def read_captioned_folder(root: str, captions_file: str = "") -> list[tuple[Path, list[str]]]:
    """(image, its captions) for every image under ``root`` that has captions.

    Captions come from ``IMAGE.txt`` beside each image (one per line), or from ``captions_file``
    (``file<TAB>caption`` lines, file relative to ``root``). Images without captions are left out
    with a warning.
    """
    images = scan_images(root)
    found: dict[Path, list[str]] = {}
    if captions_file:
        try:
            lines = Path(captions_file).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"--captions {captions_file}: cannot read it ({exc})") from exc
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            name, tab, text = line.partition("\t")
            if not tab or not text.strip():
                raise InputError(f"{captions_file}:{number}: expected file<TAB>caption")
            found.setdefault((Path(root) / name.strip()).resolve(), []).append(text.strip())
        pairs = [(path, found[path.resolve()]) for path in images if path.resolve() in found]
    else:
        pairs = []
        for path in images:
            text_path = path.with_suffix(".txt")
            if text_path.is_file():
                lines = [line.strip() for line in text_path.read_text(encoding="utf-8", errors="replace").splitlines()]
                lines = [line for line in lines if line][:MAX_CAPTION_LINES]
                if lines:
                    pairs.append((path, lines))
    missing = len(images) - len(pairs)
    if not pairs:
        how = f"listed in {captions_file}" if captions_file else "with a caption file beside it (IMAGE.txt)"
        raise InputError(f"{root}: no image {how}; text2img trains on captioned images")
    if missing:
        log.warning("%d of %d images in %s have no caption; left out", missing, len(images), root)
    return pairs


def build_vocabulary(captions: Sequence[str], *, max_words: int = MAX_WORDS) -> Vocabulary:
    """Every word of the training captions (as DF-GAN tokenises them), most frequent first, from index 1."""
    from imgan.text import tokenize

    counts = Counter(word for caption in captions for _, word in tokenize(caption) if word)
    if not counts:
        raise InputError("the training captions hold no words")
    words = sorted(counts, key=lambda word: (-counts[word], word))
    return Vocabulary({END: 0, **{word: index for index, word in enumerate(words, start=1)}}, max_words=max_words)


def _class_folders(root: str) -> tuple[list[tuple[Path, int]], list[str]]:
    """(image, class) pairs and the class names: one class per subfolder, or none for a flat folder."""
    images = scan_images(root)
    folder = Path(root)
    tops = sorted({path.relative_to(folder).parts[0] for path in images if len(path.relative_to(folder).parts) > 1})
    flat = [path for path in images if len(path.relative_to(folder).parts) == 1]
    if not tops or flat and not tops:
        return [(path, 0) for path in images], []
    if flat:
        log.warning("%d images lie directly in %s, outside the class folders; left out", len(flat), root)
    names = [name.lower() for name in tops]
    labels = {top: index for index, top in enumerate(tops)}
    return [(path, labels[path.relative_to(folder).parts[0]]) for path in images
            if len(path.relative_to(folder).parts) > 1], names


def _pool(paths: Sequence[Path], size: int) -> list[torch.Tensor]:
    """The images as uint8 (3,size,size) tensors (squashed to a square, resized with antialiasing)."""
    pool = ImagePool(list(paths), min_side=1)
    if len(pool) != len(paths):
        raise InputError(f"{len(paths) - len(pool)} training images could not be read; fix or remove them")
    images = []
    for index in range(len(pool)):
        image = pool[index]
        if image.shape[-2:] != (size, size):
            resized = F.interpolate(image[None].float(), size=(size, size), mode="bilinear", antialias=True,
                                    align_corners=False)
            image = resized[0].round().clamp(0, 255).to(torch.uint8)
        images.append(image)
    return images


class CaptionedImages(SeededSamples):
    """Item i = {"image": (3,S,S) in [0,1], "tokens": (max_words,) long, "length": () long}.

    The image is drawn uniformly, then one of its captions, then a horizontal flip (``flip``),
    from ``sample_generator(seed, i)``. Captions are encoded once; a caption with no known word
    (possible with a given vocabulary) is left out.
    """

    def __init__(self, images: Sequence[torch.Tensor], captions: Sequence[Sequence[tuple[int, ...]]], *,
                 length: int, seed: int, flip: bool, max_words: int) -> None:
        self.images = list(images)
        self.captions = [list(options) for options in captions]
        self.length = length
        self.seed = seed
        self.flip = flip
        self.max_words = max_words

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        generator = self.generator(index)
        which = int(torch.randint(len(self.images), (), generator=generator))
        options = self.captions[which]
        indices = options[int(torch.randint(len(options), (), generator=generator))] if options else (0,)
        image = self.images[which]
        if self.flip and bool(torch.rand((), generator=generator) < 0.5):
            image = image.flip(-1)
        tokens = torch.zeros(self.max_words, dtype=torch.long)
        tokens[: len(indices)] = torch.tensor(indices, dtype=torch.long)
        return {"image": image.float().div(255), "tokens": tokens, "length": torch.tensor(max(1, len(indices)))}


# --------------------------------------------------------------------------------------------
# The critic


class Critic(nn.Module):
    """NetD and NetC as one module for DDP; ``forward`` returns the critic's loss terms for one micro-batch."""

    def __init__(self, trunk: NetD, matcher: NetC, *, gan: str, penalty_power: float) -> None:
        super().__init__()
        self.trunk = trunk
        self.matcher = matcher
        self.gan = gan
        self.penalty_power = penalty_power

    def forward(self, real: torch.Tensor, fake: torch.Tensor, condition: torch.Tensor, *, penalty: float,
                mismatch: bool) -> dict[str, torch.Tensor]:
        terms: dict[str, torch.Tensor] = {}
        if penalty and self.gan == "hinge":
            real = real.detach().requires_grad_(True)
            condition = condition.detach().requires_grad_(True)
        features = self.trunk(real)
        real_logits = self.matcher(features, condition)
        fake_logits = self.matcher(self.trunk(fake), condition)
        terms_fake = [fake_logits]
        if mismatch:
            terms_fake.append(self.matcher(torch.roll(features, 1, dims=0), condition))
        if self.gan == "hinge":
            terms["real"] = F.relu(1.0 - real_logits).mean()
            terms["fake"] = sum(F.relu(1.0 + logits).mean() for logits in terms_fake) / len(terms_fake)
        else:
            terms["real"] = -real_logits.mean()
            terms["fake"] = sum(logits.mean() for logits in terms_fake) / len(terms_fake)
        if penalty:
            terms["gp"] = penalty * (self._ma_gp(real, condition, real_logits) if self.gan == "hinge"
                                     else self._wgan_gp(real, fake, condition))
        return terms

    def _ma_gp(self, real: torch.Tensor, condition: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """DF-GAN's matching-aware penalty: mean ||d D / d (image, caption)||^6 at real pairs."""
        inputs = (real, condition) if condition.shape[1] else (real,)
        grads = torch.autograd.grad(logits.sum(), inputs, create_graph=True)
        norm = torch.cat([grad.flatten(1) for grad in grads], dim=1).norm(dim=1)
        return norm.pow(self.penalty_power).mean()

    def _wgan_gp(self, real: torch.Tensor, fake: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        weight = torch.rand(real.shape[0], 1, 1, 1, device=real.device, dtype=real.dtype)
        between = (weight * real.detach() + (1 - weight) * fake.detach()).requires_grad_(True)
        scores = self.matcher(self.trunk(between), condition.detach())
        (gradient,) = torch.autograd.grad(scores.sum(), between, create_graph=True)
        return (gradient.flatten(1).norm(dim=1) - 1).square().mean()


def contrastive_loss(image: torch.Tensor, text: torch.Tensor, *, temperature: float = TEMPERATURE) -> torch.Tensor:
    """Symmetric InfoNCE: image i should match caption i among the batch's captions, and the reverse."""
    logits = F.normalize(image, dim=1) @ F.normalize(text, dim=1).T / temperature
    targets = torch.arange(len(logits), device=logits.device)
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2


def open_residuals(trunk: NetD) -> NetD:
    """Start every residual branch of a NetD at full weight (gamma 1), not at 0 as upstream does.

    With gamma 0 the trunk begins as average pooling and 1x1 convolutions: a linear view of the
    colours, whose convolutions see shapes only as gamma grows. Upstream trains for hundreds of
    epochs; in the 1,800 and 1,700 steps of imgan's first two CPU runs the gammas stayed below
    0.09, critic and image encoder told colours apart but not digits, and the generator drew
    coloured blobs. Loaded checkpoints bring their own gammas.
    """
    with torch.no_grad():
        for block in trunk.DBlocks:
            block.gamma.fill_(1.0)
    return trunk


class ImageEncoder(nn.Module):
    """Images in [-1,1] -> (B, cond_dim): a NetD trunk, averaged over space, and a projection."""

    def __init__(self, *, num_features: int, image_size: int, cond_dim: int) -> None:
        super().__init__()
        self.trunk = open_residuals(NetD(num_features=num_features, image_size=image_size))
        for block in self.trunk.DBlocks:
            if not block.learned_shortcut:
                block.conv_s.requires_grad_(False)
        self.project = nn.Linear(num_features * 8, cond_dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.project(self.trunk(images).mean(dim=(-2, -1)))


class EncoderPair(nn.Module):
    """The condition encoder and the image encoder, trained together on the real pairs (one module for DDP)."""

    def __init__(self, text: nn.Module, image: ImageEncoder) -> None:
        super().__init__()
        self.text = text
        self.image = image

    def forward(self, images: torch.Tensor, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return contrastive_loss(self.image(images), self.text(tokens, lengths))


# --------------------------------------------------------------------------------------------
# Trainers


class _DFGANTrainer:
    """What both families share: networks, optimizers, the step, samples; subclasses bring the data."""

    config: Text2ImgConfig | GanConfig
    vocabulary: Vocabulary | None
    encoder_kind: str
    dataset_: CaptionedImages
    sample_captions: list[tuple[str, tuple[int, ...]]]

    def _build(self, runtime: Runtime, *, vocab_size: int, embedding_dim: int, cond_dim: int,
               frozen_encoder: dict[str, torch.Tensor] | None = None) -> None:
        config, device = self.config, runtime.device
        self.runtime = runtime
        self.params = {"image_size": config.size, "num_features": config.features, "noise_dim": config.noise_dim,
                       "cond_dim": cond_dim, "out_channels": 3, "text_encoder": self.encoder_kind,
                       "vocab_size": vocab_size, "embedding_dim": embedding_dim}
        self.model: TextToImage = build_model("dfgan", self.params).to(device)  # type: ignore[assignment]
        self.frozen_encoder = frozen_encoder is not None
        if frozen_encoder is not None:
            assert self.model.text_encoder is not None
            self.model.text_encoder.load_state_dict(frozen_encoder, strict=True)
            self.model.text_encoder.requires_grad_(False).eval()
        self.trunk = open_residuals(NetD(num_features=config.features, image_size=config.size)).to(device)
        for block in self.trunk.DBlocks:  # upstream keeps the unused shortcut convs: keep them out of training
            if not block.learned_shortcut:
                block.conv_s.requires_grad_(False)
        self.matcher = NetC(num_features=config.features, cond_dim=cond_dim).to(device)
        self.critic = Critic(self.trunk, self.matcher, gan=config.gan, penalty_power=6.0)
        self.g = runtime.wrap(self.model.generator)
        self.c = runtime.wrap(self.critic)
        self.optimizer_g = make_optimizer(config, self.model.generator.parameters(), config.lr)
        critic_parameters = [p for p in self.critic.parameters() if p.requires_grad]
        self.optimizer_d = make_optimizer(config, critic_parameters, config.lr_d or config.lr)
        trains_encoder = not self.frozen_encoder and self.model.text_encoder is not None
        self.encoder_steps = int(config.encoder_steps or 0) if trains_encoder else 0
        self.contrastive = float(config.contrastive or 0.0) if trains_encoder else 0.0
        if trains_encoder and not self.encoder_steps:
            raise UsageError("--encoder-steps 0: the caption encoder would stay random; give it steps to learn, or "
                             "a trained one with --text-encoder")
        self.image_encoder: ImageEncoder | None = None
        if trains_encoder:
            assert self.model.text_encoder is not None
            self.image_encoder = ImageEncoder(num_features=config.features, image_size=config.size,
                                              cond_dim=cond_dim).to(device)
            pair = EncoderPair(self.model.text_encoder, self.image_encoder)
            self.pair = runtime.wrap(pair)
            self.optimizer_e = make_optimizer(config, [p for p in pair.parameters() if p.requires_grad],
                                              config.lr_d or config.lr)
        generator = torch.Generator().manual_seed(config.seed)
        self.sample_noise = torch.randn(SAMPLE_NOISES, config.noise_dim, generator=generator).clamp(-2, 2)

    # ----------------------------------------------------------------- protocol

    def modules(self) -> dict[str, nn.Module]:
        found = {"generator": self.model, "discriminator": self.trunk, "matcher": self.matcher}
        if self.image_encoder is not None:
            found["image_encoder"] = self.image_encoder
        return found

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        found = {"generator": self.optimizer_g, "discriminator": self.optimizer_d}
        if self.image_encoder is not None:
            found["encoders"] = self.optimizer_e
        return found

    def schedulers(self) -> dict[str, torch.optim.lr_scheduler.LRScheduler]:
        return {}

    def dataset(self) -> Dataset:
        return self.dataset_

    def export_generator(self) -> GeneratorSpec:
        metadata = {"truncation": "1.0"}
        if self.vocabulary is not None:
            metadata["vocabulary"] = vocabulary_json(self.vocabulary)
        return GeneratorSpec(module=self.model, name="generator", arch="dfgan", params=dict(self.params),
                             task="text2img", scale=1, value_range=(-1.0, 1.0), metadata=metadata)

    def _embed(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.model.embed(tokens, lengths)

    def train_step(self, batch: Sequence[dict[str, torch.Tensor]], step: int) -> dict[str, float]:
        if step < self.encoder_steps:
            return self._encoder_step(batch)
        self._freeze_encoders()
        config, run = self.config, self.runtime
        logs = LossLog(micro_batches=len(batch))
        every = max(1, config.gp_every)
        penalty = config.lambda_gp * every if step % every == 0 and config.lambda_gp > 0 else 0.0
        conditional = self.encoder_kind != "none"
        noises, conditions = [], []
        for micro in run.micro_batches(batch, self.c):
            real = micro["image"] * 2 - 1
            noise = torch.randn(real.shape[0], config.noise_dim, device=real.device)
            with torch.no_grad():
                condition = self.model.embed(micro["tokens"], micro["length"]).float()
                with run.autocast():
                    fake = self.g(noise, condition)
            with run.autocast():
                terms = self.c(real, fake.float(), condition, penalty=penalty, mismatch=conditional)
                loss = terms["real"] + terms["fake"] + terms.get("gp", 0.0)
            for name, value in terms.items():
                logs.add(f"d_{name}", value)
            run.backward(loss)
            noises.append(noise)
            conditions.append(condition)
        run.step(self.optimizer_d)

        self.critic.requires_grad_(False)  # it judges, unwrapped: no DDP sync, no gradients
        for _micro, noise, condition in zip(run.micro_batches(batch, self.g), noises, conditions, strict=True):
            with run.autocast():
                fake = self.g(noise, condition)
                loss = -self.matcher(self.trunk(fake), condition).mean()
                if self.contrastive and self.image_encoder is not None:
                    match = self.contrastive * contrastive_loss(self.image_encoder(fake), condition)
                    logs.add("g_match", match)
                    loss = loss + match
            logs.add("g", loss)
            run.backward(loss)
        run.step(self.optimizer_g)
        self.critic.requires_grad_(True)
        for block in self.trunk.DBlocks:
            if not block.learned_shortcut:
                block.conv_s.requires_grad_(False)
        return logs.means()

    def _encoder_step(self, batch: Sequence[dict[str, torch.Tensor]]) -> dict[str, float]:
        """Phase one: the condition and image encoders learn to match the real pairs of the batch."""
        run = self.runtime
        logs = LossLog(micro_batches=len(batch))
        for micro in run.micro_batches(batch, self.pair):
            with run.autocast():
                loss = self.pair(micro["image"] * 2 - 1, micro["tokens"], micro["length"])
            logs.add("encoder", loss)
            run.backward(loss)
        run.step(self.optimizer_e)
        return logs.means()

    def _freeze_encoders(self) -> None:
        """From the first GAN step on the encoders only judge (the EMA then copies the frozen encoder)."""
        for module in (self.model.text_encoder, self.image_encoder):
            if module is not None and any(p.requires_grad for p in module.parameters()):
                module.requires_grad_(False)

    def validate(self, generator: nn.Module) -> dict[str, float]:
        return {}

    def samples(self, generator: nn.Module) -> torch.Tensor:
        """One row per sample caption (the first distinct ones of the data), one column per fixed noise."""
        device = self.runtime.device
        rows = []
        for _, indices in self.sample_captions:
            tokens = torch.tensor([indices or (0,)], dtype=torch.long, device=device)
            lengths = torch.tensor([max(1, len(indices))])
            condition = generator.embed(tokens, lengths).expand(SAMPLE_NOISES, -1)
            images = generator(self.sample_noise.to(device), condition).float().cpu().add(1).div(2).clamp(0, 1)
            rows.append(torch.cat(list(images), dim=-1))
        return torch.cat(rows, dim=-2)[None]


class Text2ImgTrainer(_DFGANTrainer):
    """``imgan train text2img``: captioned images, imgan's caption encoder or a frozen DAMSM encoder."""

    def __init__(self, config: Text2ImgConfig, runtime: Runtime) -> None:
        self.config = config
        pairs = read_captioned_folder(config.data, config.captions)
        frozen: dict[str, torch.Tensor] | None = None
        if config.text_encoder:
            if not config.vocabulary:
                raise UsageError("--text-encoder needs its --vocabulary (captions_DAMSM.pickle or JSON)")
            from imgan import hub

            frozen, _ = hub.load_state_dict(Path(config.text_encoder))
            found = damsm_params(frozen)
            if found is None:
                raise UsageError(f"--text-encoder {config.text_encoder}: not a DAMSM RNN text encoder")
            vocabulary = _read_vocabulary(config.vocabulary, max_words=config.max_words)
            self.encoder_kind = "damsm"
            vocab_size, embedding_dim, cond_dim = found["vocab_size"], found["embedding_dim"], found["cond_dim"]
        else:
            if config.vocabulary:
                raise UsageError("--vocabulary goes with --text-encoder; without it imgan builds the vocabulary "
                                 "from the captions")
            vocabulary = build_vocabulary([text for _, texts in pairs for text in texts], max_words=config.max_words)
            self.encoder_kind = "gru"
            vocab_size, embedding_dim, cond_dim = vocabulary.size, config.embedding_dim, config.cond_dim
        self.vocabulary = vocabulary
        encoded = [[vocabulary.encode(text).indices for text in texts] for _, texts in pairs]
        unknown = sum(1 for _, texts in pairs for text in texts if vocabulary.encode(text).unknown)
        if unknown:
            log.warning("%d training captions hold words the vocabulary lacks; those words are left out", unknown)
        kept = [(path, [indices for indices in options if indices])
                for (path, _), options in zip(pairs, encoded, strict=True)]
        kept = [(path, options) for path, options in kept if options]
        if not kept:
            raise InputError(f"{config.data}: no caption holds a word of the vocabulary")
        images = _pool([path for path, _ in kept], config.size)
        log.info("%d captioned images, %d words", len(images), len(vocabulary))
        self.dataset_ = CaptionedImages(images, [options for _, options in kept],
                                        length=samples_needed(config, runtime.context.world_size), seed=config.seed,
                                        flip=config.flip, max_words=config.max_words)
        seen: dict[str, tuple[int, ...]] = {}
        for (_, texts), options in zip(pairs, encoded, strict=True):
            for text, indices in zip(texts, options, strict=True):
                if indices and text not in seen and len(seen) < SAMPLE_CAPTIONS:
                    seen[text] = indices
        self.sample_captions = list(seen.items())
        self._build(runtime, vocab_size=vocab_size, embedding_dim=embedding_dim, cond_dim=cond_dim,
                    frozen_encoder=frozen)


class GanTrainer(_DFGANTrainer):
    """``imgan train gan``: unconditional, or conditional on class folders (the class names are its words)."""

    def __init__(self, config: GanConfig, runtime: Runtime) -> None:
        self.config = config
        labelled, names = _class_folders(config.data)
        images = _pool([path for path, _ in labelled], config.size)
        if names:
            self.vocabulary = Vocabulary({name: index for index, name in enumerate(names)}, max_words=1)
            self.encoder_kind = "classes"
            captions = [[(label,)] for _, label in labelled]
            self.sample_captions = [(name, (index,)) for index, name in enumerate(names[:SAMPLE_CAPTIONS])]
            log.info("%d images in %d classes: %s", len(images), len(names), ", ".join(names))
        else:
            self.vocabulary = None
            self.encoder_kind = "none"
            captions = [[] for _ in labelled]
            self.sample_captions = [("", ())]
            log.info("%d images, unconditional", len(images))
        self.dataset_ = CaptionedImages(images, captions, length=samples_needed(config, runtime.context.world_size),
                                        seed=config.seed, flip=config.flip, max_words=1)
        vocab_size = len(names)
        self._build(runtime, vocab_size=vocab_size, embedding_dim=0, cond_dim=config.cond_dim if names else 0)


def _read_vocabulary(path: str, *, max_words: int) -> Vocabulary:
    if Path(path).suffix.lower() == ".json":
        vocabulary = vocabulary_from_json(Path(path).read_text(encoding="utf-8"), source=path)
        return Vocabulary(vocabulary.word_to_index, max_words=max_words)
    return read_vocabulary_pickle(path, max_words=max_words)

