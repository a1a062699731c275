"""Ctrl-C and SIGTERM in the middle of a real run: exit 130/143, nothing more written, no temp files."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from imgan.archs.srvgg import SRVGGNetCompact

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


@pytest.fixture(scope="module")
def workload(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    folder = tmp_path_factory.mktemp("interrupt")
    torch.manual_seed(0)
    model = folder / "slowish_x2.pth"
    torch.save({"params": SRVGGNetCompact(num_features=32, num_conv=6, scale=2).state_dict()}, model)
    rng = np.random.default_rng(0)
    images = []
    for index in range(8):
        path = folder / f"in{index}.png"
        Image.fromarray(rng.integers(0, 256, (360, 480, 3), dtype=np.uint8)).save(path)
        images.append(path)
    return model, images


def start(model: Path, images: list[Path], out: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "imgan", "upscale", *map(str, images), "-m", str(model), "-o", f"{out}/",
         "--tile", "128"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # as in a terminal
    )


def wait_for_imgan_start(pid: int, timeout: float = 30.0) -> None:
    """Until imgan's entry point runs in ``pid`` (it catches SIGTERM, per /proc's SigCgt): earlier, a
    signal interrupts the interpreter's own start-up, which is not imgan's to handle."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = Path(f"/proc/{pid}/status").read_text()
        caught = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")), 16)
        if caught & (1 << (signal.SIGTERM - 1)):
            return
        time.sleep(0.01)
    raise AssertionError("imgan never started")


@pytest.mark.parametrize(("signum", "code", "when"), [
    (signal.SIGINT, 130, "loading"),
    (signal.SIGINT, 130, "after-first-output"),
    (signal.SIGTERM, 143, "after-first-output"),
])
def test_a_signal_stops_the_run_cleanly(workload, tmp_path: Path, signum: int, code: int, when: str) -> None:  # noqa: ANN001
    model, images = workload
    out = tmp_path / "out"
    process = start(model, images, out)
    if when == "loading":
        wait_for_imgan_start(process.pid)
    else:
        assert process.stdout is not None
        first = process.stdout.readline().decode().strip()  # one output is complete
        assert first.endswith("_x2.png")
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == code, stderr.decode()
    assert stderr.decode().strip().splitlines()[-1] == "interrupted"
    assert b"terminate called" not in stderr and b"Traceback" not in stderr
    time.sleep(0.5)
    written = sorted(out.iterdir()) if out.exists() else []
    assert not [p for p in written if p.name.startswith(".") or p.suffix == ".tmp"]
    assert len(written) < len(images)
    for path in written:  # every file there is a whole image
        with Image.open(path) as image:
            image.load()
            assert image.size == (960, 720)
    listed = stdout.decode().split()
    if when != "loading":
        # Nothing appears after the run stopped: at most what was under way when the signal came.
        assert len(written) <= len(listed) + 2 + 1
    assert all(image.read_bytes() for image in images)
