"""The inpainting models: TorchScript files loaded only once their digest matches, each fed its own way,
and OpenCV's classical methods as models that need no file.

The real MI-GAN and big-LaMa files are not downloaded in tests: small scripted stand-ins with the
same calling conventions are cached where the registry's files would be, under the registry's
name, with the registry's md5 replaced by theirs (as if upstream had published them).
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from imgan import hub
from imgan.cli import app
from imgan.engine import Engine
from imgan.errors import ModelError, OfflineError
from imgan.models import load_model

runner = CliRunner()
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")


class LaMaStandIn(torch.nn.Module):
    """big-lama.pt's convention: network(image [0,1], mask 1 = hole) -> RGB [0,1]; fills with 0.25."""

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if image.shape[-1] % 8 != 0 or image.shape[-2] % 8 != 0:
            raise ValueError("LaMa needs sides that are multiples of 8")
        return image * (1 - mask) + 0.25 * mask


class MIGANStandIn(torch.nn.Module):
    """migan_traced.pt's convention: one (B,4,512,512) tensor, 0.5 - mask then the masked image in [-1,1].

    Returns the masked image plus the mask read back from channel 0: the hole comes out white (1).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != 512 or x.shape[-2] != 512:
            raise ValueError("MI-GAN 512 takes 512x512")
        return x[:, 1:4] + (0.5 - x[:, :1])


def cache_script(name: str, module: torch.nn.Module, monkeypatch: pytest.MonkeyPatch, *,
                 digest: str | None = None) -> Path:
    """Script ``module`` into the cache file of registry entry ``name``, pinned by its own md5 (or ``digest``)."""
    spec = hub.get_spec(name)
    path = hub.cached_path(spec)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.jit.script(module).save(str(path))
    digest = digest or f"md5:{hashlib.md5(path.read_bytes()).hexdigest()}"
    specs = {**hub.registry(), name: dataclasses.replace(spec, digest=digest)}
    monkeypatch.setattr(hub, "registry", lambda path=None: specs)
    return path


def filled(model: str, image: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
    engine = Engine(load_model(model, task="inpaint"), torch.device("cpu"), tile_size=0)
    return engine.run(torch.cat([image * (1 - hole), hole], dim=1))


def test_the_registry_pins_iopaints_files_by_md5() -> None:
    assert hub.get_spec("lama-big").digest == "md5:e3aa4aaa15225a33ec84f9f4bc47e500"
    assert hub.get_spec("migan-512-places2").digest == "md5:76eb3b1a71c400ee3290524f7a11b89c"
    assert {hub.get_spec(name).format for name in ("lama-big", "migan-512-places2")} == {"torchscript"}


def test_lama_gets_its_image_and_binary_mask_padded_to_eight(monkeypatch: pytest.MonkeyPatch) -> None:
    cache_script("lama-big", LaMaStandIn(), monkeypatch)
    image, hole = torch.rand(1, 3, 21, 30), torch.zeros(1, 1, 21, 30)
    hole[..., 5:9, 7:12] = 0.8  # above half: a hole pixel
    out = filled("lama-big", image, hole)
    assert out.shape == (1, 3, 21, 30)
    inside = hole.expand_as(out) > 0.5
    assert torch.allclose(out[inside], torch.tensor(0.25)) and torch.equal(out[~inside], image[~inside])
    assert not load_model("lama-big", task="inpaint").supports_half  # FFTs: float32 only


def test_migan_gets_its_four_channel_signed_input_at_512(monkeypatch: pytest.MonkeyPatch) -> None:
    cache_script("migan-512-places2", MIGANStandIn(), monkeypatch)
    image, hole = torch.rand(1, 3, 100, 700), torch.zeros(1, 1, 100, 700)  # wider than 512: shrunk to fit
    hole[..., 40:60, 300:400] = 1.0
    out = filled("migan-512-places2", image, hole)
    assert out.shape == (1, 3, 100, 700)
    inside = hole.expand_as(out) > 0.5
    assert out[inside].min() > 0.99  # 0.5 - mask came through: white in the hole
    assert torch.equal(out[~inside], image[~inside])


def test_a_file_that_fails_its_digest_is_never_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    cache_script("lama-big", LaMaStandIn(), monkeypatch, digest="md5:" + "0" * 32)
    monkeypatch.setenv("IMGAN_OFFLINE", "1")

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("torch.jit.load ran on an unverified file")

    monkeypatch.setattr(torch.jit, "load", forbidden)
    with pytest.raises(OfflineError, match=r"failed its check \(md5 is [0-9a-f]{32}, expected 0{32}\)"):
        load_model("lama-big", task="inpaint")


def test_a_local_torchscript_file_loads_only_if_the_registry_pins_it(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    cached = cache_script("lama-big", LaMaStandIn(), monkeypatch)
    copy = tmp_path / "big-lama.pt"  # as IOPaint caches it
    copy.write_bytes(cached.read_bytes())
    assert load_model(str(copy), task="inpaint").arch == "inpaint_lama"
    stranger = tmp_path / "other.pt"
    torch.jit.script(MIGANStandIn()).save(str(stranger))
    with pytest.raises(ModelError, match="runs code, and this one is none of the files the registry pins"):
        load_model(str(stranger), task="inpaint")


@pytest.mark.parametrize("name", ["telea", "ns"])
def test_the_classical_methods_need_no_file_and_work_offline(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import cv2
    import numpy as np
    from skimage import data

    monkeypatch.setenv("IMGAN_OFFLINE", "1")
    photo = torch.from_numpy(data.astronaut()[100:164, 100:164].copy()).permute(2, 0, 1)[None].float() / 255
    hole = torch.zeros(1, 1, 64, 64)
    hole[..., 20:40, 25:35] = 1
    out = filled(name, photo, hole)
    flag = cv2.INPAINT_TELEA if name == "telea" else cv2.INPAINT_NS
    reference = cv2.inpaint(data.astronaut()[100:164, 100:164].copy(), hole[0, 0].numpy().astype(np.uint8), 3, flag)
    ours = (out[0].permute(1, 2, 0).numpy() * 255).round()
    assert np.abs(ours - reference).mean() < 0.5  # OpenCV's own 8-bit call, within rounding
    assert hub.get_spec(name).builtin


def test_the_inpainting_models_are_listed_and_the_builtin_ones_have_nothing_to_download() -> None:
    listed = runner.invoke(app, ["models", "list", "--task", "inpaint", "--json"])
    names = [line.split('"name": "')[1].split('"')[0] for line in listed.stdout.splitlines()]
    assert {"telea", "ns", "migan-512-places2", "lama-big"} <= set(names)
    result = runner.invoke(app, ["models", "download", "telea"])
    assert result.exit_code == 1 and "built into imgan" in result.stderr
