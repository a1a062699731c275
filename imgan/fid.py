"""FID and KID between two sets of images, on Inception-v3 features (or another extractor's).

FID (Heusel et al. 2017): the Fréchet distance between Gaussians fitted to the two feature sets,
||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)), computed in float64 with scipy's ``sqrtm`` as
pytorch-fid does (a near-singular product is retried with 1e-6 added to both diagonals, and an
imaginary part above 1e-3 is an error). KID (Bińkowski et al. 2018): the unbiased MMD^2 with the
cubic polynomial kernel (x.y / d + 1)^3, averaged over 100 random subsets of 1000 images from each
side (fewer when a side has fewer images), with its standard deviation, as torch-fidelity does.

Features: ``inception-v3-fid`` (pytorch-fid's port of TensorFlow's FID Inception, ``imgan.archs.
inception``: 299x299 bilinear resize, pool3, 2048-d) through the registry, so it is downloaded once,
checked against its digest and named in a clear error offline; or a registry name / .safetensors
file of imgan's glyph classifier (``imgan-text2img-classifier``: 128-d, for 32 px glyphs, where
Inception's features say little). Images are read as 8-bit RGB in [0,1] (alpha dropped,
grayscale replicated), one at a time, so folders may mix sizes.

Statistics files (``--save-stats``) are .npz files with ``mu`` and ``sigma`` (pytorch-fid's
format, so its files load too), plus ``features`` (for KID) and ``extractor`` (refused when it
differs from the one in use); they are read with ``allow_pickle=False``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imgan.errors import InputError, ModelChoiceError, ModelError, UsageError

if TYPE_CHECKING:
    import numpy as np
    import torch
    from torch import nn

__all__ = [
    "DEFAULT_EXTRACTOR",
    "FeatureSet",
    "compare",
    "frechet_distance",
    "kernel_distance",
    "load_extractor",
    "load_stats",
    "save_stats",
]

log = logging.getLogger(__name__)

DEFAULT_EXTRACTOR = "inception-v3-fid"
KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000
BATCH_SIZE = 50
_SQRTM_EPS = 1e-6


@dataclass
class FeatureSet:
    """The features of one image set (or only their statistics, from a pytorch-fid file)."""

    mu: np.ndarray
    sigma: np.ndarray
    count: int
    extractor: str
    features: np.ndarray | None = None

    @classmethod
    def of(cls, features: np.ndarray, *, extractor: str) -> FeatureSet:
        import numpy as np

        if len(features) < 2:
            raise InputError(f"FID needs at least 2 images per side, not {len(features)}")
        return cls(mu=features.mean(axis=0), sigma=np.cov(features, rowvar=False), count=len(features),
                   extractor=extractor, features=features)


# --------------------------------------------------------------------------------------------
# Distances


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """FID of two Gaussians (float64; see the module docstring)."""
    import numpy as np
    from scipy import linalg

    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    sigma1, sigma2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise InputError(f"the two feature sets differ in size ({mu1.shape[0]} and {mu2.shape[0]} features)")
    diff = mu1 - mu2
    with warnings.catch_warnings():  # fewer images than features make the product singular: expected
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(sigma1.dot(sigma2))
        if not np.isfinite(covmean).all():
            log.info("FID: the covariance product is nearly singular; adding %g to the diagonals", _SQRTM_EPS)
            offset = np.eye(sigma1.shape[0]) * _SQRTM_EPS
            covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            largest = np.max(np.abs(covmean.imag))
            raise InputError(f"FID: the matrix square root has an imaginary part of {largest:.3g}; use more images "
                             "(at least as many as features helps)")
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def kernel_distance(features1: np.ndarray, features2: np.ndarray, *, subsets: int = KID_SUBSETS,
                    subset_size: int = KID_SUBSET_SIZE, seed: int = 0) -> tuple[float, float]:
    """KID: mean and standard deviation of the unbiased MMD^2 over random subsets (see the module docstring)."""
    import numpy as np

    size = min(subset_size, len(features1), len(features2))
    if size < 2:
        raise InputError("KID needs at least 2 images per side")
    if size < subset_size:
        log.info("KID: subsets of %d images (a side has fewer than %d)", size, subset_size)
    rng = np.random.RandomState(seed)
    dims = features1.shape[1]
    values = np.zeros(subsets)
    for index in range(subsets):
        x = features1[rng.choice(len(features1), size, replace=False)].astype(np.float64)
        y = features2[rng.choice(len(features2), size, replace=False)].astype(np.float64)
        k_xx = (x @ x.T / dims + 1) ** 3
        k_yy = (y @ y.T / dims + 1) ** 3
        k_xy = (x @ y.T / dims + 1) ** 3
        within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (size * (size - 1))
        values[index] = within - 2 * k_xy.sum() / (size * size)
    return float(values.mean()), float(values.std())


# --------------------------------------------------------------------------------------------
# Extractors


@dataclass
class Extractor:
    """A feature network: (B,3,H,W) in [0,1] -> (B, D)."""

    name: str
    network: nn.Module
    device: torch.device

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        import torch

        with torch.no_grad():
            return self.network(images.to(self.device)).double().cpu()


def load_extractor(name: str, *, device: torch.device,
                   progress: Callable[[int, int | None], None] | None = None) -> Extractor:
    """``inception-v3-fid`` (default), another registry name of task ``features``, or a classifier file."""
    from imgan import hub
    from imgan.models import is_local_model

    if is_local_model(name):
        path = Path(name)
        if not path.is_file():
            raise ModelError(f"--features {name}: no such file")
        network = _classifier(*hub.load_state_dict(path), source=str(path))
        label = path.stem
    else:
        spec = hub.get_spec(name)
        if spec.task != "features":
            raise ModelChoiceError(f"--features {name}: a {spec.task} model, not a feature extractor; use "
                                   f"{DEFAULT_EXTRACTOR} or imgan-text2img-classifier")
        path = hub.fetch(spec, progress=progress)
        state_dict, metadata = hub.load_state_dict(path, key=spec.key or None)
        if spec.arch == "inception-fid":
            from imgan.archs.inception import FIDInception

            network = FIDInception()
            try:
                network.load_weights(state_dict)
            except RuntimeError as exc:
                raise ModelError(f"{path}: not the FID Inception weights ({str(exc).splitlines()[0]})") from exc
        else:
            network = _classifier(state_dict, {**metadata, "params": json.dumps(dict(spec.params))}, source=str(path))
        label = name
    return Extractor(name=label, network=network.eval().requires_grad_(False).to(device), device=device)


def _classifier(state_dict: dict[str, torch.Tensor], metadata: dict[str, str], *, source: str) -> nn.Module:
    from torch import nn

    from imgan.archs.classifier import GlyphClassifier

    network = metadata.get("network", "glyph-classifier")
    if network != "glyph-classifier":
        raise ModelError(f"{source}: a {network} network, not a feature extractor imgan knows")
    try:
        params = json.loads(metadata.get("params", "{}"))
        allowed = {"num_classes", "num_colours", "num_backgrounds", "num_features", "feature_size", "image_size"}
        if not isinstance(params, dict) or set(params) - allowed or not all(
                isinstance(value, int) and 0 < value <= 4096 for value in params.values()):
            raise ValueError(f"params {params!r}")
        classifier = GlyphClassifier(**params)
        classifier.load_state_dict({key: value.float() for key, value in state_dict.items()}, strict=True)
    except (ValueError, TypeError, RuntimeError) as exc:
        raise ModelError(f"{source}: not a glyph classifier imgan can load ({str(exc).splitlines()[0]})") from exc

    class Features(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.classifier = classifier
            self.feature_size = classifier.feature_size

        def forward(self, images: torch.Tensor) -> torch.Tensor:
            return self.classifier.features(images)

    return Features()


# --------------------------------------------------------------------------------------------
# Folders and statistics files


def folder_features(folder: str | os.PathLike[str], extractor: Extractor, *, batch_size: int = BATCH_SIZE,
                    on_image: Callable[[], None] | None = None) -> np.ndarray:
    """(N, D) features of every image under ``folder`` (sorted, recursively)."""
    import numpy as np
    import torch

    from imgan.io import read_picture
    from imgan.tasks.evaluate import list_images

    paths = [path for _, path in list_images(folder)]
    chunks: list[np.ndarray] = []
    batch: list[torch.Tensor] = []

    def flush() -> None:
        if batch:
            chunks.append(extractor(torch.cat(batch)).numpy())
            batch.clear()

    for path in paths:
        picture = read_picture(path)
        image = picture.rgb
        if batch and image.shape[-2:] != batch[0].shape[-2:]:
            flush()
        batch.append(image)
        if len(batch) == batch_size:
            flush()
        if on_image is not None:
            on_image()
    flush()
    return np.concatenate(chunks)


def tensor_features(images: Iterable[torch.Tensor], extractor: Extractor) -> np.ndarray:
    """(N, D) features of batches of (B,3,H,W) images in [0,1]."""
    import numpy as np

    return np.concatenate([extractor(batch).numpy() for batch in images])


def save_stats(path: str | os.PathLike[str], features: FeatureSet) -> None:
    """Write ``mu``, ``sigma``, ``features`` and ``extractor`` to an .npz file, atomically."""
    import io

    import numpy as np

    from imgan.files import write_atomically

    buffer = io.BytesIO()
    arrays: dict[str, Any] = {"mu": features.mu, "sigma": features.sigma, "extractor": np.array(features.extractor)}
    if features.features is not None:
        arrays["features"] = features.features.astype(np.float32)
    np.savez_compressed(buffer, **arrays)
    write_atomically(Path(path), buffer.getvalue())


def load_stats(path: str | os.PathLike[str], *, extractor: str) -> FeatureSet:
    """Statistics saved by ``save_stats`` or by pytorch-fid (``mu`` and ``sigma`` only)."""
    import numpy as np

    try:
        with np.load(Path(path), allow_pickle=False) as data:
            mu, sigma = data["mu"], data["sigma"]
            features = data["features"].astype(np.float64) if "features" in data else None
            saved = str(data["extractor"]) if "extractor" in data else None
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"{path}: not a statistics file (an .npz with mu and sigma): {exc}") from exc
    if saved is not None and saved != extractor:
        raise UsageError(f"{path}: statistics of {saved} features, but this run uses {extractor}; pass --features "
                         f"{saved}")
    if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
        raise InputError(f"{path}: mu and sigma do not fit together ({mu.shape} and {sigma.shape})")
    count = len(features) if features is not None else 0
    return FeatureSet(mu=mu, sigma=sigma, count=count, extractor=saved or extractor, features=features)


# --------------------------------------------------------------------------------------------
# What `imgan eval --generated ... --real ...` runs


def _features_of(source: str, extractor: Extractor, *, on_image: Callable[[], None] | None = None) -> FeatureSet:
    if Path(source).suffix.lower() == ".npz":
        return load_stats(source, extractor=extractor.name)
    return FeatureSet.of(folder_features(source, extractor, on_image=on_image), extractor=extractor.name)


def compare(
    generated: str | None,
    real: str,
    *,
    extractor: Extractor,
    save: str | None = None,
    kid: bool = True,
    on_image: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """FID (and KID where both sides have features) of ``generated`` against ``real`` (folder or .npz).

    ``save`` writes the real side's statistics. Without ``generated`` only that is done.
    """
    if save is not None and Path(real).suffix.lower() == ".npz":
        raise UsageError("--save-stats saves the statistics of a --real folder; this --real is a statistics file")
    reference = _features_of(real, extractor, on_image=on_image)
    result: dict[str, Any] = {"features": extractor.name, "real": real, "real_count": reference.count}
    if save is not None:
        save_stats(save, reference)
        result["saved"] = str(save)
    if generated is None:
        return result
    candidate = _features_of(generated, extractor, on_image=on_image)
    result.update(generated=generated, generated_count=candidate.count,
                  fid=frechet_distance(candidate.mu, candidate.sigma, reference.mu, reference.sigma))
    if kid and candidate.features is not None and reference.features is not None:
        mean, std = kernel_distance(candidate.features, reference.features)
        result.update(kid=mean, kid_std=std)
    elif kid:
        log.info("KID needs the features of both sides; %s holds only mu and sigma", real)
    if min(candidate.count or math.inf, reference.count or math.inf) < 2048 and extractor.name == DEFAULT_EXTRACTOR:
        log.info("FID on fewer than 2048 images is biased upwards; compare only numbers made with the same counts")
    return result
