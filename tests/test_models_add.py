"""imgan models add: DF-GAN files in their published layouts (random weights), checked, converted and
found again by --model; vocabulary pickles that carry code are refused."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from imgan import hub
from imgan.archs.dfgan import DAMSMTextEncoder, NetC, NetD, NetG
from imgan.archs.srvgg import SRVGGNetCompact
from imgan.cli import app

runner = CliRunner()
NETG = {"num_features": 4, "noise_dim": 8, "cond_dim": 16, "image_size": 32, "out_channels": 3}
WORDS = {"<end>": 0, "this": 1, "bird": 2, "is": 3, "red": 4, "small": 5}


@pytest.fixture
def dfgan_files(tmp_path: Path) -> list[Path]:
    """A DF-GAN training checkpoint (netG under model/, module.-prefixed, with netD, netC, optimisers),
    its DAMSM encoder and captions_DAMSM.pickle, as DF-GAN writes them; small random weights."""
    torch.manual_seed(0)
    netg, netd, netc = NetG(**NETG), NetD(num_features=4, image_size=32), NetC(num_features=4, cond_dim=16)
    optimizer = torch.optim.Adam(netg.parameters())
    checkpoint = {"model": {"netG": {f"module.{k}": v for k, v in netg.state_dict().items()},
                            "netD": netd.state_dict(), "netC": netc.state_dict()},
                  "optimizers": {"optimizer_G": optimizer.state_dict()}, "epoch": 7}
    torch.save(checkpoint, tmp_path / "state_epoch_007.pth")
    torch.save(DAMSMTextEncoder(vocab_size=6, embedding_dim=10, cond_dim=16).state_dict(),
               tmp_path / "text_encoder200.pth")
    ixtoword = {index: word for word, index in WORDS.items()}
    (tmp_path / "captions_DAMSM.pickle").write_bytes(pickle.dumps([[[1, 2]], [[4]], ixtoword, WORDS], protocol=2))
    return [tmp_path / "state_epoch_007.pth", tmp_path / "text_encoder200.pth", tmp_path / "captions_DAMSM.pickle"]


def add(name: str, files: list[Path], *extra: str) -> object:
    return runner.invoke(app, ["models", "add", name, *map(str, files), *extra])


def test_added_dfgan_files_become_a_model_that_text2img_runs(dfgan_files: list[Path], tmp_path: Path) -> None:
    result = add("dfgan-bird", dfgan_files, "--json")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["task"] == "text2img" and record["arch"] == "dfgan" and record["license"] == "CC BY-NC-SA 4.0"
    assert {source["role"] for source in record["sources"]} == {"generator", "text_encoder", "vocabulary"}
    assert all(len(source["sha256"]) == 64 for source in record["sources"])

    spec = hub.get_spec("dfgan-bird")
    assert spec.local and Path(spec.local).is_file() and spec.digest == record["digest"]
    assert [name for name, _, ok, _ in hub.verify_cache(specs=[spec]) if ok] == ["dfgan-bird"]
    listed = runner.invoke(app, ["models", "list", "--task", "text2img", "--json"])
    assert "dfgan-bird" in {json.loads(line)["name"] for line in listed.stdout.splitlines()}

    made = runner.invoke(app, ["text2img", "this small bird is red", "-m", "dfgan-bird", "--n", "1", "--seed", "0",
                               "-o", str(tmp_path / "out")])
    assert made.exit_code == 0, made.output
    assert (tmp_path / "out" / "this-small-bird-is-red_0.png").is_file()


def test_a_changed_added_file_is_refused(dfgan_files: list[Path]) -> None:
    assert add("mine", dfgan_files).exit_code == 0
    path = Path(hub.get_spec("mine").local)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    result = runner.invoke(app, ["text2img", "a red bird", "-m", "mine", "--n", "1", "--seed", "0"])
    assert result.exit_code == 1 and "add it again" in result.stderr


def test_a_vocabulary_pickle_that_runs_code_is_refused_and_nothing_is_added(dfgan_files: list[Path],
                                                                           tmp_path: Path) -> None:
    evil = tmp_path / "captions_evil.pickle"
    evil.write_bytes(b"cos\nsystem\n(S'touch " + str(tmp_path / "pwned").encode() + b"'\ntR.")
    result = add("evil", [dfgan_files[0], dfgan_files[1], evil])
    assert result.exit_code == 1 and "os.system" in result.stderr
    assert not (tmp_path / "pwned").exists()
    assert "evil" not in hub.added_specs()


def test_a_generator_and_encoder_that_are_not_a_pair_are_refused(dfgan_files: list[Path], tmp_path: Path) -> None:
    torch.save(DAMSMTextEncoder(vocab_size=6, embedding_dim=10, cond_dim=32).state_dict(), tmp_path / "other.pth")
    result = add("mixed", [dfgan_files[0], tmp_path / "other.pth", dfgan_files[2]])
    assert result.exit_code == 1 and "not a pair" in result.stderr


def test_missing_parts_and_names_of_the_registry_are_usage_errors(dfgan_files: list[Path]) -> None:
    result = add("half", dfgan_files[:2])
    assert result.exit_code == 2 and "missing: vocabulary" in result.stderr
    assert add("imgan-sr-x4", dfgan_files).exit_code == 2
    assert add("Bad Name", dfgan_files).exit_code == 2
    assert add("twice", dfgan_files).exit_code == 0
    assert add("twice", dfgan_files).exit_code == 2
    assert add("twice", dfgan_files, "--overwrite").exit_code == 0


def test_an_image_checkpoint_is_added_alone_for_its_own_task(tmp_path: Path) -> None:
    torch.manual_seed(0)
    path = tmp_path / "mine_x2.pth"
    torch.save({"params": SRVGGNetCompact(num_features=8, num_conv=1, scale=2).state_dict()}, path)
    assert add("my-upscaler", [path]).exit_code == 0
    assert hub.get_spec("my-upscaler").task == "upscale"
    image = tmp_path / "in.png"
    from PIL import Image

    Image.new("RGB", (8, 8), (200, 10, 10)).save(image)
    result = runner.invoke(app, ["upscale", str(image), "-m", "my-upscaler", "--quiet"])
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "in_x2.png") as out:
        assert out.size == (16, 16)
