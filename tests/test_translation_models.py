"""The published translation checkpoints load through the registry as their upstream files are.

Each test writes random weights in the upstream file's layout (old pickle format, legacy
InstanceNorm buffers, missing BatchNorm counters, ``_metadata``) where ``imgan`` caches the real
file, then loads it by its registry name. Key listings from ``../shared/compat`` pin the layouts.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from imgan import hub
from imgan.archs import build_model
from imgan.errors import ModelError
from imgan.models import load_model

COMPAT = Path(__file__).resolve().parents[2] / "shared" / "compat"


def listing(name: str) -> dict[str, tuple[int, ...]]:
    path = COMPAT / f"{name}.keys.txt"
    if not path.is_file():
        pytest.skip(f"{path} not available")
    shapes = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, shape, _ = line.split("\t")
            shapes[key] = tuple(int(n) for n in shape.strip("()").split(",") if n.strip())
    return shapes


def cache_upstream_file(name: str, state_dict: dict[str, torch.Tensor], monkeypatch: pytest.MonkeyPatch) -> Path:
    """Save ``state_dict`` as a pre-zip pickle where the registry's file for ``name`` lives.

    An unpublished digest is pinned as a first download would pin it; a published one is
    replaced by this file's, as if upstream had published this file (the cache checks digests).
    """
    spec = hub.get_spec(name)
    path = hub.cached_path(spec)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state_dict, path, _use_new_zipfile_serialization=False)
    digest, size = hub._hash_file(path, "sha256"), path.stat().st_size
    if spec.digest == hub.UNPUBLISHED:
        hub.pin_path(path).write_text(f"{digest} {size}\n")
    else:
        specs = {**hub.registry(), name: dataclasses.replace(spec, digest=f"sha256:{digest}", size=size)}
        monkeypatch.setattr(hub, "registry", lambda path=None: specs)
    return path


def with_legacy_instance_norm_buffers(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """What torch < 0.4 saved for CycleGAN: running stats for every (parameter-less) InstanceNorm."""
    legacy = type(state_dict)(state_dict)
    legacy._metadata = getattr(state_dict, "_metadata", {})  # type: ignore[attr-defined]
    norms = ["model.2", "model.5", "model.8", "model.20", "model.23"]
    norms += [f"model.{index}.conv_block.{layer}" for index in range(10, 19) for layer in (2, 6)]
    for prefix in norms:
        channels = 64 if prefix in ("model.2", "model.23") else 128 if prefix in ("model.5", "model.20") else 256
        legacy[f"{prefix}.running_mean"] = torch.zeros(channels)
        legacy[f"{prefix}.running_var"] = torch.ones(channels)
        legacy[f"{prefix}.num_batches_tracked"] = torch.tensor(0)
    return legacy


def test_cyclegan_style_file_with_legacy_buffers_loads_and_runs_in_minus_one_one(
        monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    spec = hub.get_spec("cyclegan-monet")
    reference = build_model("cyclegan", spec.params).eval()
    upstream = with_legacy_instance_norm_buffers(reference.state_dict())
    assert {key: tuple(value.shape) for key, value in upstream.items()} == listing("cyclegan_resnet9_legacy")
    cache_upstream_file("cyclegan-monet", upstream, monkeypatch)

    descriptor = load_model("cyclegan-monet", task="stylize")

    assert (descriptor.arch, descriptor.task, descriptor.value_range) == ("cyclegan", "stylize", (-1.0, 1.0))
    assert descriptor.image_statistics and descriptor.tileable and descriptor.size_multiple == 4
    image = torch.rand(1, 3, 36, 44)
    with torch.no_grad():
        expected = (reference(image * 2 - 1) + 1) / 2
        assert torch.allclose(descriptor(image), expected, atol=1e-6)


def test_every_style_shares_the_layout() -> None:
    styles = [spec for spec in hub.registry().values() if spec.task == "stylize"]
    assert {spec.name for spec in styles} >= {"cyclegan-monet", "cyclegan-vangogh", "cyclegan-cezanne",
                                              "cyclegan-ukiyoe"}
    for spec in styles:
        assert spec.digest == hub.UNPUBLISHED and spec.urls[0].endswith(f"style_{spec.name.split('-')[1]}.pth")


def test_pix2pix_file_without_batchnorm_counters_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = hub.get_spec("pix2pix-edges2shoes")
    shapes = {key: shape for key, shape in listing("pix2pix_unet256").items()
              if not key.endswith("num_batches_tracked")}  # files saved before torch 0.4.1
    zero = torch.zeros(())
    cache_upstream_file(spec.name, {key: zero.expand(shape) for key, shape in shapes.items()}, monkeypatch)

    descriptor = load_model(spec.name, task="sketch2photo")

    assert (descriptor.arch, descriptor.size_multiple, descriptor.tileable) == ("pix2pix", 256, False)
    assert descriptor.value_range == (-1.0, 1.0)
    # parameters; with the 9,856 running statistics: the published 54,423,811
    assert sum(p.numel() for p in descriptor.module.parameters()) == 54_413_955


def test_fast_aginggan_file_loads_with_running_batchnorm(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    spec = hub.get_spec("fast-aginggan")
    reference = build_model("aginggan", spec.params)
    with torch.no_grad():
        for name, buffer in reference.named_buffers():
            if name.endswith("running_mean"):
                buffer.normal_(0, 0.1)
    upstream = reference.state_dict()
    assert {key: tuple(value.shape) for key, value in upstream.items()} == listing("fast_aginggan")
    cache_upstream_file(spec.name, upstream, monkeypatch)

    descriptor = load_model(spec.name, task="age")

    assert (descriptor.arch, descriptor.value_range, descriptor.image_statistics) == ("aginggan", (-1.0, 1.0), False)
    image = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(descriptor.module.eval()(image), reference.eval()(image), atol=1e-6)


def test_a_style_file_that_does_not_fit_is_a_model_error(monkeypatch: pytest.MonkeyPatch) -> None:
    wrong = build_model("cyclegan", {"num_features": 64, "num_blocks": 6}).state_dict()
    cache_upstream_file("cyclegan-vangogh", wrong, monkeypatch)
    with pytest.raises(ModelError, match="cyclegan-vangogh: weights do not fit cyclegan"):
        load_model("cyclegan-vangogh", task="stylize")


def test_a_style_is_not_an_upscaler() -> None:
    with pytest.raises(ModelError, match="is a stylize model, not upscale"):
        load_model("cyclegan-monet", task="upscale")
