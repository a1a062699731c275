"""The checks behind ``benchmarks/gpu_check.sh``: imgan on a CUDA GPU, one section at a time.

Usage: python benchmarks/gpu_check.py [--device cuda|cpu] [--work DIR] SECTION

Sections (each run by gpu_check.sh in its own process, under ``timeout``):
  env          torch / CUDA / cuDNN versions, the device, its bf16 peak from a table of known GPUs
  commands     the real CLI (python -m imgan upscale | stylize | sketch2photo | age | eval) on
               generated 16-bit images, on the device in fp32, fp16 and bf16, each output
               compared with --device cpu --precision fp32 (max and mean difference in /255)
  nan          the engine's fp32 fallback when a half-precision result holds NaN/Inf: a real fp16
               overflow inside cuDNN convolutions, and a network that gives NaN in fp16 and bf16
  oom          a tiny per-process memory cap (torch.cuda.set_per_process_memory_fraction): a
               whole-image tile must be split, a batch of tiles lowered, and both results must
               equal the uncapped whole-image result
  ddp          ``torchrun`` with two processes training ``imgan train srresnet`` for two steps
  throughput   Real-ESRGAN's RRDBNet x4 (23 blocks) and SRVGGNetCompact x4 (16 and 32 convs) in
               fp16 and bf16 on batches of 256x256 tiles: output MP/s, achieved TFLOPS (from the
               convolution shapes) and the fraction of the GPU's bf16 dense peak; then the engine
               end to end (tiling, transfers) on one image

Every check prints one line: ``PASS name: figures``, ``FAIL name: reason`` or ``SKIP name: why``
(SKIP only where the device cannot run a check: the CPU dry run, or one GPU for NCCL); ``INFO``
lines carry context. The exit status is 1 when any check failed, 0 otherwise.

``--device cpu`` (or IMGAN_GPU_CHECK_DEVICE=cpu) is the dry run: the same code paths on the CPU
with tiny sizes, fp16/bf16 run on the CPU and compared with fp32 there, the memory cap simulated
by a network that raises torch.OutOfMemoryError above a pixel count, DDP with Gloo on the CPU.

Nothing is downloaded: the upscale and sketch2photo defaults are embedded in the package, every
other network gets random weights saved by this script (speed and numerical agreement do not
depend on the weights; random weights exaggerate half-precision differences if anything).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import copy
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
THIS = Path(__file__).resolve()

# Dense (no sparsity) bf16 tensor-core peaks in TFLOPS, from NVIDIA's data sheets. Matched as a
# substring of torch.cuda.get_device_name(), first match wins: specific names before general ones.
BF16_PEAK_TFLOPS: list[tuple[str, float]] = [
    ("GH200", 989.0),
    ("H200 NVL", 835.0),
    ("H200", 989.0),  # H200 SXM: 989.4
    ("H100 NVL", 835.0),
    ("H100 PCIe", 756.0),
    ("H100", 989.0),  # H100 SXM5 ("NVIDIA H100 80GB HBM3")
    ("H800", 989.0),
    ("B200", 2250.0),
    ("A100", 312.0),
    ("A800", 312.0),
    ("L40S", 362.0),
    ("L40", 181.0),
    ("L4", 121.0),
    ("A10G", 70.0),
    ("A10", 125.0),
    ("RTX 6000 Ada", 364.0),
    ("RTX A6000", 155.0),
    ("RTX 4090", 165.0),
    ("RTX 3090", 71.0),
]

# Agreement with --device cpu --precision fp32, in /255 of the full range (outputs are 16-bit).
FP32_MAX_DIFF = 1.0  # at most one 8-bit level anywhere
HALF_MEAN_DIFF = {"fp16": 2.0, "bf16": 8.0}  # mean; the max is reported, not judged
EVAL_PSNR_DIFF = {"fp32": 0.01, "fp16": 0.05, "bf16": 0.2}  # dB, the model's mean PSNR


# ---------------------------------------------------------------------------------------------
# Reporting


@dataclass
class Report:
    """Collects PASS/FAIL/SKIP lines; prints each at once (flushed, so a timeout keeps them)."""

    failures: int = 0
    passes: int = 0

    def line(self, status: str, name: str, text: str) -> None:
        print(f"{status} {name}: {text}", flush=True)

    def ok(self, name: str, text: str) -> None:
        self.passes += 1
        self.line("PASS", name, text)

    def fail(self, name: str, text: str) -> None:
        self.failures += 1
        self.line("FAIL", name, text)

    def skip(self, name: str, text: str) -> None:
        self.line("SKIP", name, text)

    def check(self, name: str, passed: bool, text: str) -> None:
        (self.ok if passed else self.fail)(name, text)

    @contextlib.contextmanager
    def guard(self, name: str) -> Iterator[None]:
        """A check that raises is a FAIL line with the error, and the section goes on."""
        try:
            yield
        except Exception as error:  # noqa: BLE001 - every failure becomes a report line
            text = " ".join(f"{type(error).__name__}: {error}".split())
            self.fail(name, text[:600])


def info(text: str) -> None:
    print(f"INFO {text}", flush=True)


@dataclass
class Mode:
    """Where the checks run and how big they are: the GPU, or the CPU dry run with tiny sizes."""

    device: str  # "cuda" or "cpu"
    work: Path

    @property
    def gpu(self) -> bool:
        return self.device == "cuda"

    @property
    def label(self) -> str:
        return "cuda" if self.gpu else "cpu (dry run)"


class WarningLog(logging.Handler):
    """The imgan logger's warnings, to see which recovery the engine took."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    @contextlib.contextmanager
    def attached(self) -> Iterator[WarningLog]:
        logger = logging.getLogger("imgan")
        logger.addHandler(self)
        previous = logger.level
        logger.setLevel(logging.WARNING)
        try:
            yield self
        finally:
            logger.removeHandler(self)
            logger.setLevel(previous)

    def has(self, text: str) -> bool:
        return any(text in message for message in self.messages)


def synchronize(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def bf16_peak(name: str) -> float | None:
    for key, peak in BF16_PEAK_TFLOPS:
        if key.lower() in name.lower():
            return peak
    return None


# ---------------------------------------------------------------------------------------------
# env


def section_env(mode: Mode, report: Report) -> None:
    import platform

    import torch

    import imgan

    info(f"python {platform.python_version()}, torch {torch.__version__}, CUDA (torch build) "
         f"{torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}, imgan {imgan.__version__} from "
         f"{Path(imgan.__file__).parent}")
    info(f"mode: {mode.label}, {os.cpu_count()} CPU cores, TF32 convolutions "
         f"{'on' if torch.backends.cudnn.allow_tf32 else 'off'} (torch default; imgan does not change it)")
    if not mode.gpu:
        report.skip("env-cuda", "dry run on the CPU: CUDA not used")
        return
    if not torch.cuda.is_available():
        report.fail("env-cuda", f"torch.cuda.is_available() is False (torch {torch.__version__}, built for CUDA "
                                f"{torch.version.cuda}); is this a CPU-only torch or is the driver missing?")
        return
    count = torch.cuda.device_count()
    for index in range(count):
        props = torch.cuda.get_device_properties(index)
        name = torch.cuda.get_device_name(index)
        peak = bf16_peak(name)
        info(f"cuda:{index} {name}, compute capability {props.major}.{props.minor}, "
             f"{props.total_memory / 2**30:.1f} GiB, {props.multi_processor_count} SMs, bf16 dense peak "
             f"{f'{peak:g} TFLOPS' if peak else 'unknown'}")
    with report.guard("env-cuda"):
        probe = torch.ones(256, 256, device="cuda", dtype=torch.bfloat16)
        value = float((probe @ probe).float().mean())
        report.check("env-cuda", value == 256.0 and torch.cuda.is_bf16_supported(),
                     f"{count} device(s); bf16 matmul {'ok' if value == 256.0 else f'gave {value}'}, "
                     f"bf16 supported: {torch.cuda.is_bf16_supported()}")


# ---------------------------------------------------------------------------------------------
# commands: the real CLI on the device against the CPU in fp32


@dataclass
class Case:
    """One CLI invocation pattern: the command, its input and its own options."""

    name: str
    argv: list[str]  # after "python -m imgan", before the runtime options
    output: str  # "image" or "eval"
    timeout: float
    same_size: Path | None = None  # the input, when the output has its size (the model must change it)


@dataclass
class Outcome:
    case: Case
    device: str
    precision: str
    returncode: int
    seconds: float
    stdout: str
    stderr: str
    output: Path | None = None
    records: list[dict] = field(default_factory=list)


def smooth_photo(width: int, height: int, seed: int):  # noqa: ANN201 - ndarray
    """A 16-bit RGB 'photo': smooth colour fields, sharp shapes and fine texture (uint16 HxWx3)."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    channels = []
    for channel in range(3):
        fx, fy, phase = rng.uniform(1, 4), rng.uniform(1, 4), rng.uniform(0, 6.3)
        channels.append(0.5 + 0.35 * np.sin(2 * np.pi * (fx * x / width + fy * y / height) + phase + channel))
    image = np.stack(channels, -1)
    coarse = rng.random((max(2, height // 16), max(2, width // 16), 3))
    image += 0.15 * (cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC) - 0.5)
    image += 0.03 * (rng.random((height, width, 3)) - 0.5)  # sensor-like texture
    for _ in range(6):
        cx, cy = int(rng.integers(0, width)), int(rng.integers(0, height))
        radius = int(rng.integers(max(3, width // 20), max(4, width // 6)))
        color = tuple(float(v) for v in rng.random(3))
        cv2.circle(image, (cx, cy), radius, color, -1, lineType=cv2.LINE_AA)
        cv2.rectangle(image, (cx, cy), (cx + radius, cy + radius // 2), tuple(1 - c for c in color), 2)
    return (np.clip(image, 0, 1) * 65535).round().astype(np.uint16)


def line_sketch(width: int, height: int, seed: int):  # noqa: ANN201 - ndarray
    """Black lines of a simple object on white paper, 16-bit RGB."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(seed)
    image = np.full((height, width, 3), 65535, np.uint16)
    cx, cy = width // 2, height // 2
    cv2.ellipse(image, (cx, cy), (width // 3, height // 4), 0, 0, 360, (0, 0, 0), 2, cv2.LINE_AA)
    cv2.ellipse(image, (cx, cy - height // 8), (width // 8, height // 10), 0, 180, 360, (0, 0, 0), 2, cv2.LINE_AA)
    for _ in range(8):
        p = (int(rng.integers(cx - width // 4, cx + width // 4)), int(rng.integers(cy - height // 5, cy + height // 5)))
        q = (p[0] + int(rng.integers(-20, 20)), p[1] + int(rng.integers(-20, 20)))
        cv2.line(image, p, q, (0, 0, 0), 2, cv2.LINE_AA)
    return image


def write_png16(path: Path, rgb) -> Path:  # noqa: ANN001
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), rgb[..., ::-1].copy()):
        raise RuntimeError(f"could not write {path}")
    return path


def random_weight_file(path: Path, arch: str, params: dict, seed: int) -> Path:
    """A plain state dict with random weights, as upstream files are saved (tests do the same)."""
    import torch

    from imgan.archs import build_model

    torch.manual_seed(seed)
    torch.save(build_model(arch, params).state_dict(), path)
    return path


def build_cases(mode: Mode) -> list[Case]:
    """Inputs, random-weight model files and the CLI cases; sizes by mode."""
    folder = mode.work / "commands"
    models = folder / "models"
    models.mkdir(parents=True, exist_ok=True)
    gpu = mode.gpu
    limit = 120.0  # seconds per CLI run
    # Published sizes on the GPU; tiny ones in the dry run.
    rrdb = {"num_features": 64, "num_blocks": 23, "num_grow": 32, "scale": 4} if gpu else \
        {"num_features": 16, "num_blocks": 1, "num_grow": 8, "scale": 4}
    cyclegan = {"num_features": 64, "num_blocks": 9} if gpu else {"num_features": 8, "num_blocks": 1}
    aging = {"num_features": 32, "num_blocks": 9} if gpu else {"num_features": 8, "num_blocks": 1}
    rrdb_file = random_weight_file(models / "rrdbnet_x4_random.pth", "rrdbnet", rrdb, 1)
    style_file = random_weight_file(models / "style_random.pth", "cyclegan", cyclegan, 2)
    aging_file = random_weight_file(models / "aging_random.pth", "aginggan", aging, 3)

    w, h = (480, 352) if gpu else (96, 72)
    photo = write_png16(folder / "in" / "photo.png", smooth_photo(w, h, 10))
    rrdb_in = write_png16(folder / "in" / "small.png", smooth_photo(*((128, 96) if gpu else (40, 32)), 11))
    style_in = write_png16(folder / "in" / "street.png", smooth_photo(*((384, 288) if gpu else (200, 150)), 12))
    sketch = write_png16(folder / "in" / "sketch.png", line_sketch(*((300, 220) if gpu else (120, 88)), 13))
    face_w, face_h = (420, 320) if gpu else (160, 120)
    face_in = write_png16(folder / "in" / "portrait.png", smooth_photo(face_w, face_h, 14))
    face = f"{face_w // 3},{face_h // 4},{face_w // 4},{face_w // 4}"
    eval_dir = folder / "eval_data"
    side = 600 if gpu else 160
    for index in range(2):
        write_png16(eval_dir / f"img{index}.png", smooth_photo(side, side, 20 + index))

    tile, style_tile = ("128", "192") if gpu else ("64", "128")  # CycleGAN's smallest tile is 128 (overlap 64)
    return [
        Case("upscale", ["upscale", str(photo), "--tile", tile], "image", limit),
        Case("upscale-rrdbnet", ["upscale", str(rrdb_in), "--model", str(rrdb_file), "--tile", "0"], "image", limit),
        Case("stylize", ["stylize", str(style_in), "--style", str(style_file), "--tile", style_tile], "image", limit,
             style_in),
        Case("sketch2photo", ["sketch2photo", str(sketch)], "image", limit, sketch),
        Case("age", ["age", str(face_in), "--model", str(aging_file), "--face", face], "image", limit, face_in),
        Case("eval", ["eval", "--model", "imgan-sr-x4", "--data", str(eval_dir)], "eval", limit),
    ]


def run_case(case: Case, device: str, precision: str, out_dir: Path, threads: int) -> Outcome:
    # --debug: imgan logs "engine on DEVICE DTYPE, tile N", which proves what actually ran.
    argv = [sys.executable, "-m", "imgan", *case.argv, "--device", device, "--precision", precision, "--json",
            "--debug"]
    output = None
    if case.output == "image":
        output = out_dir / f"{case.name}_{device}_{precision}.png"
        argv += ["-o", str(output)]
    environment = {**os.environ, "OMP_NUM_THREADS": str(threads), "IMGAN_OFFLINE": "1", "NO_COLOR": "1"}
    start = time.perf_counter()
    try:
        finished = subprocess.run(argv, capture_output=True, text=True, timeout=case.timeout, env=environment,
                                  stdin=subprocess.DEVNULL)
        code, stdout, stderr = finished.returncode, finished.stdout, finished.stderr
    except subprocess.TimeoutExpired as expired:
        code, stdout, stderr = -9, str(expired.stdout or ""), f"timed out after {case.timeout:.0f}s"
    outcome = Outcome(case, device, precision, code, time.perf_counter() - start, stdout, stderr, output)
    for text in stdout.splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            record = json.loads(text)
            if isinstance(record, dict):
                outcome.records.append(record)
    return outcome


def read_255(path: Path):  # noqa: ANN201 - ndarray
    """An image file as float64 in 8-bit units (0..255), whatever its bit depth."""
    import cv2
    import numpy as np

    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise RuntimeError(f"cannot read {path}")
    full = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(image.dtype)
    if full is None:
        raise RuntimeError(f"{path}: unexpected dtype {image.dtype}")
    return image.astype(np.float64) * (255.0 / full)


def failure_text(outcome: Outcome) -> str:
    lines = [line for line in outcome.stderr.strip().splitlines() if line.strip()]
    return f"exit {outcome.returncode} after {outcome.seconds:.1f}s: {' | '.join(lines[-3:])[:400]}"


def fell_back(outcome: Outcome) -> str:
    return " (NaN/Inf: fell back to fp32)" if "switching to fp32" in outcome.stderr else ""


DTYPES = {"fp32": "torch.float32", "fp16": "torch.float16", "bf16": "torch.bfloat16"}


def engine_lines(outcome: Outcome) -> list[str]:
    """imgan's debug lines "engine on cuda torch.float16, tile 128" (one per engine built)."""
    return [line.split("engine on ", 1)[1].strip() for line in outcome.stderr.splitlines() if "engine on " in line]


def ran_as_asked(outcome: Outcome) -> str | None:
    """None when every engine ran on the asked device and dtype; else what ran instead."""
    lines = engine_lines(outcome)
    if not lines:
        return "no 'engine on ...' debug line in stderr: cannot tell what ran"
    wanted = DTYPES[outcome.precision]
    wrong = [line for line in lines
             if not (line.split()[0].startswith(outcome.device) and line.split()[1].rstrip(",") == wanted)]
    return f"engine ran as {wrong[0]!r}, not {outcome.device} {wanted}" if wrong else None


def how_it_ran(outcome: Outcome) -> str:
    lines = engine_lines(outcome)
    tiles = sorted({line.rsplit("tile ", 1)[-1] for line in lines if "tile " in line})
    shared = "; tiles shared norm statistics" if "normalisation statistics from" in outcome.stderr else ""
    return f"tile {','.join(tiles) or '?'}{shared}"


def compare_images(report: Report, name: str, reference: Outcome, outcome: Outcome, *, bits: str) -> None:
    import numpy as np

    ref, got = read_255(reference.output), read_255(outcome.output)
    if ref.shape != got.shape:
        report.fail(name, f"output shape {got.shape} differs from the CPU's {ref.shape}")
        return
    if reference.case.same_size is not None:  # a model that changes nothing would make every diff 0
        source = read_255(reference.case.same_size)
        change = float(np.abs(ref - source).mean()) if source.shape == ref.shape else float("inf")
        if change < 0.5:
            report.fail(name, f"the CPU fp32 output is the input unchanged (mean change {change:.3f}/255)")
            return
    diff = np.abs(got - ref)
    worst, mean = float(diff.max()), float(diff.mean())
    figures = (f"max {worst:.3f}/255, mean {mean:.4f}/255, {bits}, {got.shape[1]}x{got.shape[0]}, "
               f"{how_it_ran(outcome)}, {outcome.seconds:.1f}s (CPU fp32 {reference.seconds:.1f}s)"
               f"{fell_back(outcome)}")
    if outcome.precision == "fp32":
        hint = ("" if worst <= FP32_MAX_DIFF or outcome.device == "cpu" else
                " (torch runs cuDNN fp32 convolutions in TF32 by default and imgan leaves it on)")
        report.check(name, worst <= FP32_MAX_DIFF, f"{figures}; limit max {FP32_MAX_DIFF}/255{hint}")
    else:
        limit = HALF_MEAN_DIFF[outcome.precision]
        report.check(name, mean <= limit, f"{figures}; limit mean {limit}/255")


def compare_eval(report: Report, name: str, reference: Outcome, outcome: Outcome) -> None:
    def model_psnr(run: Outcome) -> float:
        means = [r for r in run.records if r.get("name") == "mean"]
        if not means or "model" not in means[-1]:
            raise RuntimeError(f"no mean record in eval --json output: {run.stdout[-300:]!r}")
        return float(means[-1]["model"]["psnr"])

    ref, got = model_psnr(reference), model_psnr(outcome)
    limit = EVAL_PSNR_DIFF[outcome.precision]
    report.check(name, abs(got - ref) <= limit,
                 f"model PSNR {got:.4f} dB vs CPU fp32 {ref:.4f} dB (diff {abs(got - ref):.4f}, limit {limit}), "
                 f"{how_it_ran(outcome)}, {outcome.seconds:.1f}s{fell_back(outcome)}")


def section_commands(mode: Mode, report: Report) -> None:
    cases = build_cases(mode)
    out_dir = mode.work / "commands" / "out"
    out_dir.mkdir(parents=True, exist_ok=True)
    precisions = ("fp32", "fp16", "bf16")
    jobs = [(case, "cpu", "fp32") for case in cases]
    if mode.gpu:
        jobs += [(case, "cuda", precision) for case in cases for precision in precisions]
    else:  # the dry run: the "device" runs are the CPU at each precision (fp32 again: determinism)
        jobs += [(case, "cpu", precision) for case in cases for precision in precisions]
    workers = 4 if mode.gpu else 2
    threads = max(1, (os.cpu_count() or 2) // workers)
    outcomes: dict[tuple[str, str, str], Outcome] = {}  # (case, "ref" or "dev", precision)
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {}
        for index, (case, device, precision) in enumerate(jobs):
            role = "ref" if index < len(cases) else "dev"
            folder = out_dir / role
            folder.mkdir(exist_ok=True)
            futures[pool.submit(run_case, case, device, precision, folder, threads)] = (case.name, role, precision)
        for future in concurrent.futures.as_completed(futures):
            key = futures[future]
            outcomes[key] = future.result()
    for case in cases:
        reference = outcomes[(case.name, "ref", "fp32")]
        if reference.returncode != 0:
            for precision in precisions:
                report.fail(f"{case.name}-{mode.device}-{precision}", f"CPU fp32 reference failed: "
                                                                     f"{failure_text(reference)}")
            continue
        for precision in precisions:
            outcome = outcomes[(case.name, "dev", precision)]
            name = f"{case.name}-{mode.device}-{precision}"
            if outcome.returncode != 0:
                report.fail(name, failure_text(outcome))
                continue
            wrong = ran_as_asked(outcome)
            if wrong:
                report.fail(name, wrong)
                continue
            with report.guard(name):
                if case.output == "eval":
                    compare_eval(report, name, reference, outcome)
                else:
                    compare_images(report, name, reference, outcome,
                                   bits="16-bit" if _is_16bit(outcome.output) else "8-bit")


def _is_16bit(path: Path) -> bool:
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    return image is not None and image.dtype.itemsize == 2


# ---------------------------------------------------------------------------------------------
# nan: the fp32 fallback


def _descriptor(module, *, scale: int, overlap: int = 16, name: str = "check"):  # noqa: ANN001, ANN202
    from imgan.descriptor import ModelDescriptor

    return ModelDescriptor(module=module, name=name, arch="check", task="upscale", scale=scale,
                           tile_overlap=overlap)


def _nan_in_half_module():  # noqa: ANN202
    import torch
    from torch import nn

    class NaNInHalf(nn.Module):
        """NaN unless it runs in fp32 (as tests/test_tiling.py's), on any device."""

        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 3, padding=1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = torch.sigmoid(self.conv(x))
            return out if x.dtype == torch.float32 else out * float("nan")

    return NaNInHalf()


def _overflowing_srvgg():  # noqa: ANN202
    """A real SRVGG whose first conv output reaches ~1e6: fine in fp32, Inf in fp16 (max 65504).

    The first conv's weights are scaled up by 1e5 and the next conv's down by 1e5, so the fp32
    result is an ordinary image while fp16 overflows inside the convolutions themselves.
    """
    import torch

    from imgan.archs.srvgg import SRVGGNetCompact

    torch.manual_seed(5)
    net = SRVGGNetCompact(num_features=16, num_conv=2, scale=2, act="prelu")
    with torch.no_grad():
        net.body[0].weight.mul_(1e5)
        net.body[0].bias.mul_(1e5)
        net.body[2].weight.mul_(1e-5)
    return net


def section_nan(mode: Mode, report: Report) -> None:
    import torch

    from imgan.engine import Engine

    device = torch.device(mode.device)
    if mode.gpu:  # the fallback's fp32 result is compared with an fp32 run: exact fp32, not TF32
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    torch.manual_seed(0)
    image = torch.rand(1, 3, 96, 80)
    checks: list[tuple[str, Callable[[], object], str, int]] = [
        ("nan-fallback-fp16-overflow", _overflowing_srvgg, "fp16", 2),
        ("nan-fallback-fp16", _nan_in_half_module, "fp16", 1),
        ("nan-fallback-bf16", _nan_in_half_module, "bf16", 1),
    ]
    for name, make, precision, scale in checks:
        with report.guard(name):
            module = make()
            half = {"fp16": torch.float16, "bf16": torch.bfloat16}[precision]
            # The same tiles in fp32 from the start. The engine's fallback converts the module it
            # had already cast to fp16/bf16 back to fp32, so its weights are the rounded ones: the
            # fallback must equal an fp32 run of those; the original weights are reported too.
            rounded = copy.deepcopy(module).to(half).float()
            reference = Engine(_descriptor(rounded, scale=scale), device, precision="fp32", tile_size=48).run(image)
            original = Engine(_descriptor(copy.deepcopy(module), scale=scale), device, precision="fp32",
                              tile_size=48).run(image)
            engine = Engine(_descriptor(module, scale=scale), device, precision=precision, tile_size=48)
            # Without the fallback, would this precision really give non-finite values here?
            with torch.no_grad():
                raw = module(image.to(device, engine.dtype).contiguous(memory_format=torch.channels_last))
            raw_bad = int((~torch.isfinite(raw)).sum())
            with WarningLog().attached() as warnings:
                result = engine.run(image)
            finite = bool(torch.isfinite(result).all())
            diff = float((result - reference).abs().max()) * 255
            weights_diff = float((result - original).abs().max()) * 255
            problems = []
            if raw_bad == 0:
                problems.append(f"the {precision} forward gave no NaN/Inf here, so nothing was tested")
            if engine.dtype != torch.float32:
                problems.append(f"engine still in {engine.dtype} after the run")
            if not warnings.has("switching to fp32"):
                problems.append("no 'switching to fp32' warning")
            if not finite:
                problems.append("result not finite")
            if diff > 0.01:
                problems.append(f"result differs from an fp32 run by {diff:.4f}/255")
            text = (f"{raw_bad} non-finite values in raw {precision}; engine fell back to fp32, result finite, "
                    f"max diff from an fp32 run {diff:.5f}/255 ({weights_diff:.4f}/255 from the unrounded "
                    f"fp32 weights), tiled {image.shape[-1]}x{image.shape[-2]} at 48 px")
            report.check(name, not problems, "; ".join(problems) + f" ({text})" if problems else text)


# ---------------------------------------------------------------------------------------------
# oom: recovery under a real memory cap


def _oom_network():  # noqa: ANN202
    """SRVGG x4, 64 features, 8 body convs: receptive radius 10 px < the 32 px overlap, so a tiled
    result equals the whole-image one up to float rounding, and 64 full-size feature maps make
    memory grow fast with the tile."""
    import torch

    from imgan.archs.srvgg import SRVGGNetCompact

    torch.manual_seed(6)
    return SRVGGNetCompact(num_features=64, num_conv=8, scale=4, act="prelu")


class _RaiseAbove:
    """Dry-run stand-in for a memory cap: torch.OutOfMemoryError above ``limit`` input pixels."""

    def __init__(self, limit: int) -> None:
        self.limit = limit

    def wrap(self, module):  # noqa: ANN001, ANN202
        import torch
        from torch import nn

        limit = self.limit

        class Capped(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.inner = module
                self.largest = 0

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                pixels = x.shape[0] * x.shape[-2] * x.shape[-1]
                if pixels > limit:
                    raise torch.OutOfMemoryError(f"CUDA out of memory (simulated: {pixels} px > {limit} px)")
                self.largest = max(self.largest, pixels)
                return self.inner(x)

        return Capped()


def section_oom(mode: Mode, report: Report) -> None:
    import torch

    from imgan.engine import Engine

    device = torch.device(mode.device)
    side = 1024 if mode.gpu else 192
    torch.manual_seed(0)
    image = torch.rand(1, 3, side, side)
    if mode.gpu:  # compare exact fp32 arithmetic, not TF32, so "equal" can be strict
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    net = _oom_network()
    reference = None
    with report.guard("oom-reference"):
        if mode.gpu:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        reference = Engine(_descriptor(copy.deepcopy(net), scale=4, overlap=32), device, precision="fp32",
                           tile_size=0).run(image)
        peak = torch.cuda.max_memory_allocated() if mode.gpu else 0
        info(f"oom: whole {side}x{side} image, uncapped: peak {peak / 2**20:.0f} MiB allocated"
             if mode.gpu else f"oom: whole {side}x{side} image computed uncapped (dry run: cap simulated)")
    if reference is None:
        return

    total = torch.cuda.get_device_properties(device).total_memory if mode.gpu else 0
    cap = max(peak // 2, 96 * 2**20) if mode.gpu else 0

    @contextlib.contextmanager
    def capped() -> Iterator[None]:
        if not mode.gpu:
            yield
            return
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.set_per_process_memory_fraction(cap / total, device)
        try:
            yield
        finally:
            torch.cuda.set_per_process_memory_fraction(1.0, device)
            torch.cuda.empty_cache()

    cases = [
        # name, tile, batch: a whole-image tile that must be split; then four tiles in one batch
        ("oom-split-tile", side, 1),
        ("oom-lower-batch", side // 2, 4),
    ]
    for name, tile, batch in cases:
        with report.guard(name):
            module = copy.deepcopy(net)
            if not mode.gpu:  # simulated cap: one half-side tile fits, or two in a batch; the whole image not
                module = _RaiseAbove(limit=(side // 2) ** 2 * (2 if batch > 1 else 1)).wrap(module)
            engine = Engine(_descriptor(module, scale=4, overlap=32), device, precision="fp32", tile_size=tile,
                            batch_size=batch)
            start = time.perf_counter()
            with WarningLog().attached() as warnings, capped():
                result = engine.run(image)
            seconds = time.perf_counter() - start
            diff = float((result - reference).abs().max()) * 255
            oom_seen = warnings.has("out of memory")
            problems = []
            if not oom_seen:
                problems.append(f"no out-of-memory happened under the cap (cap {cap / 2**20:.0f} MiB): "
                                "nothing was tested")
            if name == "oom-split-tile" and engine._current_tile >= tile:
                problems.append(f"tile not lowered ({engine._current_tile})")
            if name == "oom-lower-batch" and engine.batch_size >= batch:
                problems.append(f"batch not lowered ({engine.batch_size})")
            if diff > 0.01:
                problems.append(f"result differs from the uncapped whole-image result by {diff:.4f}/255")
            cap_text = f"cap {cap / 2**20:.0f} MiB of {total / 2**30:.0f} GiB" if mode.gpu else "simulated cap"
            recovered = [m for m in warnings.messages if "out of memory" in m]
            text = (f"{cap_text}; tile {tile} batch {batch} -> tile {engine._current_tile} batch {engine.batch_size} "
                    f"({len(recovered)} recoveries), max diff from uncapped {diff:.5f}/255, {seconds:.2f}s")
            report.check(name, not problems, "; ".join(problems) + f" ({text})" if problems else text)
    if mode.gpu:
        with report.guard("oom-after"):  # the cap is lifted: a whole-image run works again
            after = Engine(_descriptor(copy.deepcopy(net), scale=4, overlap=32), device, precision="fp32",
                           tile_size=0).run(image)
            diff = float((after - reference).abs().max()) * 255
            report.check("oom-after", diff <= 0.01,
                         f"cap lifted, whole image runs again, max diff from before {diff:.5f}/255")


# ---------------------------------------------------------------------------------------------
# ddp: two processes through torchrun


def make_training_images(folder: Path, count: int = 4, side: int = 96) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        write_png16(folder / f"img{index}.png", (smooth_photo(side, side, 40 + index) // 257).astype("uint8"))
    return folder


def _train_args(data: Path, run_dir: Path, device: str) -> list[str]:
    return ["train", "srresnet", "--data", str(data), "--out", str(run_dir), "--features", "16", "--blocks", "2",
            "--crop", "32", "--batch-size", "2", "--workers", "0", "--perceptual", "0", "--steps", "2",
            "--val-every", "0", "--sample-every", "0", "--save-every", "2", "--log-every", "1",
            "--device", device, "--quiet"]


def _torchrun(entry: list[str], *, environment: dict[str, str], timeout: float) -> tuple[int, str, str, float]:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", *entry]
    start = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=environment,
                              stdin=subprocess.DEVNULL)
        return done.returncode, done.stdout, done.stderr, time.perf_counter() - start
    except subprocess.TimeoutExpired as expired:
        return -9, str(expired.stdout or ""), f"timed out after {timeout:.0f}s", time.perf_counter() - start


def _check_training(report: Report, name: str, run_dir: Path, result: tuple[int, str, str, float], note: str) -> None:
    from imgan.train.checkpoint import load_checkpoint

    code, stdout, stderr, seconds = result
    if code != 0:
        tail = " | ".join(line for line in stderr.strip().splitlines()[-4:])
        report.fail(name, f"exit {code} after {seconds:.1f}s: {tail[:500]}")
        return
    lines = stdout.strip().splitlines()
    checkpoint = load_checkpoint(run_dir)
    problems = []
    if lines != [str(run_dir)]:
        problems.append(f"stdout should be the run directory once (rank 0 alone), got {lines[:4]}")
    if checkpoint.get("step") != 2:
        problems.append(f"checkpoint step {checkpoint.get('step')}, not 2")
    text = f"{note}; 2 steps, weights identical on both ranks (imgan's check_replicas), {seconds:.1f}s"
    report.check(name, not problems, "; ".join(problems) if problems else text)


def section_ddp(mode: Mode, report: Report) -> None:
    import torch

    folder = mode.work / "ddp"
    data = make_training_images(folder / "data")
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "IMGAN_OFFLINE": "1"}
    timeout = 150.0
    gpus = torch.cuda.device_count() if mode.gpu else 0

    if mode.gpu and gpus >= 2:  # the real thing: NCCL, one GPU per process, exactly as a user runs it
        run_dir = folder / "nccl"
        result = _torchrun(["-m", "imgan", *_train_args(data, run_dir, "cuda")], environment=environment,
                           timeout=timeout)
        _check_training(report, "ddp-nccl-2gpu", run_dir, result, "torchrun -m imgan train, NCCL, cuda:0 + cuda:1")
        return

    # One GPU (or the dry run): NCCL refuses two ranks on one GPU ("Duplicate GPU detected"), and
    # imgan maps rank r to cuda:LOCAL_RANK. So this launcher pins both ranks to cuda:0 and makes
    # imgan's init_process_group use Gloo, which carries CUDA tensors (DDP's broadcast and bucketed
    # all-reduce, imgan's all_gather replica check) through host memory. Everything else is
    # imgan's own: the session, DDP wrapping, AMP + GradScaler on CUDA, the sampler, the checkpoint.
    run_dir = folder / "gloo"
    device = "cuda" if mode.gpu else "cpu"
    result = _torchrun([str(THIS), "ddp-worker", *_train_args(data, run_dir, device)],
                       environment={**environment, "IMGAN_GPU_CHECK_SHARE_GPU": "1" if mode.gpu else "0"},
                       timeout=timeout)
    name = "ddp-gloo-shared-gpu" if mode.gpu else "ddp-gloo-cpu"
    note = ("torchrun, 2 processes on cuda:0, Gloo backend forced by the launcher (1 GPU: NCCL needs one GPU per "
            "rank), fp16 AMP" if mode.gpu else "torchrun, 2 processes, Gloo on the CPU")
    _check_training(report, name, run_dir, result, note)

    if not mode.gpu:
        report.skip("ddp-guard-1gpu", "dry run: needs exactly one CUDA device")
        report.skip("ddp-nccl-2gpu", "dry run: needs two CUDA devices")
        return
    # What a user with one GPU gets from the documented command: a clear error, not a hang.
    run_dir = folder / "guard"
    code, stdout, stderr, seconds = _torchrun(["-m", "imgan", *_train_args(data, run_dir, "cuda")],
                                              environment=environment, timeout=90.0)
    expected = "only 1 CUDA device(s) are visible"
    stderr = " ".join(stderr.split())
    report.check("ddp-guard-1gpu", code not in (0, -9) and expected in stderr,
                 f"torchrun --nproc-per-node 2 -m imgan train on 1 GPU exits {code} in {seconds:.1f}s "
                 + ("with imgan's 'LOCAL_RANK 1 but only 1 CUDA device(s) are visible' error" if expected in stderr
                    else f"without that error: {stderr[-400:]}"))
    report.skip("ddp-nccl-2gpu", "one GPU: NCCL with two ranks needs two GPUs")


def ddp_worker(args: list[str]) -> None:
    """Run under torchrun: one rank of ``imgan train``, both ranks on cuda:0, Gloo backend."""
    import torch.distributed as dist

    if os.environ.get("IMGAN_GPU_CHECK_SHARE_GPU") == "1":
        os.environ["LOCAL_RANK"] = "0"  # both ranks on cuda:0
    original = dist.init_process_group

    def init_with_gloo(*positional, **keywords):  # noqa: ANN002, ANN003, ANN202
        keywords["backend"] = "gloo"
        return original(*positional, **keywords)

    dist.init_process_group = init_with_gloo
    sys.argv = ["imgan", *args]
    from imgan.cli import main

    main()


# ---------------------------------------------------------------------------------------------
# throughput


def conv_flops(module, shape: tuple[int, ...], device, dtype) -> int:  # noqa: ANN001
    """FLOPs of one forward from every Conv2d's shape: 2 x output elements x (in/groups) x kh x kw."""
    import torch
    from torch import nn

    total = [0]

    def hook(layer: nn.Conv2d, _inputs, output) -> None:  # noqa: ANN001
        kh, kw = layer.kernel_size
        total[0] += 2 * output.numel() * (layer.in_channels // layer.groups) * kh * kw

    handles = [layer.register_forward_hook(hook) for layer in module.modules() if isinstance(layer, nn.Conv2d)]
    try:
        with torch.inference_mode():
            module(torch.zeros(shape, device=device, dtype=dtype).contiguous(memory_format=torch.channels_last))
    finally:
        for handle in handles:
            handle.remove()
    return total[0]


def time_forward(module, batch, device: str, runs: int) -> float:  # noqa: ANN001
    import torch

    with torch.inference_mode():
        for _ in range(2):
            out = module(batch)
        synchronize(device)
        if not bool(torch.isfinite(out).all()):
            raise RuntimeError("non-finite output")
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            module(batch)
            synchronize(device)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def section_throughput(mode: Mode, report: Report) -> None:
    import torch

    from imgan.archs.rrdbnet import RRDBNet
    from imgan.archs.srvgg import SRVGGNetCompact
    from imgan.engine import Engine

    device = torch.device(mode.device)
    name = torch.cuda.get_device_name(device) if mode.gpu else "CPU"
    peak = bf16_peak(name) if mode.gpu else None
    info(f"throughput on {name}; bf16 dense peak {f'{peak:g} TFLOPS' if peak else 'unknown'}; "
         f"cudnn.benchmark {'off (as imgan runs)' if mode.gpu else 'n/a'}; median of "
         f"{5 if mode.gpu else 2} timed runs after 2 warm-ups")
    if mode.gpu:
        archs = [
            ("rrdbnet-x4-23b", lambda: RRDBNet(num_features=64, num_blocks=23, num_grow=32, scale=4)),
            ("srvgg-x4-16c", lambda: SRVGGNetCompact(num_features=64, num_conv=16, scale=4)),
            ("srvgg-x4-32c", lambda: SRVGGNetCompact(num_features=64, num_conv=32, scale=4)),
        ]
        tile, batches, runs = 256, (4, 8, 16), 5
    else:
        archs = [
            ("rrdbnet-x4-2b(dry)", lambda: RRDBNet(num_features=16, num_blocks=2, num_grow=8, scale=4)),
            ("srvgg-x4-4c(dry)", lambda: SRVGGNetCompact(num_features=16, num_conv=4, scale=4)),
        ]
        tile, batches, runs = 32, (1, 2), 2
    precisions = (("fp16", torch.float16), ("bf16", torch.bfloat16))
    best: dict[str, float] = {}
    with report.guard("flop-count"):  # the hooks' count against torch's own FlopCounterMode, on the CPU
        from torch.utils.flop_counter import FlopCounterMode

        counts = []
        for arch_name, make in archs:
            module = make().eval()
            ours = conv_flops(module, (1, 3, 32, 32), torch.device("cpu"), torch.float32)
            with FlopCounterMode(display=False) as counter, torch.no_grad():
                module(torch.zeros(1, 3, 32, 32))
            counts.append((arch_name, ours, counter.get_total_flops()))
        report.check("flop-count", all(ours == theirs for _, ours, theirs in counts),
                     ", ".join(f"{arch_name} {ours / 1024 / 1e6:.4g} MFLOP per input pixel (FlopCounterMode "
                               f"{theirs / 1024 / 1e6:.4g})" for arch_name, ours, theirs in counts))
    for arch_name, make in archs:
        torch.manual_seed(0)
        base = make().eval().requires_grad_(False)
        for precision, dtype in precisions:
            module = copy.deepcopy(base).to(device=device, dtype=dtype, memory_format=torch.channels_last)
            flops_per_tile = conv_flops(module, (1, 3, tile, tile), device, dtype)
            for batch_size in batches:
                check = f"throughput-{arch_name}-{precision}-b{batch_size}"
                with report.guard(check):
                    batch = torch.rand(batch_size, 3, tile, tile, device=device, dtype=dtype)
                    batch = batch.contiguous(memory_format=torch.channels_last)
                    seconds = time_forward(module, batch, mode.device, runs)
                    megapixels = batch_size * (tile * 4) ** 2 / 1e6
                    tflops = flops_per_tile * batch_size / seconds / 1e12
                    fraction = f"{100 * tflops / peak:.1f}% of bf16 peak" if peak else "peak unknown"
                    best[arch_name] = max(best.get(arch_name, 0.0), megapixels / seconds)
                    report.ok(check, f"{megapixels / seconds:.3g} output MP/s, {tflops:.3g} TFLOPS ({fraction}), "
                                     f"{seconds * 1e3:.2f} ms per batch of {batch_size}x{tile}x{tile}, "
                                     f"{flops_per_tile / (tile * tile) / 1e6:.3g} MFLOP per input pixel")
                    del batch
            del module
            if mode.gpu:
                torch.cuda.empty_cache()
    # The engine end to end: tile choice, batching, transfers and blending included.
    side = 768 if mode.gpu else 64
    image = torch.rand(1, 3, side, side)
    for arch_name, make in archs:
        check = f"engine-{arch_name}-fp16-auto"
        with report.guard(check):
            torch.manual_seed(0)
            descriptor = _descriptor(make(), scale=4, overlap=32, name=arch_name)
            engine = Engine(descriptor, device, precision="fp16", tile_size=None)
            engine.run(image)  # warm-up
            times = []
            for _ in range(3 if mode.gpu else 1):
                start = time.perf_counter()
                result = engine.run(image)
                times.append(time.perf_counter() - start)
            seconds = statistics.median(times)
            finite = bool(torch.isfinite(result).all())
            megapixels = (side * 4) ** 2 / 1e6
            raw = best.get(arch_name)
            report.check(check, finite,
                         f"{side}x{side} -> {side * 4}x{side * 4} in {seconds:.3f}s = {megapixels / seconds:.2f} "
                         f"output MP/s (tile {engine._current_tile}, batch {engine.batch_size}; "
                         f"{100 * megapixels / seconds / raw:.0f}% of the best raw rate)" if raw else
                         f"{megapixels / seconds:.2f} output MP/s")
        if mode.gpu:
            torch.cuda.empty_cache()


# ---------------------------------------------------------------------------------------------


SECTIONS: dict[str, Callable[[Mode, Report], None]] = {
    "env": section_env,
    "commands": section_commands,
    "nan": section_nan,
    "oom": section_oom,
    "ddp": section_ddp,
    "throughput": section_throughput,
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "ddp-worker":
        ddp_worker(argv[1:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("section", choices=[*SECTIONS, "all"])
    parser.add_argument("--device", default=os.environ.get("IMGAN_GPU_CHECK_DEVICE", "cuda"), choices=("cuda", "cpu"))
    parser.add_argument("--work", default=None, help="scratch folder (default: a new temporary one)")
    args = parser.parse_args(argv)
    with contextlib.ExitStack() as stack:
        work = Path(args.work) if args.work else Path(stack.enter_context(tempfile.TemporaryDirectory()))
        mode = Mode(device=args.device, work=work / args.section)
        mode.work.mkdir(parents=True, exist_ok=True)
        report = Report()
        if mode.gpu and args.section != "env":
            import torch

            if not torch.cuda.is_available():
                report.fail(args.section, "CUDA is not available")
                return 1
        sections = list(SECTIONS) if args.section == "all" else [args.section]
        for section in sections:
            start = time.perf_counter()
            with report.guard(section):
                SECTIONS[section](mode, report)
            info(f"section {section} took {time.perf_counter() - start:.1f}s")
    return 1 if report.failures else 0


if __name__ == "__main__":
    if sys.argv[1:2] != ["ddp-worker"]:  # the worker leaves logging to imgan's own command line
        logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(main())
