"""The command line as a user meets it: outputs, exit codes, one-line errors, pipes."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from imgan.archs.srvgg import SRVGGNetCompact
from imgan.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight x2 SRVGG checkpoint in the published Real-ESRGAN layout."""
    torch.manual_seed(0)
    net = SRVGGNetCompact(num_features=8, num_conv=2, scale=2)
    path = tmp_path_factory.mktemp("models") / "tiny_x2.pth"
    torch.save({"params": net.state_dict()}, path)
    return path


def make_png(path: Path, size: tuple[int, int] = (23, 17), mode: str = "RGB") -> Path:
    rng = np.random.default_rng(len(str(path)))
    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    pixels = rng.integers(0, 256, (size[1], size[0], channels), dtype=np.uint8)
    Image.fromarray(pixels.squeeze(-1) if channels == 1 else pixels, mode).save(path)
    return path


def invoke(*args: str | Path, input: bytes | None = None):  # noqa: ANN201 - click Result
    return runner.invoke(app, [str(a) for a in args], input=input)


def test_help_lists_commands_without_importing_torch() -> None:
    code = ("import sys\nfrom imgan.cli import app\nsys.argv = ['imgan', '--help']\n"
            "try:\n    app()\nexcept SystemExit:\n    pass\n"
            "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "upscale" in result.stdout and "models" in result.stdout
    assert result.stdout.strip().endswith("NO-TORCH")


def test_version() -> None:
    from imgan import __version__

    result = invoke("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"imgan {__version__}"


def test_upscale_writes_beside_the_input_and_prints_the_path(tmp_path: Path, tiny_model: Path) -> None:
    source = make_png(tmp_path / "photo.png")
    result = invoke("upscale", source, "--model", tiny_model, "--quiet")
    assert result.exit_code == 0, result.output
    target = tmp_path / "photo_x2.png"
    assert result.stdout.strip() == str(target)
    with Image.open(target) as image:
        assert image.size == (46, 34)


def test_any_scale_gives_the_exact_size(tmp_path: Path, tiny_model: Path) -> None:
    source = make_png(tmp_path / "photo.png", size=(23, 17))
    result = invoke("upscale", source, "--model", tiny_model, "--scale", "3.5", "-o", tmp_path / "out.png")
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "out.png") as image:
        assert image.size == (round(23 * 3.5), round(17 * 3.5))


def test_json_lines_describe_each_output(tmp_path: Path, tiny_model: Path) -> None:
    for name in ("a.png", "b.png"):
        make_png(tmp_path / name)
    result = invoke("upscale", tmp_path / "a.png", tmp_path / "b.png", "--model", tiny_model,
                    "--json", "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert sorted(r["input"] for r in records) == [str(tmp_path / "a.png"), str(tmp_path / "b.png")]
    assert all(r["status"] == "ok" and r["width"] == 46 and r["height"] == 34 for r in records)
    assert {Path(r["output"]).name for r in records} == {"a_x2.png", "b_x2.png"}


def test_tiles_are_not_drawn_off_a_terminal(tmp_path: Path, tiny_model: Path) -> None:
    source = make_png(tmp_path / "photo.png", size=(150, 130))
    result = invoke("upscale", source, "--model", tiny_model, "--tile", "64")
    assert result.exit_code == 0, result.output
    assert "tiles" not in result.stderr and "\x1b" not in result.stderr  # stderr is a pipe here: no bar


def test_stdin_to_stdout(tmp_path: Path, tiny_model: Path) -> None:
    data = make_png(tmp_path / "in.png").read_bytes()
    result = invoke("upscale", "-", "--model", tiny_model, "--quiet", input=data)
    assert result.exit_code == 0, result.stderr
    with Image.open(io.BytesIO(result.stdout_bytes)) as image:
        assert image.format == "PNG" and image.size == (46, 34)


def test_bad_inputs_fail_one_line_each_and_the_rest_is_done(tmp_path: Path, tiny_model: Path) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    make_png(folder / "good.png")
    (folder / "empty.png").write_bytes(b"")
    (folder / "notes.txt").write_text("not an image")
    (folder / "fake.jpg").write_text("not an image either")
    good = make_png(tmp_path / "whole.png").read_bytes()
    (folder / "truncated.png").write_bytes(good[: len(good) // 2])
    result = invoke("upscale", folder, tmp_path / "missing.png", "--model", tiny_model,
                    "-o", tmp_path / "out")
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    failures = [line for line in result.stderr.splitlines() if line.startswith("failed:")]
    assert len(failures) == 4
    for name in ("empty.png", "fake.jpg", "truncated.png", "missing.png"):
        assert sum(name in line for line in failures) == 1
    assert (tmp_path / "out" / "good_x2.png").exists()
    assert not any(p.name.startswith(".") for p in (tmp_path / "out").iterdir())


def test_never_writes_onto_an_input(tmp_path: Path, tiny_model: Path) -> None:
    source = make_png(tmp_path / "photo.png")
    before = source.read_bytes()
    result = invoke("upscale", source, "--model", tiny_model, "-o", "{dir}/{stem}.{ext}", "--overwrite")
    assert result.exit_code == 1
    assert "input" in result.stderr
    assert source.read_bytes() == before


def test_existing_outputs_need_overwrite_or_are_skipped(tmp_path: Path, tiny_model: Path) -> None:
    source = make_png(tmp_path / "photo.png")
    target = tmp_path / "photo_x2.png"
    target.write_bytes(b"keep me")
    refused = invoke("upscale", source, "--model", tiny_model)
    assert refused.exit_code == 1 and "--overwrite" in refused.stderr
    assert target.read_bytes() == b"keep me"
    skipped = invoke("upscale", source, "--model", tiny_model, "--skip-existing")
    assert skipped.exit_code == 0 and target.read_bytes() == b"keep me"
    replaced = invoke("upscale", source, "--model", tiny_model, "--overwrite")
    assert replaced.exit_code == 0
    with Image.open(target) as image:
        assert image.size == (46, 34)


def test_globs_with_double_star_keep_the_folder_structure(tmp_path: Path, tiny_model: Path) -> None:
    (tmp_path / "in" / "sub").mkdir(parents=True)
    make_png(tmp_path / "in" / "a.png")
    make_png(tmp_path / "in" / "sub" / "b.png")
    pattern = str(tmp_path / "in" / "**" / "*.png")
    result = invoke("upscale", pattern, "--model", tiny_model, "-o",
                    str(tmp_path / "out" / "{relpath}" / "{stem}.{ext}"), "--format", "jpg")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "a.jpg").exists()
    assert (tmp_path / "out" / "sub" / "b.jpg").exists()


def test_two_devices_share_a_batch(tmp_path: Path, tiny_model: Path) -> None:
    for index in range(5):
        make_png(tmp_path / f"{index}.png")
    result = invoke("upscale", tmp_path, "--model", tiny_model, "--device", "cpu,cpu", "--json",
                    "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 5
    assert len(list((tmp_path / "out").glob("*.png"))) == 5


def test_sixteen_bit_in_sixteen_bit_out(tmp_path: Path, tiny_model: Path) -> None:
    import cv2

    pixels = np.random.default_rng(3).integers(0, 65536, (17, 23, 3), dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "deep.png"), pixels)
    result = invoke("upscale", tmp_path / "deep.png", "--model", tiny_model, "-o", tmp_path / "out.png")
    assert result.exit_code == 0, result.output
    written = cv2.imread(str(tmp_path / "out.png"), cv2.IMREAD_UNCHANGED)
    assert written.dtype == np.uint16 and written.shape == (34, 46, 3)


@pytest.mark.parametrize("args,code,message", [
    (["--tile", "big"], 2, "--tile"),
    (["--device", "cuda:7"], 2, "--device"),
    (["--alpha", "keep"], 2, "--alpha"),
    (["--model", "no-such-model"], 2, "no-such-model"),
    # Checked before any work: the (uncached, offline) weights are never asked for.
    (["--scale", "-2", "-m", "realesrgan-x4plus"], 2, "--scale -2: use a positive factor"),
    (["-m", "realesrgan-x4plus", "--denoise", "0.3"], 2, "--denoise needs a model with a denoise companion"),
    (["-o", "{foo}.png", "-m", "realesrgan-x4plus"], 2, "unknown field 'foo'"),
    (["-", "--json", "-m", "realesrgan-x4plus"], 2, "--json and the image read from stdin both want stdout"),
])
def test_usage_errors_are_one_line(tmp_path: Path, args: list[str], code: int, message: str,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMGAN_OFFLINE", "1")
    source = make_png(tmp_path / "photo.png")
    result = invoke("upscale", source, *args)
    assert result.exit_code == code
    assert message in result.stderr and result.stderr.count("\n") == 1
    assert "Traceback" not in result.output


def test_offline_without_cached_weights_says_what_to_download(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMGAN_OFFLINE", "1")
    source = make_png(tmp_path / "photo.png")
    result = invoke("upscale", source, "--model", "realesr-animevideov3")
    assert result.exit_code == 1
    assert "IMGAN_OFFLINE" in result.stderr and "realesr-animevideov3.pth" in result.stderr


def test_models_commands() -> None:
    listing = invoke("models", "list", "--task", "upscale", "--markdown")
    assert listing.exit_code == 0
    assert "| `realesr-animevideov3` | upscale | srvgg | x4 |" in listing.stdout
    info = invoke("models", "info", "realesrgan-x4plus", "--json")
    record = json.loads(info.stdout)
    assert record["digest"].startswith("sha256:4fa0d389") and record["scale"] == 4
    path = invoke("models", "path")
    assert path.stdout.strip() == str(Path(os.environ["IMGAN_HOME"]) / "weights")
    verify = invoke("models", "verify")
    assert verify.exit_code == 0


def test_console_script_runs_the_installed_command(tmp_path: Path, tiny_model: Path) -> None:
    script = Path(sys.executable).parent / "imgan"
    if not script.exists():
        pytest.fail("the imgan console script is not installed: run pip install -e '.[test]'")
    source = make_png(tmp_path / "photo.png")
    result = subprocess.run([str(script), "upscale", str(source), "--model", str(tiny_model), "--quiet"],
                            capture_output=True, text=True, env={**os.environ})
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()) == tmp_path / "photo_x2.png"


def test_an_output_keeps_the_inputs_spelling_of_its_format(tmp_path: Path, tiny_model: Path) -> None:
    source = tmp_path / "scan.tif"
    Image.open(make_png(tmp_path / "scan.png")).save(source)
    result = invoke("upscale", source, "--model", tiny_model)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "scan_x2.tif").is_file() and not (tmp_path / "scan_x2.tiff").exists()


def test_dry_run_lists_inputs_and_outputs_and_writes_nothing(tmp_path: Path, tiny_model: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    make_png(tmp_path / "a.png"), make_png(tmp_path / "b.png"), make_png(tmp_path / "b_x2.png")
    result = invoke("upscale", tmp_path, "--model", tiny_model, "--dry-run")
    assert result.exit_code == 1  # b's output exists
    assert result.stdout.splitlines() == [f"{tmp_path / 'a.png'} -> {tmp_path / 'a_x2.png'}"]
    assert "b_x2.png: already exists" in result.stderr and "1 planned, 0 skipped, 1 failed" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.png", "b_x2.png"]
    monkeypatch.setenv("IMGAN_OFFLINE", "1")  # a registry model is not fetched to name outputs
    result = invoke("upscale", tmp_path / "a.png", "-m", "realesrgan-x2plus", "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) | {"input": ""} == {"input": "", "output": str(tmp_path / "a_x2.png"),
                                                        "status": "planned"}
