"""Find frontal faces offline, and parse face boxes given by hand.

The detector is scikit-image's bundled LBP frontal-face cascade (OpenCV's
``lbpcascade_frontalface``), the only face model available without a download. Its box spans
roughly brows to chin and ear to ear. The cascade alone fires on many textured non-faces, so
each candidate must pass four tests, tuned on skimage's astronaut, grace_hopper, the
``lfw_subset`` faces and about twenty faceless sample images:

1. Enough raw hits: the cascade runs on the image and on its mirror image (a face is
   symmetric, most false hits are not), raw hits are clustered by overlap, and a cluster needs
   ``MIN_HITS`` hits in all with at least ``MIN_HITS_PER_PASS`` from each of the two passes.
2. Size: the face is at least ``MIN_FACE_FRACTION`` of the image's shorter side.
3. Structure: band-pass (difference of Gaussians) contrast inside the box; faces have eyes,
   brows and a mouth, while smooth blobs with grain (a helmet visor) do not.
4. Eye band: the band across the eyes is not much brighter than the cheeks below it.

scikit-image, scipy and numpy are imported inside the functions, so importing this module
stays cheap.
"""

from __future__ import annotations

import logging
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from imgan.errors import InputError, UsageError

if TYPE_CHECKING:
    import numpy as np

__all__ = ["FaceBox", "detect_faces", "parse_face_box"]

log = logging.getLogger(__name__)

WORK_SHORT_SIDE = 512
"""Detection runs on a grayscale copy whose shorter side is at most this (the longer side at most
``WORK_LONG_SIDE``); larger images are downscaled, smaller ones are used as they are."""
WORK_LONG_SIDE = 1024
CASCADE_WINDOW = 24
"""The cascade's own window size: nothing smaller than this can be detected."""
MIN_FACE_FRACTION = 0.05
"""Smallest face searched for, as a fraction of the image's shorter side (25 px at 512)."""
SCALE_FACTOR = 1.1
STEP_RATIO = 1.0
GROUP_IOU = 0.3
"""Raw hits overlapping by at least this intersection-over-union belong to the same face."""
MIN_HITS = 14
MIN_HITS_PER_PASS = 4
MIN_STRUCTURE = 0.05
"""Band-pass contrast over mean brightness in the box centre; sharp faces measured 0.08-0.19, blurry
upscaled LFW faces 0.057 and up, a helmet visor 0.026-0.047, cells 0.02."""
FINE_SIGMA_MIN = 1.0
"""The band-pass starts at a blur of at least one pixel: pixel noise and aliasing are not structure."""
MIN_EYE_CONTRAST = -0.1
"""(cheeks - eye band) / mean of the two; faces measured 0.03-0.15, a space-shuttle model -0.4."""


@dataclass(frozen=True)
class FaceBox:
    """A face in pixel coordinates of its image: the cascade's box, about brows to chin."""

    x: int
    y: int
    width: int
    height: int
    score: float = 1.0
    """Raw cascade hits behind this box (both passes), or 1.0 for a box given by hand."""

    @property
    def center(self) -> tuple[float, float]:
        """(x, y) of the box centre."""
        return self.x + self.width / 2, self.y + self.height / 2

    def __str__(self) -> str:
        return f"{self.x},{self.y},{self.width},{self.height}"


_BOX_TEXT = re.compile(r"^\s*(-?\d+)\s*,\s*(-?\d+)\s*,\s*(-?\d+)\s*,\s*(-?\d+)\s*$")


MAX_BOX_COORDINATE = 2**31 - 1
"""Largest |x|, |y|, width or height accepted in ``--face``: the largest side a PNG can have."""


def parse_face_box(text: str) -> FaceBox:
    """``"x,y,w,h"`` (pixels, top-left corner and size) -> FaceBox; UsageError for anything else."""
    match = _BOX_TEXT.match(text)
    if match is None:
        raise UsageError(f"--face {text!r}: give four integers x,y,w,h (left, top, width, height in pixels)")
    # Length first: int() refuses strings of more than 4300 digits with a ValueError.
    if any(len(group.lstrip("-")) > len(str(MAX_BOX_COORDINATE)) or abs(int(group)) > MAX_BOX_COORDINATE
           for group in match.groups()):
        shown = text if len(text) <= 60 else text[:57] + "..."
        raise UsageError(f"--face {shown!r}: numbers must lie within +-{MAX_BOX_COORDINATE} pixels")
    x, y, width, height = (int(group) for group in match.groups())
    if width <= 0 or height <= 0:
        raise UsageError(f"--face {text!r}: width and height must be positive")
    return FaceBox(x, y, width, height)


# --------------------------------------------------------------------------------------------
# Detection


def _to_gray(rgb: np.ndarray) -> np.ndarray:
    """HxW, HxWx3 or HxWx4, uint8 / uint16 / float in [0,1] -> float64 luma in [0,1]."""
    import numpy as np

    image = np.asarray(rgb)
    if image.ndim == 3 and image.shape[2] in (3, 4):
        image = image[..., :3]
    elif image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    elif image.ndim != 2:
        raise InputError(f"face detection needs an HxW or HxWx3 image, not shape {image.shape}")
    if image.dtype == np.uint8:
        scale = 1 / 255
    elif image.dtype == np.uint16:
        scale = 1 / 65535
    elif np.issubdtype(image.dtype, np.floating):
        scale = 1.0
    else:
        raise InputError(f"face detection needs uint8 or float pixels, not {image.dtype}")
    image = image.astype(np.float64) * scale
    if image.ndim == 3:
        image = image @ np.array([0.299, 0.587, 0.114])
    return np.clip(np.nan_to_num(image), 0.0, 1.0)


def _iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise intersection-over-union of (N,4) and (M,4) x,y,w,h boxes."""
    import numpy as np

    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 0] + a[:, None, 2], b[None, :, 0] + b[None, :, 2])
    y2 = np.minimum(a[:, None, 1] + a[:, None, 3], b[None, :, 1] + b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = a[:, 2] * a[:, 3]
    area_b = b[:, 2] * b[:, 3]
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def _overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over the smaller box's area: 1.0 when one box lies inside the other."""
    width = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    height = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    return float(width * height / min(a[2] * a[3], b[2] * b[3]))


def _clusters(boxes: np.ndarray) -> list[np.ndarray]:
    """Indices of connected groups of boxes, linked where IoU >= GROUP_IOU."""
    import numpy as np

    linked = _iou_matrix(boxes, boxes) >= GROUP_IOU
    parent = list(range(len(boxes)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in zip(*np.nonzero(np.triu(linked, 1)), strict=True):
        parent[root(int(i))] = root(int(j))
    groups: dict[int, list[int]] = {}
    for i in range(len(boxes)):
        groups.setdefault(root(i), []).append(i)
    return [np.array(members) for members in groups.values()]


def _raw_hits(gray: np.ndarray, min_side: int, max_side: int) -> np.ndarray:
    """(N,4) x,y,w,h cascade hits, every one kept (no grouping by skimage)."""
    import numpy as np
    from skimage.data import lbp_frontal_face_cascade_filename
    from skimage.feature import Cascade

    # A cascade per call (loading takes ~20 ms): calls can then run in threads without sharing one.
    cascade = Cascade(lbp_frontal_face_cascade_filename())
    hits = cascade.detect_multi_scale(
        gray, scale_factor=SCALE_FACTOR, step_ratio=STEP_RATIO, min_size=(min_side, min_side),
        max_size=(max_side, max_side), min_neighbor_number=1,
        intersection_score_threshold=2.0,  # above any possible score: skimage merges nothing
    )
    return np.array([(h["c"], h["r"], h["width"], h["height"]) for h in hits], dtype=np.float64).reshape(-1, 4)


def _structure(patch: np.ndarray, box: np.ndarray) -> float:
    """Band-pass (difference of Gaussians) contrast over mean brightness in the box's centre."""
    from scipy.ndimage import gaussian_filter

    x, y, w, h = box
    fine = gaussian_filter(patch, max(FINE_SIGMA_MIN, w / 48))
    coarse = gaussian_filter(patch, w / 12)
    rows = slice(int(y + 0.2 * h), int(y + 0.8 * h))
    cols = slice(int(x + 0.15 * w), int(x + 0.85 * w))
    band = fine[rows, cols] - coarse[rows, cols]
    return float(band.std() / max(float(fine[rows, cols].mean()), 1e-3))


def _eye_contrast(gray: np.ndarray, box: np.ndarray) -> float:
    """How much darker the band across the eyes is than the cheeks below (about 0 to 0.2 for faces)."""
    x, y, w, h = box
    eyes = gray[int(y + 0.22 * h):int(y + 0.48 * h), int(x + 0.1 * w):int(x + 0.9 * w)].mean()
    cheeks = gray[int(y + 0.52 * h):int(y + 0.72 * h), int(x + 0.2 * w):int(x + 0.8 * w)].mean()
    return float(2 * (cheeks - eyes) / max(cheeks + eyes, 1e-6))


def detect_faces(rgb: np.ndarray) -> list[FaceBox]:
    """Frontal faces in an HxWx3 image (uint8, or float in [0,1]), left to right; [] when none."""
    import numpy as np
    from skimage.transform import resize

    start = time.perf_counter()
    gray = _to_gray(rgb)
    height, width = gray.shape
    factor = min(1.0, WORK_SHORT_SIDE / min(height, width), WORK_LONG_SIDE / max(height, width))
    if factor < 1.0:
        gray = resize(gray, (max(1, round(height * factor)), max(1, round(width * factor))), anti_aliasing=True)
    work_h, work_w = gray.shape
    short = min(work_h, work_w)
    min_side = max(CASCADE_WINDOW, round(MIN_FACE_FRACTION * short))
    if short < min_side:
        return []

    # The cascade releases the GIL: both passes run at once on two cores.
    with ThreadPoolExecutor(max_workers=2) as pool:
        passes = pool.map(lambda image: _raw_hits(image, min_side, short), (gray, np.ascontiguousarray(gray[:, ::-1])))
        direct, mirrored = list(passes)
    mirrored[:, 0] = work_w - mirrored[:, 0] - mirrored[:, 2]
    hits = np.concatenate([direct, mirrored])
    from_mirror = np.arange(len(hits)) >= len(direct)

    candidates: list[tuple[int, np.ndarray]] = []
    for members in _clusters(hits) if len(hits) else []:
        in_mirror = int(from_mirror[members].sum())
        count = len(members)
        if count < MIN_HITS or min(in_mirror, count - in_mirror) < MIN_HITS_PER_PASS:
            continue
        candidates.append((count, hits[members].mean(axis=0)))

    faces: list[tuple[int, np.ndarray]] = []
    for count, box in sorted(candidates, key=lambda item: -item[0]):
        side = box[2]
        # Pad the patch so the band-pass is not distorted by the image border.
        x0, y0 = int(max(0, box[0] - side / 4)), int(max(0, box[1] - side / 4))
        x1, y1 = int(min(work_w, box[0] + side * 1.25)), int(min(work_h, box[1] + side * 1.25))
        patch = gray[y0:y1, x0:x1]
        local = box - np.array([x0, y0, 0, 0])
        structure = _structure(patch, local)
        eyes = _eye_contrast(patch, local)
        overlaps = any(_overlap(box, kept) > 0.3 for _, kept in faces)
        log.debug("face candidate %s: %d hits, structure %.3f, eyes %.3f%s", np.round(box / factor), count,
                  structure, eyes, ", overlaps a stronger one" if overlaps else "")
        if structure >= MIN_STRUCTURE and eyes >= MIN_EYE_CONTRAST and not overlaps:
            faces.append((count, box))

    result = []
    for count, box in sorted(faces, key=lambda item: item[1][0]):
        x, y, w, h = (float(v) / factor for v in box)
        left, top = max(0, round(x)), max(0, round(y))
        right, bottom = min(width, round(x + w)), min(height, round(y + h))
        result.append(FaceBox(left, top, right - left, bottom - top, float(count)))
    log.debug("%d face(s) in %dx%d in %.2fs", len(result), width, height, time.perf_counter() - start)
    return result
