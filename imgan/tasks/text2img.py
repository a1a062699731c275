"""``imgan text2img``: captions in, pictures out, from a DF-GAN-style generator and its text encoder.

Each caption is tokenised as DF-GAN does (``imgan.text``); words the model does not know are
reported, not silently dropped (``--strict`` makes them an error for that caption), and a caption
with no known word fails alone. Image *k* of every caption is drawn from noise seeded by
``seed + k``, made on the CPU by torch's own generator (a normal sample, values beyond +-2 drawn
again, times ``truncation``), so the same seed gives the same pictures on any device, up to
floating-point rounding in the network, and one picture of a run can be made again alone.

Outputs are separate files or one contact sheet per caption (``--grid``) with the caption written
under it, named by a template with ``{index}`` (the caption's number, from 1), ``{slug}`` (the
caption in lower-case words joined by '-') and ``{seed}`` (the picture's, or the sheet's first);
``{n}`` is the picture's number within its caption.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imgan.errors import ImganError, InputError, ModelChoiceError, ModelError, OutputError, UsageError
from imgan.text import Encoded, Vocabulary, vocabulary_from_json

if TYPE_CHECKING:
    import torch

    from imgan.archs.dfgan import TextToImage

__all__ = [
    "DEFAULT_MODEL",
    "Request",
    "TextModel",
    "generate",
    "load_text_model",
    "noise",
    "read_captions",
    "run",
    "slug",
]

log = logging.getLogger(__name__)

DEFAULT_MODEL = "imgan-text2img"
STDIO = "-"
TEMPLATE_FIELDS = ("index", "slug", "seed", "n", "model")
SEPARATE_TEMPLATE = "{slug}_{seed}.png"
GRID_TEMPLATE = "{slug}.png"
MIN_SHEET_WIDTH = 256  # a contact sheet narrower than this is enlarged so its caption can be read
MAX_SEED = 2**63 - 1
NOISE_BOUND = 2.0  # DF-GAN's truncnorm(-2, 2)


@dataclass
class TextModel:
    """A loaded text-to-image model: the network, its vocabulary and sampling defaults."""

    module: TextToImage
    vocabulary: Vocabulary | None
    """None for an unconditional generator, which takes no caption."""
    name: str
    truncation: float = 1.0
    """The noise truncation the model is meant to be sampled with (DF-GAN: 0.88)."""

    @property
    def image_size(self) -> int:
        return int(self.module.image_size)

    @property
    def noise_dim(self) -> int:
        return int(self.module.noise_dim)

    def to(self, device: torch.device) -> TextModel:
        self.module.to(device)
        return self


# --------------------------------------------------------------------------------------------
# Loading


def load_text_model(model: str, *, progress: Callable[[int, int | None], None] | None = None) -> TextModel:
    """A text2img model from a registry name, an added name (``imgan models add``) or a .safetensors file."""
    from imgan import hub
    from imgan.models import is_local_model
    from imgan.user_models import missing_model_hint

    if is_local_model(model):
        path = Path(model)
        if not path.is_file():
            raise ModelError(f"{path}: no such model file")
        name = path.stem
    else:
        hint = missing_model_hint(model)
        if hint is not None:
            raise ModelChoiceError(hint)
        spec = hub.get_spec(model)
        if spec.task != "text2img":
            raise ModelChoiceError(f"model {model!r} is a {spec.task} model, not text2img; see imgan models list "
                                   "--task text2img")
        path = hub.fetch(spec, progress=progress)
        name = model
    state_dict, metadata = hub.load_state_dict(path)
    return _build(state_dict, metadata, name=name, source=path)


def _build(state_dict: dict[str, torch.Tensor], metadata: dict[str, str], *, name: str, source: Path) -> TextModel:
    from imgan.archs import build_model, detect_arch

    if metadata.get("task", "text2img") != "text2img" or metadata.get("arch", "dfgan") != "dfgan":
        raise ModelError(f"{source}: this is a {metadata.get('task', metadata.get('arch'))} model, not text2img")
    if "params" in metadata:
        params = json.loads(metadata["params"])
    else:
        detected, params = detect_arch(state_dict)
        if detected != "dfgan":
            raise ModelError(f"{source}: a {detected} checkpoint, not a text2img model")
    module = build_model("dfgan", params)
    try:
        module.load_state_dict(state_dict, strict=True)
    except RuntimeError as exc:
        raise ModelError(f"{source}: weights do not fit dfgan {params}: {str(exc).splitlines()[-1].strip()}") from exc
    module.eval().requires_grad_(False)
    vocabulary = None
    if module.encoder_kind != "none":
        if "vocabulary" not in metadata:
            raise ModelError(f"{source}: holds no vocabulary; export it with imgan train export or add it with "
                             "imgan models add")
        vocabulary = vocabulary_from_json(metadata["vocabulary"], source=f"{source} (vocabulary)")
        if vocabulary.size > int(params.get("vocab_size", 0)):
            raise ModelError(f"{source}: its vocabulary has more words than its text encoder knows")
    truncation = _truncation(metadata.get("truncation", "1.0"), source)
    return TextModel(module=module, vocabulary=vocabulary, name=name, truncation=truncation)


def _truncation(text: str, source: Path) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0.0 <= value <= 1.0:
        raise ModelError(f"{source}: metadata truncation {text[:32]!r} is not a number from 0 to 1")
    return value


# --------------------------------------------------------------------------------------------
# Captions, noise, pictures


def read_captions(text: str) -> list[str]:
    """One caption per non-blank line, stripped."""
    return [line.strip() for line in text.splitlines() if line.strip()]


def slug(caption: str, *, limit: int = 60) -> str:
    """The caption as a file-name part: ASCII lower-case words joined by '-', at most ``limit`` characters."""
    words = re.findall(r"[a-z0-9]+", caption.lower().encode("ascii", "ignore").decode("ascii"))
    text = ""
    for word in words:
        candidate = f"{text}-{word}" if text else word
        if len(candidate) > limit:
            break
        text = candidate
    return text or "caption"


def noise(seed: int, noise_dim: int, *, truncation: float) -> torch.Tensor:
    """(noise_dim,) float32 from ``seed``: normal values, those beyond +-2 drawn again, times ``truncation``."""
    import torch

    generator = torch.Generator(device="cpu").manual_seed(seed)
    values = torch.randn(noise_dim, generator=generator)
    while True:
        outside = values.abs() > NOISE_BOUND
        count = int(outside.sum())
        if not count:
            break
        values[outside] = torch.randn(count, generator=generator)
    return values * truncation


def generate(
    model: TextModel,
    encoded: Encoded | None,
    seeds: Sequence[int],
    *,
    truncation: float,
    device: torch.device,
    dtype: torch.dtype,
) -> torch.Tensor:
    """The pictures of one caption, one per seed: (len(seeds), C, S, S) in [0,1] on the CPU.

    The text encoder runs in float32; the generator in ``dtype``, again in float32 when a
    half-precision result holds NaN or Inf.
    """
    import torch

    with torch.no_grad():
        if encoded is None:
            tokens = torch.zeros(1, 1, dtype=torch.long, device=device)
            lengths = torch.ones(1, dtype=torch.long)
        else:
            tokens = torch.tensor([encoded.indices], dtype=torch.long, device=device)
            lengths = torch.tensor([len(encoded.indices)], dtype=torch.long)
        condition = model.module.embed(tokens, lengths).float()
        codes = torch.stack([noise(seed, model.noise_dim, truncation=truncation) for seed in seeds]).to(device)
        condition = condition.expand(len(seeds), -1)
        images = _forward(model, codes, condition, dtype)
    return ((images.float().cpu() + 1.0) / 2.0).clamp_(0.0, 1.0)


def _forward(model: TextModel, codes: torch.Tensor, condition: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    import torch

    generator = model.module.generator
    if dtype == torch.float32:
        return generator(codes, condition)
    with torch.autocast(device_type=codes.device.type, dtype=dtype):
        images = generator(codes, condition)
    if torch.isfinite(images).all():
        return images
    log.warning("%s: the %s result holds NaN or Inf; computing it again in fp32", model.name, dtype)
    return generator(codes, condition)


def contact_sheet(images: torch.Tensor, caption: str) -> torch.Tensor:
    """The pictures of one caption in a grid with 2 px gaps and the caption written under it: (1,3,H,W)."""
    import torch
    import torch.nn.functional as F

    from imgan.io import text_strip

    count, channels, height, width = images.shape
    columns = math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    gap = 2
    sheet_width = columns * width + (columns + 1) * gap
    factor = max(1, math.ceil(MIN_SHEET_WIDTH / sheet_width))
    if factor > 1:
        images = F.interpolate(images, scale_factor=factor, mode="nearest")
        height, width = height * factor, width * factor
    sheet = torch.ones(3, rows * height + (rows + 1) * gap, columns * width + (columns + 1) * gap)
    for k, image in enumerate(images):
        top = gap + (k // columns) * (height + gap)
        left = gap + (k % columns) * (width + gap)
        sheet[:, top:top + height, left:left + width] = image.expand(3, -1, -1) if channels == 1 else image[:3]
    strip = text_strip(caption, width=sheet.shape[-1])
    return torch.cat([sheet[None], strip], dim=-2)


# --------------------------------------------------------------------------------------------
# A whole run


@dataclass(frozen=True)
class Request:
    """What ``imgan text2img`` was asked for (values already parsed)."""

    captions: tuple[str, ...]
    model: str = DEFAULT_MODEL
    count: int = 4
    seed: int | None = None
    truncation: float | None = None
    size: int | None = None
    grid: bool = False
    strict: bool = False
    out: str | None = None
    overwrite: bool = False
    device: str = "auto"
    precision: str = "auto"


@dataclass
class _Target:
    """Where one output goes: a file, or stdout (path None)."""

    path: Path | None
    label: str = field(init=False)

    def __post_init__(self) -> None:
        self.label = "<stdout>" if self.path is None else str(self.path)


def check_request(request: Request) -> None:
    """Usage errors (exit 2) found before the model loads."""
    if not request.captions:
        raise UsageError("give captions as arguments, or --captions FILE ('-' reads them from stdin)")
    if not 1 <= request.count <= 256:
        raise UsageError(f"--n {request.count}: make 1 to 256 pictures per caption")
    if request.seed is not None and not 0 <= request.seed <= MAX_SEED - request.count:
        raise UsageError(f"--seed {request.seed}: use a whole number from 0 to {MAX_SEED - request.count}")
    if request.truncation is not None and not 0.0 <= request.truncation <= 1.0:
        raise UsageError(f"--truncation {request.truncation}: use a value from 0 to 1")
    if request.size is not None and not 8 <= request.size <= 2048:
        raise UsageError(f"--size {request.size}: use 8 to 2048 pixels")
    out = request.out
    if out == STDIO and request.count * len(request.captions) > 1 and not request.grid:
        raise UsageError("--out - writes one picture to stdout: use --n 1 with one caption, or --grid with one caption")
    if out == STDIO and request.grid and len(request.captions) > 1:
        raise UsageError("--out - writes one contact sheet to stdout: give one caption")
    if out is not None and "{" in out:
        try:
            out.format(**dict.fromkeys(TEMPLATE_FIELDS, "x"))
        except (KeyError, IndexError, ValueError) as exc:
            fields = " ".join("{" + name + "}" for name in TEMPLATE_FIELDS)
            raise UsageError(f"--out {out!r}: unknown field {exc}; the fields are {fields}") from None
    elif out is not None and out != STDIO and not _is_folder(out):
        outputs = len(request.captions) * (1 if request.grid else request.count)
        if outputs > 1:
            raise UsageError(f"--out {out!r} names one file but this run makes {outputs}; use a folder or a "
                             "template with {index}, {slug}, {seed} or {n}")


def _is_folder(out: str) -> bool:
    path = Path(out)
    return out.endswith(("/", os.sep)) or path.is_dir() or not path.suffix


def _template(request: Request) -> str:
    default = GRID_TEMPLATE if request.grid else SEPARATE_TEMPLATE
    if request.out is None:
        return default
    if "{" in request.out or request.out == STDIO:
        return request.out
    return str(Path(request.out) / default) if _is_folder(request.out) else request.out


def run(
    request: Request,
    *,
    stdout: Callable[[bytes], None],
    progress: Callable[[int, int | None], None] | None = None,
    loaded: TextModel | None = None,
) -> Iterator[dict[str, Any] | ImganError]:
    """Make and write the pictures; one record per picture written, or one error per failed caption.

    ``loaded`` is ``request.model`` already loaded (``imgan serve`` keeps models between requests).
    """
    import torch

    from imgan.engine import PRECISIONS, parse_devices

    check_request(request)
    devices = parse_devices(request.device)
    if len(devices) > 1:
        raise UsageError(f"--device {request.device}: text2img runs on one device; name one")
    device = devices[0]
    if request.precision not in ("auto", *PRECISIONS):
        raise UsageError(f"--precision {request.precision!r}: use auto, fp32, fp16 or bf16")
    dtype = torch.float16 if request.precision == "auto" and device.type == "cuda" else PRECISIONS.get(
        request.precision, torch.float32)
    model = (loaded or load_text_model(request.model, progress=progress)).to(device)
    truncation = model.truncation if request.truncation is None else request.truncation
    seed = request.seed if request.seed is not None else int.from_bytes(os.urandom(4), "big")
    if request.seed is None:
        log.info("seed %d (pass --seed %d to make these pictures again)", seed, seed)
    seeds = [seed + k for k in range(request.count)]
    size = request.size or model.image_size
    if size != model.image_size:
        log.info("%s draws %d px pictures; resizing them to %d px", model.name, model.image_size, size)
    if model.vocabulary is None:
        log.info("%s is unconditional: the captions only name the outputs", model.name)
    template = _template(request)
    written: dict[Path, int] = {}
    for index, caption in enumerate(request.captions, start=1):
        try:
            encoded = _encode(model, caption, index=index, strict=request.strict)
            images = generate(model, encoded, seeds, truncation=truncation, device=device, dtype=dtype)
            if size != model.image_size:
                from imgan.engine import resize_to

                images = resize_to(images, size, size)
            yield from _write(images, caption=caption, index=index, seeds=seeds, template=template,
                              request=request, model=model, encoded=encoded, written=written, stdout=stdout)
        except (InputError, OutputError) as error:
            yield error


def _encode(model: TextModel, caption: str, *, index: int, strict: bool) -> Encoded | None:
    """The caption as the model reads it; InputError when it cannot be read (or, strict, has unknown words)."""
    if model.vocabulary is None:
        return None
    encoded = model.vocabulary.encode(caption)
    label = f"caption {index} {caption!r}"
    if encoded.unknown:
        words = ", ".join(encoded.unknown)
        if strict:
            raise InputError(f"{label}: words {model.name} does not know: {words} (--strict)")
        if encoded.indices:
            log.warning("%s: %s does not know %s; drawing from: %s", label, model.name, words, " ".join(encoded.words))
    if not encoded.indices:
        known = " ".join(sorted(model.vocabulary.word_to_index, key=model.vocabulary.word_to_index.get)[:12])
        raise InputError(f"{label}: {model.name} knows none of its words (it knows words such as: {known})")
    if encoded.dropped:
        log.warning("%s: %s reads at most %d words; ignoring: %s", label, model.name, model.vocabulary.max_words,
                    " ".join(encoded.dropped))
    return encoded


def _write(
    images: torch.Tensor, *, caption: str, index: int, seeds: Sequence[int], template: str, request: Request,
    model: TextModel, encoded: Encoded | None, written: dict[Path, int], stdout: Callable[[bytes], None],
) -> Iterator[dict[str, Any]]:
    """Write one caption's pictures (or sheet); a record per picture. OutputError before any write."""
    base = {"caption": caption, "index": index, "model": model.name,
            "unknown": list(encoded.unknown) if encoded is not None else []}
    if request.grid:
        jobs = [(_target(template, caption=caption, index=index, seed=seeds[0], n=1, model=model.name),
                 contact_sheet(images, caption))]
    else:
        jobs = [(_target(template, caption=caption, index=index, seed=seed, n=k + 1, model=model.name),
                 images[k:k + 1]) for k, seed in enumerate(seeds)]
    for target, _ in jobs:
        _check_target(target, index=index, overwrite=request.overwrite, written=written)
    for job, (target, picture) in enumerate(jobs):
        _save(picture, target, stdout=stdout)
        if target.path is not None:
            written[target.path.resolve()] = index
        if request.grid:
            for k, seed in enumerate(seeds):
                yield {**base, "seed": seed, "file": target.label, "cell": k + 1}
        else:
            yield {**base, "seed": seeds[job], "file": target.label}


def _target(template: str, *, caption: str, index: int, seed: int, n: int, model: str) -> _Target:
    if template == STDIO:
        return _Target(None)
    name = template.format(index=index, slug=slug(caption), seed=seed, n=n, model=Path(model).stem)
    path = Path(os.path.normpath(name))
    if not path.suffix:
        path = path.with_suffix(".png")
    return _Target(path)


def _check_target(target: _Target, *, index: int, overwrite: bool, written: dict[Path, int]) -> None:
    from imgan.io import format_for_path

    if target.path is None:
        return
    format_for_path(target.path)  # OutputError for a suffix imgan cannot write
    earlier = written.get(target.path.resolve())
    if earlier is not None:
        raise OutputError(f"{target.path}: caption {earlier} already wrote it in this run; put {{index}} or "
                          "{seed} in --out")
    if target.path.exists() and not overwrite:
        raise OutputError(f"{target.path}: already exists; pass --overwrite to replace it")


def _save(picture: torch.Tensor, target: _Target, *, stdout: Callable[[bytes], None]) -> None:
    from imgan.io import Picture, encode_picture, write_picture

    result = Picture(rgb=picture, alpha=None, bit_depth=8, grayscale=False, icc_profile=None, exif=None,
                     source_format="png", name=target.label)
    if target.path is None:
        stdout(encode_picture(result, format="png"))
    else:
        write_picture(result, target.path)
