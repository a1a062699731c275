"""Loading models by registry name or by file, and blending a denoise companion."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from imgan import hub
from imgan.archs.srvgg import SRVGGNetCompact
from imgan.errors import ModelError
from imgan.models import load_model

TINY = {"in_channels": 3, "out_channels": 3, "num_features": 8, "num_conv": 2, "scale": 4, "act": "prelu"}


def cached_spec(name: str, state_dict: dict[str, torch.Tensor], **changes: object) -> hub.WeightSpec:
    """A registry entry whose verified file is already in the (temporary) cache."""
    spec = hub.WeightSpec(
        name=name, task="upscale", arch="srvgg", params=TINY, scale=4,
        urls=(f"https://example.invalid/{name}.pth",), digest="sha256:" + "0" * 64, size=None,
        format="pth", key="params", value_range=(0.0, 1.0), license="MIT", source="test",
        paper="", description="tiny",
    )
    spec = dataclasses.replace(spec, **changes)
    target = hub.cached_path(spec)
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"params": state_dict}, target)
    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    return dataclasses.replace(spec, digest=f"sha256:{digest}", size=target.stat().st_size)


@pytest.fixture
def two_weight_sets(monkeypatch: pytest.MonkeyPatch) -> tuple[dict, dict]:
    torch.manual_seed(0)
    general = SRVGGNetCompact(**TINY).state_dict()
    weak = SRVGGNetCompact(**TINY).state_dict()
    specs = {
        "tiny-general": cached_spec("tiny-general", general, denoise_companion="tiny-wdn"),
        "tiny-wdn": cached_spec("tiny-wdn", weak, hidden=True),
        "tiny-plain": cached_spec("tiny-plain", weak),
    }
    monkeypatch.setattr(hub, "registry", lambda path=None: dict(specs))
    return general, weak


def test_denoise_blends_the_companion_weights(two_weight_sets: tuple[dict, dict]) -> None:
    general, weak = two_weight_sets
    blended = load_model("tiny-general", task="upscale", denoise=0.3).module.state_dict()
    for key in general:
        assert torch.allclose(blended[key], 0.3 * general[key] + 0.7 * weak[key], atol=1e-6)
    strongest = load_model("tiny-general", task="upscale", denoise=1.0).module.state_dict()
    assert all(torch.equal(strongest[key], general[key]) for key in general)


def test_denoise_without_a_companion_is_refused(two_weight_sets: tuple[dict, dict]) -> None:
    with pytest.raises(ModelError, match="tiny-general"):
        load_model("tiny-plain", task="upscale", denoise=0.5)


def test_registry_model_for_another_task_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = cached_spec("tiny-style", SRVGGNetCompact(**TINY).state_dict(), task="stylize")
    monkeypatch.setattr(hub, "registry", lambda path=None: {"tiny-style": spec})
    with pytest.raises(ModelError, match="stylize"):
        load_model("tiny-style", task="upscale")


def test_safetensors_with_metadata_needs_no_other_flag(tmp_path: Path) -> None:
    net = SRVGGNetCompact(**{**TINY, "act": "relu"})
    path = tmp_path / "mine.safetensors"
    save_file(net.state_dict(), path, metadata={
        "arch": "srvgg", "params": json.dumps({**TINY, "act": "relu"}), "task": "upscale",
        "value_range": "[0.0, 1.0]",
    })
    descriptor = load_model(str(path), task="upscale")
    assert descriptor.arch == "srvgg" and descriptor.params["act"] == "relu" and descriptor.scale == 4
    image = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(descriptor(image), net(image))


def test_checkpoint_that_does_not_fit_its_metadata_is_a_model_error(tmp_path: Path) -> None:
    path = tmp_path / "wrong.safetensors"
    save_file(SRVGGNetCompact(**TINY).state_dict(), path,
              metadata={"arch": "srvgg", "params": json.dumps({**TINY, "num_conv": 5})})
    with pytest.raises(ModelError, match="do not fit"):
        load_model(str(path), task="upscale")


def test_missing_model_file(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no such model file"):
        load_model(str(tmp_path / "nothing.pth"), task="upscale")


def test_a_translation_checkpoint_is_not_run_as_an_upscaler(tmp_path: Path) -> None:
    from imgan.archs.cyclegan import ResnetGenerator

    path = tmp_path / "style.pth"
    torch.save(ResnetGenerator(num_features=8, num_blocks=1).state_dict(), path)
    with pytest.raises(ModelError, match="cyclegan checkpoint for imgan stylize"):
        load_model(str(path), task="upscale")


def test_metadata_without_a_value_range_takes_the_arch_declaration(tmp_path: Path) -> None:
    from imgan.archs.cyclegan import ResnetGenerator

    path = tmp_path / "style.safetensors"
    params = {"num_features": 8, "num_blocks": 1}
    save_file(ResnetGenerator(**params).state_dict(), path,
              metadata={"arch": "cyclegan", "params": json.dumps(params), "task": "stylize"})
    assert load_model(str(path), task="stylize").value_range == (-1.0, 1.0)


def test_a_value_range_declared_by_the_weights_wins_over_the_arch(tmp_path: Path) -> None:
    net = SRVGGNetCompact(**TINY)
    path = tmp_path / "signed.safetensors"
    save_file(net.state_dict(), path, metadata={
        "arch": "srvgg", "params": json.dumps(TINY), "task": "upscale", "value_range": "[-1.0, 1.0]",
    })
    descriptor = load_model(str(path), task="upscale")
    assert descriptor.value_range == (-1.0, 1.0)
    image = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        assert torch.allclose(descriptor(image), (net(image * 2 - 1) + 1) / 2)


def test_metadata_without_a_task_is_checked_against_the_arch_task(tmp_path: Path) -> None:
    path = tmp_path / "mine.safetensors"
    save_file(SRVGGNetCompact(**TINY).state_dict(), path, metadata={"arch": "srvgg", "params": json.dumps(TINY)})
    assert load_model(str(path), task="upscale").task == "upscale"
    with pytest.raises(ModelError, match="upscale model, not stylize"):
        load_model(str(path), task="stylize")
