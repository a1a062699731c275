"""Super-resolution evaluation: the project's held-out protocol, and scoring folders of results.

The protocol (shared/data/README.md, section c), for each high-resolution (HR) image:

1. Box-downscale by the smallest integer factor that brings the long side to ``max_side``
   (1536) or less, as Pillow's ``Image.reduce`` does.
2. Centre-crop ``crop`` x ``crop`` (512; a side shorter than that is kept whole), trimmed to a
   multiple of the scale; the crop starts at ``(side - crop) // 2``.
3. LR = Pillow bicubic downscale by ``scale``, on the 8-bit image; bicubic baseline = Pillow
   bicubic upscale of the LR.
4. PSNR and SSIM on BT.601 luma, with ``scale`` pixels shaved off every border.

Steps 1 and 3 are exact re-implementations of Pillow's integer arithmetic on tensors (this
module never touches PIL or files itself), because ``torch.nn.functional.interpolate`` is a
different filter: Pillow's bicubic has a = -0.5 (torch: -0.75), rounds the intermediate
horizontal pass to 8 bits, and works with 22-bit fixed-point weights. On skimage's astronaut
at x4, torch's antialiased bicubic moved the baseline by 0.2 dB; this resampler gives Pillow's
bytes exactly.

Every image here is a float tensor (1,3,H,W) in [0,1]; "quantised" means its values are
multiples of 1/255, as an 8-bit file holds them.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from imgan.errors import ImganError, InputError, ModelError

if TYPE_CHECKING:
    import torch

__all__ = [
    "EvalRow",
    "bicubic_upscale",
    "box_downscale",
    "evaluate_image",
    "evaluate_model",
    "evaluate_pairs",
    "list_images",
    "mean_row",
    "pair_folders",
    "pil_bicubic_resize",
    "protocol_pair",
    "quantize",
    "score",
    "score_files",
    "score_folders",
    "score_protocol",
]

logger = logging.getLogger(__name__)

_PRECISION_BITS = 22  # Pillow's fixed-point weights for 8-bit images: 32 - 8 - 2
_BICUBIC_A = -0.5
_BICUBIC_SUPPORT = 2.0
# A prediction saved as "<stem>_x4.png" (imgan upscale's default name) still matches "<stem>".
_SCALE_SUFFIX = re.compile(r"_x\d+(?:\.\d+)?$")


@dataclass(frozen=True)
class EvalRow:
    """Scores of one image (or the mean of several): PSNR in dB and SSIM, on luma."""

    name: str
    psnr: float
    ssim: float


# --------------------------------------------------------------------------------------------
# Pillow-exact resampling on tensors


def quantize(image: torch.Tensor) -> torch.Tensor:
    """``image`` rounded to 8 bits (multiples of 1/255), as a saved 8-bit image holds it."""
    return (image.clamp(0.0, 1.0) * 255.0).round() / 255.0


def box_downscale(image: torch.Tensor, factor: int) -> torch.Tensor:
    """Mean over ``factor`` x ``factor`` cells with Pillow's ``Image.reduce`` rounding.

    The output has ``ceil(side / factor)`` pixels per side; the last row and column average
    the pixels the image has there, as Pillow does. Input is quantised to 8 bits first.
    """
    import torch
    import torch.nn.functional as F

    if factor < 1:
        raise ValueError(f"factor must be >= 1, got {factor}")
    if factor == 1:
        return quantize(image)
    levels = (image.clamp(0.0, 1.0) * 255.0).round()
    # Cell sums: exact in float32 (at most 255 * factor**2 < 2**24 for factors up to 256).
    sums = F.avg_pool2d(levels, factor, stride=factor, ceil_mode=True, divisor_override=1)
    height, width = image.shape[-2:]
    rows = _cell_sizes(height, factor, device=image.device)
    cols = _cell_sizes(width, factor, device=image.device)
    counts = rows[:, None] * cols[None, :]
    # Pillow: (sum + count // 2) * multiplier >> 24, multiplier = uint32(2**32f / (256f * count)).
    multiplier = (
        torch.tensor(2.0**32, dtype=torch.float32) / (256.0 * counts.to(torch.float32))
    ).to(torch.int64)
    value = ((sums.to(torch.int64) + counts // 2) * multiplier) >> 24
    return value.to(image.dtype) / 255.0


def _cell_sizes(side: int, factor: int, *, device: torch.device) -> torch.Tensor:
    import torch

    cells = -(-side // factor)
    sizes = torch.full((cells,), factor, dtype=torch.int64, device=device)
    sizes[-1] = side - factor * (cells - 1)
    return sizes


def pil_bicubic_resize(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Pillow's ``Image.resize((width, height), Image.BICUBIC)`` of an 8-bit image, exactly.

    Antialiased when shrinking (the filter widens by the factor). The first pass is rounded
    to 8 bits before the second, as in Pillow. Pillow runs the horizontal pass first unless
    the height loses more than twice as many pixels as the width (a rule of recent Pillow,
    python-pillow/Pillow#9549, checked against Pillow 13; older versions always went horizontal
    first: for the protocol's downscale that differs only on crops over twice as tall as wide).
    Input is quantised to 8 bits; so is the output.
    """
    if height < 1 or width < 1:
        raise ValueError(f"cannot resize to {width}x{height}")
    levels = (image.clamp(0.0, 1.0) * 255.0).round().double()
    in_height, in_width = image.shape[-2:]

    def horizontal(levels: torch.Tensor) -> torch.Tensor:
        return _resample_last_dim(levels, width) if width != in_width else levels

    def vertical(levels: torch.Tensor) -> torch.Tensor:
        if height == in_height:
            return levels
        return _resample_last_dim(levels.transpose(-1, -2), height).transpose(-1, -2)

    if height < in_height and in_height - height > 2 * (in_width - width):
        levels = horizontal(vertical(levels))
    else:
        levels = vertical(horizontal(levels))
    return levels.to(image.dtype) / 255.0


def _resample_last_dim(levels: torch.Tensor, size: int) -> torch.Tensor:
    """One Pillow 8-bit bicubic pass along the last dimension (float64 integer levels in)."""
    import torch

    indices, weights = _bicubic_coefficients(levels.shape[-1], size, device=levels.device)
    gathered = levels[..., indices]  # (..., size, taps)
    # Integer levels times 22-bit integer weights: float64 sums are exact.
    total = (gathered * weights).sum(dim=-1) + 2.0 ** (_PRECISION_BITS - 1)
    return torch.floor(total / 2.0**_PRECISION_BITS).clamp_(0.0, 255.0)


def _bicubic_coefficients(
    in_size: int, out_size: int, *, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Source indices and fixed-point weights, (out_size, taps) each, as Pillow computes them."""
    import torch

    scale = in_size / out_size
    filter_scale = max(scale, 1.0)
    support = _BICUBIC_SUPPORT * filter_scale
    taps = math.ceil(support) * 2 + 1
    inverse = 1.0 / filter_scale
    centre = (torch.arange(out_size, dtype=torch.float64) + 0.5) * scale
    first = torch.trunc(centre - support + 0.5).clamp(min=0.0)
    last = torch.trunc(centre + support + 0.5).clamp(max=float(in_size))
    count = last - first

    weights = torch.zeros(out_size, taps, dtype=torch.float64)
    total = torch.zeros(out_size, dtype=torch.float64)
    for tap in range(taps):  # left to right, so the sum rounds as Pillow's does
        weight = _bicubic((tap + first - centre + 0.5) * inverse)
        weight = torch.where(tap < count, weight, torch.zeros_like(weight))
        weights[:, tap] = weight
        total += weight
    weights = torch.where(total[:, None] != 0.0, weights / total[:, None], weights)
    scaled = weights * 2.0**_PRECISION_BITS
    fixed = torch.trunc(torch.where(weights < 0, scaled - 0.5, scaled + 0.5))
    indices = (first[:, None] + torch.arange(taps, dtype=torch.float64)).clamp(max=in_size - 1)
    return indices.long().to(device), fixed.to(device)


def _bicubic(x: torch.Tensor) -> torch.Tensor:
    """Keys' cubic convolution kernel with a = -0.5 (Pillow's BICUBIC), support 2."""
    import torch

    a = _BICUBIC_A
    x = x.abs()
    near = ((a + 2.0) * x - (a + 3.0)) * x * x + 1
    far = (((x - 5) * x + 8) * x - 4) * a
    return torch.where(x < 1.0, near, torch.where(x < 2.0, far, torch.zeros_like(x)))


# --------------------------------------------------------------------------------------------
# The protocol


def protocol_pair(
    hr: torch.Tensor, *, scale: int = 4, crop: int = 512, max_side: int = 1536
) -> tuple[torch.Tensor, torch.Tensor]:
    """The (HR crop, LR) pair the protocol makes of one image; both (1,3,h,w), quantised."""
    if hr.dim() == 3:
        hr = hr.unsqueeze(0)
    if hr.dim() != 4 or hr.shape[0] != 1:
        raise ValueError(f"expected one image (1,C,H,W), got shape {tuple(hr.shape)}")
    if scale < 1 or crop < scale or max_side < 1:
        raise ValueError(f"bad protocol: scale {scale}, crop {crop}, max_side {max_side}")
    height, width = hr.shape[-2:]
    factor = max(1, math.ceil(max(height, width) / max_side))
    image = box_downscale(hr, factor)
    height, width = image.shape[-2:]
    crop_height = min(crop, height) // scale * scale
    crop_width = min(crop, width) // scale * scale
    if crop_height == 0 or crop_width == 0:
        raise InputError(f"a {width}x{height} image is too small to downscale by {scale}")
    top, left = (height - crop_height) // 2, (width - crop_width) // 2
    hr_crop = image[..., top : top + crop_height, left : left + crop_width]
    lr = pil_bicubic_resize(hr_crop, crop_height // scale, crop_width // scale)
    return hr_crop, lr


def bicubic_upscale(lr: torch.Tensor, scale: int) -> torch.Tensor:
    """The bicubic baseline: Pillow bicubic upscale by ``scale``, quantised."""
    height, width = lr.shape[-2:]
    return pil_bicubic_resize(lr, height * scale, width * scale)


def score(
    prediction: torch.Tensor, reference: torch.Tensor, *, shave: int, name: str = ""
) -> EvalRow:
    """PSNR and SSIM of ``prediction`` against ``reference`` on luma, ``shave`` borders off."""
    from imgan import metrics

    height, width = reference.shape[-2:]
    if min(height, width) - 2 * shave < 11:  # SSIM's window
        raise InputError(
            f"{name or 'image'}: {width}x{height} is too small to score with a {shave} px shave "
            f"(SSIM needs {11 + 2 * shave} px)"
        )
    return EvalRow(
        name=name,
        psnr=metrics.psnr(prediction, reference, shave=shave, y_channel=True),
        ssim=metrics.ssim(prediction, reference, shave=shave, y_channel=True),
    )


def evaluate_pairs(
    pairs: Iterable[tuple[str, torch.Tensor, torch.Tensor]], *, shave: int
) -> list[EvalRow]:
    """Scores of (name, prediction, reference) triples; InputError if a pair differs in size."""
    rows = []
    for name, prediction, reference in pairs:
        if prediction.shape != reference.shape:
            raise InputError(
                f"{name}: prediction is {_size(prediction)} but the reference is "
                f"{_size(reference)}; they must be the same size"
            )
        rows.append(score(prediction, reference, shave=shave, name=name))
    return rows


def evaluate_image(
    upscale: Callable[[torch.Tensor], torch.Tensor],
    hr: torch.Tensor,
    *,
    name: str,
    scale: int = 4,
) -> tuple[EvalRow, EvalRow]:
    """(bicubic row, model row) for one HR image under the protocol.

    The model's output is clamped and rounded to 8 bits before scoring, as if it had been
    saved, so numbers match scoring the saved files with ``score_files``.
    """
    hr_crop, lr = protocol_pair(hr, scale=scale)
    baseline = bicubic_upscale(lr, scale)
    output = upscale(lr)
    if output.shape[-2:] != hr_crop.shape[-2:]:
        raise ModelError(
            f"{name}: the model made {_size(output)} of a {_size(lr)} input, expected "
            f"{_size(hr_crop)}; is it a x{scale} model?"
        )
    prediction = quantize(output.detach().float().cpu())
    return (
        score(baseline, hr_crop, shave=scale, name=name),
        score(prediction, hr_crop, shave=scale, name=name),
    )


def evaluate_model(
    upscale: Callable[[torch.Tensor], torch.Tensor],
    hr_images: Iterable[tuple[str, torch.Tensor]],
    *,
    scale: int = 4,
) -> dict[str, list[EvalRow]]:
    """Protocol scores of the bicubic baseline and of ``upscale`` on named HR images."""
    results: dict[str, list[EvalRow]] = {"bicubic": [], "model": []}
    for name, hr in hr_images:
        baseline, model = evaluate_image(upscale, hr, name=name, scale=scale)
        results["bicubic"].append(baseline)
        results["model"].append(model)
    return results


def mean_row(rows: Sequence[EvalRow]) -> EvalRow:
    """The row of mean PSNR and mean SSIM, named "mean"."""
    if not rows:
        raise ValueError("no rows to average")
    return EvalRow(
        name="mean",
        psnr=sum(row.psnr for row in rows) / len(rows),
        ssim=sum(row.ssim for row in rows) / len(rows),
    )


def _size(image: torch.Tensor) -> str:
    return f"{image.shape[-1]}x{image.shape[-2]}"


# --------------------------------------------------------------------------------------------
# Folders of files


def list_images(folder: str | os.PathLike[str]) -> list[tuple[str, Path]]:
    """(name, path) of every image under ``folder``, sorted; name = relative path, no suffix."""
    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"{os.fspath(folder)}: not a directory; pass a folder of images")
    found = sorted(_walk_images(root))
    if not found:
        raise InputError(f"{os.fspath(folder)}: no images found (looked for .png, .jpg, ...)")
    return found


def pair_folders(
    pred_dir: str | os.PathLike[str], ref_dir: str | os.PathLike[str]
) -> tuple[list[tuple[str, Path, Path]], list[str]]:
    """Match predictions to references by relative path and stem, ignoring the extension.

    Returns the (name, prediction, reference) pairs and one message per reference that has no
    prediction or several. A prediction named ``<stem>_x<N>`` (imgan upscale's default) also
    matches ``<stem>`` when no exact name exists. Predictions without a reference are ignored.
    """
    references = list_images(ref_dir)
    predictions: dict[str, list[Path]] = {}
    fallback: dict[str, list[Path]] = {}
    for key, path in list_images(pred_dir):
        predictions.setdefault(key, []).append(path)
        fallback.setdefault(_SCALE_SUFFIX.sub("", key), []).append(path)

    pairs: list[tuple[str, Path, Path]] = []
    problems: list[str] = []
    used: set[Path] = set()
    for key, reference in references:
        candidates = predictions.get(key) or fallback.get(key, [])
        if len(candidates) == 1:
            pairs.append((key, candidates[0], reference))
            used.add(candidates[0])
        elif not candidates:
            problems.append(
                f"{reference}: no prediction named {key}.* in {os.fspath(pred_dir)}"
            )
        else:
            names = ", ".join(path.name for path in candidates)
            problems.append(f"{reference}: several predictions match ({names}); keep one")
    unused = sum(len(paths) for paths in predictions.values()) - len(used)
    if unused:
        logger.info("%d prediction(s) in %s have no reference; ignored", unused, pred_dir)
    return pairs, problems


def score_files(
    prediction: str | os.PathLike[str],
    reference: str | os.PathLike[str],
    *,
    shave: int,
    name: str | None = None,
) -> EvalRow:
    """Read two image files and score them; InputError if unreadable or of different sizes."""
    from imgan.io import read_picture

    predicted = read_picture(prediction).rgb
    expected = read_picture(reference).rgb
    if predicted.shape != expected.shape:
        raise InputError(
            f"{os.fspath(prediction)}: is {_size(predicted)} but its reference "
            f"{os.fspath(reference)} is {_size(expected)}; they must be the same size"
        )
    return score(predicted, expected, shave=shave, name=name or os.fspath(reference))


def _walk_images(root: Path) -> Iterator[tuple[str, Path]]:
    from imgan.io import is_image_path

    for path in root.rglob("*"):
        if path.is_file() and is_image_path(path) and not path.name.startswith("."):
            key = path.relative_to(root).with_suffix("").as_posix()
            yield key, path


# --------------------------------------------------------------------------------------------
# Whole runs, one result or one failure per image

Scored = tuple[str, dict[str, EvalRow]]
"""An image's name and its rows by column group ("" for a folder pair; "bicubic" and "model")."""


def score_folders(
    pred_dir: str | os.PathLike[str], ref_dir: str | os.PathLike[str], *, shave: int
) -> Iterator[Scored | ImganError]:
    """Score every prediction against its reference (``pair_folders``); a failure is yielded, not raised."""
    pairs, problems = pair_folders(pred_dir, ref_dir)
    yield from (InputError(problem) for problem in problems)
    for name, predicted, reference in pairs:
        try:
            yield name, {"": score_files(predicted, reference, shave=shave, name=name)}
        except ImganError as error:
            yield error


def score_protocol(
    upscale: Callable[[torch.Tensor], torch.Tensor], images: Iterable[tuple[str, Path]], *, scale: int
) -> Iterator[Scored | ImganError]:
    """The held-out protocol on (name, path) images (``list_images``): the bicubic baseline and ``upscale``."""
    from imgan.io import read_picture

    for name, path in images:
        logger.info("evaluating %s", name)
        try:
            baseline, scored = evaluate_image(upscale, read_picture(path).rgb, name=name, scale=scale)
        except ImganError as error:
            yield error
            continue
        yield name, {"bicubic": baseline, "model": scored}
