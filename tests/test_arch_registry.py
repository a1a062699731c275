"""Every registered network family, tested by being registered (timm's way).

Each case is a family's ``tiny_params`` or one of its training builds; each test states one thing
the loader, engine or trainers rely on a declaration for. A new family is covered by adding its
``ARCH`` to ``imgan.archs.ARCHS``.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import imgan.archs
from imgan import hub
from imgan.archs import ARCHS, SCRIPTED_ARCHS, Arch, build_model, detect_arch
from imgan.engine import CPU_MAX_TILE, Engine
from imgan.models import load_model
from imgan.normstats import uses_image_statistics
from imgan.tiling import pad_to_multiple, padded_side

ODD = (13, 19)  # height, width: odd, and no multiple of any family's size multiple
TRAIN_FEATURES, TRAIN_BLOCKS = 8, 1

# Image families (image in, image out, fed by the engine); text2img families have their own tests
# (tests/test_text2img_archs.py).
IMAGE_ARCHS = {name: arch for name, arch in ARCHS.items() if arch.kind == "image"}
CASES = [
    pytest.param(name, dict(arch.tiny_params), id=f"{name}-tiny") for name, arch in IMAGE_ARCHS.items()
] + [
    pytest.param(name, arch.train_params(features=TRAIN_FEATURES, blocks=TRAIN_BLOCKS, scale=scale),
                 id=f"{name}-train-x{scale}")
    for name, arch in IMAGE_ARCHS.items() if arch.train_params is not None
    for scale in arch.train_scales
]
NAMES = list(IMAGE_ARCHS)


def full_params(arch: Arch, params: dict[str, Any]) -> dict[str, Any]:
    """``params`` with every constructor keyword they leave out at its default."""
    defaults = {
        name: parameter.default
        for name, parameter in inspect.signature(arch.build).parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY
    }
    return {**defaults, **params}


def built(name: str, params: dict[str, Any], *, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build_model(name, params).eval()


def odd_batch(module: nn.Module, *, batch: int = 2) -> torch.Tensor:
    """A random batch of odd size, padded to the module's size multiple as the engine pads it."""
    torch.manual_seed(1)
    return pad_to_multiple(torch.rand(batch, module.in_channels, *ODD), module.size_multiple)


def test_every_arch_module_is_registered_under_its_own_name() -> None:
    declared = {}
    for info in pkgutil.iter_modules(imgan.archs.__path__):
        module = importlib.import_module(f"imgan.archs.{info.name}")
        if hasattr(module, "ARCH"):
            declared[module.ARCH.name] = module.ARCH
    assert declared == {**ARCHS, **SCRIPTED_ARCHS}  # TorchScript families are wrapped, never built
    assert all(name == arch.name for name, arch in ARCHS.items())


@pytest.mark.parametrize(("name", "params"), CASES)
def test_forward_on_odd_sizes_multiplies_the_padded_size_by_the_scale(name: str, params: dict) -> None:
    module = built(name, params)
    expected = full_params(ARCHS[name], params)
    images = odd_batch(module)
    with torch.no_grad():
        out = module(images)
    assert (module.scale, module.in_channels, module.out_channels) == (
        params.get("scale", 1), expected["in_channels"], expected["out_channels"])
    assert images.shape[-2] % module.size_multiple == 0 and images.shape[-1] % module.size_multiple == 0
    assert out.shape == (2, module.out_channels, images.shape[-2] * module.scale, images.shape[-1] * module.scale)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()


@pytest.mark.parametrize(("name", "params"), CASES)
def test_detects_its_own_state_dict_with_the_params_it_was_built_with(name: str, params: dict) -> None:
    arch = ARCHS[name]
    state = built(name, params).state_dict()
    detected_name, detected = detect_arch(state)
    assert detected_name == name
    # Params that leave no tensors (pix2pix's dropout) may be omitted; they then take their default.
    assert full_params(arch, detected) == full_params(arch, params)


@pytest.mark.parametrize(("name", "params"), CASES)
def test_no_other_family_claims_its_state_dict(name: str, params: dict) -> None:
    state = built(name, params).state_dict()
    assert [other for other, arch in ARCHS.items() if arch.detect(state) is not None] == [name]


@pytest.mark.parametrize(("name", "params"), CASES)
def test_strict_reload_into_a_fresh_build_gives_identical_outputs(name: str, params: dict) -> None:
    arch = ARCHS[name]
    original = built(name, params)
    state = original.state_dict()
    _, detected = detect_arch(state)
    fresh = built(name, detected, seed=1)
    fresh.load_state_dict(arch.remap(state) if arch.remap else state, strict=True)
    images = odd_batch(original)
    with torch.no_grad():
        assert torch.equal(fresh(images), original(images))


@pytest.mark.parametrize("name", NAMES)
def test_remap_leaves_a_current_state_dict_unchanged(name: str) -> None:
    arch = ARCHS[name]
    if arch.remap is None:
        pytest.skip(f"{name} has no legacy layout")
    state = built(name, dict(arch.tiny_params)).state_dict()
    remapped = arch.remap(state)
    assert list(remapped) == list(state)
    assert all(torch.equal(remapped[key], state[key]) for key in state)


@pytest.mark.parametrize("name", NAMES)
def test_loading_its_checkpoint_fills_the_descriptor_from_the_declaration(name: str, tmp_path: Path) -> None:
    arch = ARCHS[name]
    original = built(name, dict(arch.tiny_params))
    path = tmp_path / f"{name}.pth"
    torch.save(original.state_dict(), path)

    descriptor = load_model(str(path), task=arch.task)

    assert (descriptor.arch, descriptor.task, descriptor.value_range) == (name, arch.task, arch.value_range)
    assert (descriptor.tileable, descriptor.tile_overlap) == (arch.tileable, arch.tile_overlap)
    assert (descriptor.scale, descriptor.size_multiple, descriptor.in_channels, descriptor.out_channels) == (
        original.scale, original.size_multiple, original.in_channels, original.out_channels)
    images = odd_batch(original)
    with torch.no_grad():
        assert torch.equal(descriptor.module.eval()(images), original(images))


@pytest.mark.parametrize("name", NAMES)
def test_engine_returns_the_odd_input_size_times_the_scale(name: str, tmp_path: Path) -> None:
    arch = ARCHS[name]
    path = tmp_path / f"{name}.pth"
    torch.save(built(name, dict(arch.tiny_params)).state_dict(), path)
    engine = Engine(load_model(str(path), task=arch.task), torch.device("cpu"), tile_size=0)
    out = engine.run(torch.rand(1, engine.descriptor.in_channels, *ODD))  # inpainters: RGB and mask
    scale = engine.descriptor.scale
    assert out.shape == (1, engine.descriptor.out_channels, ODD[0] * scale, ODD[1] * scale)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("size", [(1, 1), (1, 7), (3, 2), (4, 4), (9, 3)])
def test_engine_runs_a_picture_of_a_few_pixels(name: str, size: tuple[int, int], tmp_path: Path) -> None:
    arch = ARCHS[name]
    path = tmp_path / f"{name}.pth"
    torch.save(built(name, dict(arch.tiny_params)).state_dict(), path)
    engine = Engine(load_model(str(path), task=arch.task), torch.device("cpu"), precision="fp32")
    out = engine.run(torch.rand(1, engine.descriptor.in_channels, *size))
    scale = engine.descriptor.scale
    assert out.shape == (1, engine.descriptor.out_channels, size[0] * scale, size[1] * scale)
    assert bool(torch.isfinite(out).all())


@pytest.mark.parametrize("name", NAMES)
def test_min_side_is_the_smallest_side_the_network_takes(name: str) -> None:
    arch = ARCHS[name]
    module = built(name, dict(arch.tiny_params))
    side = padded_side(1, module.size_multiple, min_side=arch.min_side)
    with torch.no_grad():
        assert module(torch.rand(1, module.in_channels, side, side)).shape[-1] == side * module.scale
        if side > module.size_multiple:  # declared above the multiple: one multiple less must fail
            smaller = side - module.size_multiple
            with pytest.raises((RuntimeError, ValueError)):
                module(torch.rand(1, module.in_channels, smaller, smaller))


@pytest.mark.parametrize("name", NAMES)
def test_value_range_is_zero_one_or_the_tanh_range_it_outputs(name: str) -> None:
    arch = ARCHS[name]
    assert arch.value_range in ((0.0, 1.0), (-1.0, 1.0))
    if arch.value_range == (-1.0, 1.0):  # a tanh output: never leaves the range
        module = built(name, dict(arch.tiny_params))
        with torch.no_grad():
            out = module(odd_batch(module) * 2 - 1)
        assert out.abs().max() <= 1


@pytest.mark.parametrize("name", NAMES)
def test_tile_overlap_fits_the_size_multiple_and_leaves_room_for_tiles(name: str) -> None:
    arch = ARCHS[name]
    module = built(name, dict(arch.tiny_params))
    if not arch.tileable:
        pytest.skip(f"{name} runs in one piece")
    assert 0 < arch.tile_overlap and 2 * arch.tile_overlap < CPU_MAX_TILE
    assert arch.tile_overlap % module.size_multiple == 0


@pytest.mark.parametrize("name", NAMES)
def test_task_is_served_by_the_registry_and_only_upscalers_change_the_size(name: str) -> None:
    arch = ARCHS[name]
    assert arch.task in {spec.task for spec in hub.registry().values()}
    if arch.task != "upscale":
        assert built(name, dict(arch.tiny_params)).scale == 1
        assert arch.train_scales == ()
    else:
        assert arch.train_scales and all(scale > 1 for scale in arch.train_scales)


@pytest.mark.parametrize("name", NAMES)
def test_normalisation_declaration_matches_the_layers(name: str) -> None:
    arch = ARCHS[name]
    module = built(name, dict(arch.tiny_params))
    norms = [layer for layer in module.modules() if isinstance(layer, (nn.BatchNorm2d, nn.InstanceNorm2d))]
    assert bool(norms) == (arch.normalisation != "none")
    assert uses_image_statistics(module) == (arch.normalisation == "per-image")
    if arch.normalisation == "selectable":
        arch.set_per_image_norm(module, per_image=True)
        assert uses_image_statistics(module)
        arch.set_per_image_norm(module, per_image=False)
        assert not uses_image_statistics(module)


def test_every_pretrained_entry_agrees_with_its_arch() -> None:
    families = 0
    for spec in hub.registry().values():
        if spec.arch in SCRIPTED_ARCHS:  # TorchScript: nothing to build; the wrapper takes [0,1]
            assert (spec.task, spec.value_range) == (SCRIPTED_ARCHS[spec.arch].task, (0.0, 1.0)), spec.name
            continue
        arch = ARCHS.get(spec.arch)
        if arch is None:  # a training-side network (the perceptual loss's VGG), no inference task
            assert spec.task not in {arch.task for arch in ARCHS.values()}, spec.name
            continue
        families += 1
        assert (spec.task, spec.value_range) == (arch.task, arch.value_range), spec.name
        with torch.device("meta"):
            assert build_model(spec.arch, spec.params).scale == spec.scale, spec.name
    assert families


def test_train_params_are_the_trainers_constructor_keywords() -> None:
    common = {"in_channels": 3, "out_channels": 3, "num_features": 64, "scale": 4}
    assert ARCHS["rrdbnet"].train_params(features=64, blocks=23, scale=4) == {
        **common, "num_blocks": 23, "num_grow": 32}
    assert ARCHS["srvgg"].train_params(features=64, blocks=23, scale=4) == {**common, "num_conv": 23, "act": "prelu"}
    assert ARCHS["srresnet"].train_params(features=64, blocks=23, scale=4) == {**common, "num_blocks": 23}
    assert ARCHS["rrdbnet"].train_params(features=1, blocks=1, scale=2)["num_grow"] == 1
    trainable = {name: arch.train_scales for name, arch in ARCHS.items() if arch.train_scales}
    assert trainable == {"rrdbnet": (2, 4), "srvgg": (2, 3, 4), "srresnet": (2, 3, 4)}


@pytest.mark.parametrize("changes", [
    {"normalisation": "batch"},
    {"normalisation": "selectable"},
    {"train_scales": (2,)},
    {"value_range": (1.0, 0.0)},
    {"tile_overlap": -1},
    {"min_side": 0},
])
def test_an_inconsistent_declaration_is_refused(changes: dict) -> None:
    untrained = {"train_params": None, "train_scales": ()}
    dataclasses.replace(ARCHS["srvgg"], **untrained)  # consistent without the changes
    with pytest.raises(ValueError, match="srvgg"):
        dataclasses.replace(ARCHS["srvgg"], **{**untrained, **changes})
