"""Line drawings from photos, in the style of the edges2shoes sketches pix2pix was trained on.

The edges2shoes inputs are HED edge maps post-processed into thin black lines on white at
256 x 256: object outlines and the main internal edges, no texture, no shading. No learned edge
detector can be downloaded here, so :func:`sketch_from_photo` is a classical pipeline tuned to
that look. Lengths below are given in pixels of a 256 px frame (the photo's longer side scaled
to 256), so every parameter scales with the photo's size; the detector itself runs on a working
copy whose longer side is ``WORK_SIDE`` (``scale`` = ``WORK_SIDE`` / 256 working pixels per
frame pixel), so its cost does not depend on the photo's size.

1. Resize (area for shrinking, bilinear for enlarging) so the longer side is ``WORK_SIDE``.
2. Edge-preserving smoothing: a self-guided filter on each of R, G, B (radius
   ``GUIDED_RADIUS``, regulariser ``GUIDED_EPS``, a variance in [0,1] units; its coefficients
   are computed at half resolution, as in the "fast guided filter"). Regions whose local
   contrast is below about sqrt(``GUIDED_EPS``) are flattened, stronger boundaries are kept.
3. Colour gradient: Gaussian derivatives (sigma ``SIGMA``) of each channel, combined with Di
   Zenzo's structure tensor (largest eigenvalue and its eigenvector), so a boundary between two
   colours of equal brightness counts too. Magnitudes are normalised so that a grey step of
   height ``c`` gives about ``c``.
4. Scale consistency: the edge strength is the weighted geometric mean m^(3/4) M^(1/4) of the
   magnitudes at ``SIGMA`` (m) and at twice ``SIGMA`` (M); texture that only exists at the fine
   scale is damped, boundaries are not, and fine internal lines still pass.
5. Thresholds from the image's own statistics: ``high`` is the largest of an absolute floor
   (``MIN_CONTRAST``), ``NOISE_FACTOR`` times the median magnitude (the noise/texture level)
   and the ``EDGE_PERCENTILE`` percentile of the magnitudes (so busy photos do not turn
   black); ``low`` = ``LOW_RATIO`` * ``high``.
6. Non-maximum suppression (OpenCV's Canny on the precomputed gradients) keeps 1 px ridges
   above ``low``. Hysteresis is done on whole 8-connected contours: a contour is kept when it
   reaches ``high`` somewhere and has at least ``MIN_LENGTH`` pixels, or when it is at least
   ``LONG_LENGTH`` long with a mean magnitude of ``LONG_RATIO`` * ``high`` (long, faint object
   outlines survive; short texture fragments do not).
7. Rendering: the distance to the nearest contour pixel is resized to the output size and
   turned into antialiased black lines ``LINE_WIDTH`` frame pixels wide (at least one output
   pixel), so lines are smooth at any size and about 1.5 px wide once the drawing is scaled to
   256 px.

The result is deterministic (fixed filters, no randomness) and fast, since the detector always
works on a ``WORK_SIDE`` image: on two CPU cores about 20-30 ms for a 256 x 256 image, 60 ms for
a 2000 x 1500 photo and 0.2 s for 4000 x 3000 (mostly the resizes).
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch

__all__ = ["WORK_SIDE", "sketch_from_photo"]

WORK_SIDE = 384
"""Longer side, in pixels, of the working image the detector runs on."""
FRAME = 256
"""Lengths below are in pixels of this frame (edges2shoes' 256 px images)."""
GUIDED_RADIUS = 2.0  # frame px
GUIDED_EPS = 0.01  # variance; contrast below about 0.1 is smoothed away
SIGMA = 1.0  # frame px
MIN_CONTRAST = 0.06  # the weakest step that can seed a line (about 15 of 255 grey levels)
NOISE_FACTOR = 4.0
EDGE_PERCENTILE = 92.0
LOW_RATIO = 0.4
MIN_LENGTH = 12.0  # frame px
LONG_LENGTH = 40.0  # frame px
LONG_RATIO = 0.6
LINE_WIDTH = 1.5  # frame px

_CHANNEL_MEAN = np.full((1, 3), 1 / 3, np.float32)
_SCALE = 1000.0  # cv2.Canny takes int16 gradients: ``high`` is mapped to this value


def _resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Area resampling when shrinking, bilinear when enlarging."""
    if image.shape[1] == width and image.shape[0] == height:
        return image
    shrink = width < image.shape[1] or height < image.shape[0]
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def _box(image: np.ndarray, radius: int) -> np.ndarray:
    """Mean over a (2 radius + 1)^2 window, replicating the border."""
    size = 2 * radius + 1
    return cv2.boxFilter(image, -1, (size, size), borderType=cv2.BORDER_REPLICATE)


def _smooth(image: np.ndarray, scale: float) -> np.ndarray:
    """Self-guided filter per channel, coefficients at half resolution: texture flattened, boundaries kept."""
    height, width = image.shape[:2]
    small = _resize(image, max(1, width // 2), max(1, height // 2))
    radius = max(1, round(GUIDED_RADIUS * scale / 2))
    mean = _box(small, radius)
    variance = np.maximum(_box(small * small, radius) - mean * mean, 0.0)
    gain = variance / (variance + np.float32(GUIDED_EPS))
    offset = mean - gain * mean
    gain = cv2.resize(_box(gain, radius), (width, height), interpolation=cv2.INTER_LINEAR)
    offset = cv2.resize(_box(offset, radius), (width, height), interpolation=cv2.INTER_LINEAR)
    return gain * image + offset


def _gradient(image: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Di Zenzo colour gradient: unit direction (x, y) and magnitude (a grey step of c gives about c)."""
    blurred = cv2.GaussianBlur(image, (0, 0), sigma, borderType=cv2.BORDER_REPLICATE)
    # The 3x3 Sobel of a Gaussian-smoothed step of height c peaks at about 8c / sqrt(2 pi s^2).
    norm = math.sqrt(2 * math.pi * (sigma**2 + 0.5)) / 8.0
    gx = cv2.Sobel(blurred, cv2.CV_32F, 1, 0, ksize=3, scale=norm, borderType=cv2.BORDER_REPLICATE)
    gy = cv2.Sobel(blurred, cv2.CV_32F, 0, 1, ksize=3, scale=norm, borderType=cv2.BORDER_REPLICATE)
    gxx = cv2.transform(gx * gx, _CHANNEL_MEAN)
    gyy = cv2.transform(gy * gy, _CHANNEL_MEAN)
    gxy = cv2.transform(gx * gy, _CHANNEL_MEAN)
    diff = gxx - gyy
    largest = 0.5 * (gxx + gyy + np.sqrt(diff * diff + 4 * gxy * gxy))
    # Eigenvector of the largest eigenvalue: of its two formulas, the one that cannot vanish.
    horizontal = diff >= 0
    vx = np.where(horizontal, largest - gyy, gxy)
    vy = np.where(horizontal, gxy, largest - gxx)
    length = np.sqrt(vx * vx + vy * vy) + np.float32(1e-12)
    return vx / length, vy / length, np.sqrt(largest)


def _coarse_magnitude(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gradient magnitude at twice ``sigma``, computed at half resolution."""
    height, width = image.shape[:2]
    half = _resize(image, max(1, width // 2), max(1, height // 2))
    _, _, magnitude = _gradient(half, sigma)
    return cv2.resize(magnitude, (width, height), interpolation=cv2.INTER_LINEAR)


def _high_threshold(magnitude: np.ndarray) -> float:
    """The high hysteresis threshold, from the image's own gradient statistics."""
    sample = magnitude[::2, ::2].ravel()
    median = float(np.median(sample))
    percentile = float(np.percentile(sample, EDGE_PERCENTILE))
    return max(MIN_CONTRAST, NOISE_FACTOR * median, percentile)


def _link(ridges: np.ndarray, strength: np.ndarray, high: float, scale: float) -> np.ndarray:
    """Hysteresis on whole contours: keep strong ones that are not tiny, and long faint ones."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(ridges, connectivity=8)
    length = stats[:, cv2.CC_STAT_AREA]
    on = ridges > 0
    seeded = np.bincount(labels[on & (strength >= high)], minlength=count) > 0
    mean = np.bincount(labels[on], weights=strength[on], minlength=count) / np.maximum(length, 1)
    keep = (seeded & (length >= MIN_LENGTH * scale)) | (
        (length >= LONG_LENGTH * scale) & (mean >= LONG_RATIO * high)
    )
    keep[0] = False
    return keep[labels]


def _edge_mask(image: np.ndarray, scale: float) -> np.ndarray:
    """Thin (1 px) contours (bool) of a working-size float32 RGB image."""
    smooth = _smooth(image, scale)
    sigma = SIGMA * scale
    cos, sin, magnitude = _gradient(smooth, sigma)
    # Weighted geometric mean magnitude^(3/4) * coarse^(1/4).
    strength = np.sqrt(np.sqrt(magnitude * magnitude * magnitude * _coarse_magnitude(smooth, sigma)))
    high = _high_threshold(strength)
    scaled = np.minimum(strength * np.float32(_SCALE / high), np.float32(32000.0))
    dx = np.rint(scaled * cos).astype(np.int16)
    dy = np.rint(scaled * sin).astype(np.int16)
    low = LOW_RATIO * _SCALE
    ridges = cv2.Canny(dx, dy, low, low, L2gradient=True)
    return _link(ridges, strength, high, scale)


def _render(edges: np.ndarray, height: int, width: int) -> np.ndarray:
    """Ink coverage (H,W) in [0,1]: antialiased lines along ``edges``, drawn at the output size."""
    factor = max(height, width) / max(edges.shape)  # output pixels per working pixel
    if not edges.any():
        return np.zeros((height, width), np.float32)
    distance = cv2.distanceTransform((~edges).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    distance = cv2.resize(distance, (width, height), interpolation=cv2.INTER_LINEAR) * np.float32(factor)
    half_width = max(1.0, LINE_WIDTH * max(height, width) / FRAME) / 2
    return np.clip(np.float32(half_width + 0.5) - distance, 0.0, 1.0)


def sketch_from_photo(rgb: torch.Tensor) -> torch.Tensor:
    """Black line drawing on white of a (1,3,H,W) [0,1] photo: (1,3,H,W) float32, three equal channels."""
    if rgb.dim() != 4 or rgb.shape[0] != 1 or rgb.shape[1] not in (1, 3):
        raise ValueError(f"expected a (1,3,H,W) image, got {tuple(rgb.shape)}")
    height, width = rgb.shape[-2:]
    image = rgb[0].detach().to("cpu", torch.float32).numpy().transpose(1, 2, 0)
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    factor = WORK_SIDE / max(height, width)
    work = _resize(np.ascontiguousarray(image), max(1, round(width * factor)), max(1, round(height * factor)))
    work = np.clip(work, 0.0, 1.0)
    edges = _edge_mask(work, WORK_SIDE / FRAME)
    paper = 1.0 - _render(edges, height, width)
    return torch.from_numpy(np.ascontiguousarray(np.broadcast_to(paper, (1, 3, height, width))))
