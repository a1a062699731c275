"""Upscale speed, peak memory and quality of imgan on the real realesr-animevideov3 checkpoint.

Prints, for a real photograph:
  * output megapixels per second and peak resident memory for imgan (auto tiles, batched),
    imgan untiled, and a naive reference loop measured in the same run (one tile at a time,
    no batching, context padding cropped away: the loop of Real-ESRGAN's ``RealESRGANer.tile_process``),
    with the ratio imgan / naive. Each figure is the median of several runs, each run in a fresh
    subprocess so peak memory belongs to that configuration alone.
  * PSNR (RGB and Y) of the x4 result against the original after a x4 bicubic downscale, and a
    sharpness figure (mean squared gradient) relative to bicubic upsampling.

Peak memory here is that of ``Engine.run``, which returns the whole float32 output; what the
``imgan upscale`` command needs (quantized result, streamed PNG), over sizes and ``--scale``
factors, is measured by ``benchmarks/bench_memory.py``.

Usage: python benchmarks/bench_upscale.py [--checkpoint PATH] [--runs 3] [--size 768]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

DEFAULT_CHECKPOINT = Path(__file__).resolve().parents[2] / "shared" / "weights" / "realesr-animevideov3.pth"


def photo(size: int):  # noqa: ANN201 - tensor
    """A real photograph (skimage astronaut, NASA, public domain), tiled by reflection to ``size``."""
    import numpy as np
    import torch
    from skimage import data

    image = data.astronaut()
    reps = -(-size // image.shape[0])
    image = np.concatenate([np.concatenate([image, image[:, ::-1]] * reps, axis=1)] * reps, axis=0)
    image = image[:size, :size]
    return torch.from_numpy(image.copy()).permute(2, 0, 1)[None].float() / 255


def naive_tile_loop(module, image, *, scale: int, tile: int = 128, pad: int = 10):  # noqa: ANN001,ANN201
    """One tile at a time with ``pad`` pixels of context, cropped away, no blending or batching."""
    import torch

    _, channels, height, width = image.shape
    output = image.new_zeros(1, channels, height * scale, width * scale)
    for top in range(0, height, tile):
        for left in range(0, width, tile):
            bottom, right = min(top + tile, height), min(left + tile, width)
            in_top, in_left = max(top - pad, 0), max(left - pad, 0)
            in_bottom, in_right = min(bottom + pad, height), min(right + pad, width)
            with torch.no_grad():
                result = module(image[..., in_top:in_bottom, in_left:in_right])
            oy, ox = (top - in_top) * scale, (left - in_left) * scale
            output[..., top * scale : bottom * scale, left * scale : right * scale] = result[
                ..., oy : oy + (bottom - top) * scale, ox : ox + (right - left) * scale
            ]
    return output


def run_one(config: str, checkpoint: str, size: int) -> dict:
    """Time one configuration once in this process; report seconds and peak RSS."""
    import torch

    from imgan.engine import Engine
    from imgan.models import load_model

    torch.manual_seed(0)
    descriptor = load_model(checkpoint, task="upscale")
    image = photo(size)
    if config == "naive":
        module = descriptor.module.eval()

        def process(picture):  # noqa: ANN001,ANN202
            return naive_tile_loop(module, picture, scale=descriptor.scale)
    else:
        tile = {"imgan-auto": None, "imgan-tile128": 128, "imgan-untiled": 0}[config]
        process = Engine(descriptor, torch.device("cpu"), tile_size=tile).run
    process(photo(size // 2))  # warm-up: steady state, as in a batch of many photos
    start = time.perf_counter()
    process(image)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"seconds": seconds, "peak_bytes": peak}


def seam_error(checkpoint: str, size: int) -> dict[str, float]:
    """Largest difference from the whole-image result, in 8-bit levels, of each tiled method."""
    import torch

    from imgan.engine import Engine
    from imgan.models import load_model

    image = photo(size)
    descriptor = load_model(checkpoint, task="upscale")
    with torch.no_grad():
        whole = descriptor.module.eval()(image).clamp(0, 1)
        naive = naive_tile_loop(descriptor.module, image, scale=descriptor.scale).clamp(0, 1)
    errors = {"naive": float((naive - whole).abs().max()) * 255}
    for config, tile in (("imgan-tile128", 128), ("imgan-auto", None)):
        engine = Engine(load_model(checkpoint, task="upscale"), torch.device("cpu"), tile_size=tile)
        errors[config] = float((engine.run(image).clamp(0, 1) - whole).abs().max()) * 255
    errors["imgan-untiled"] = 0.0
    return errors


def quality(checkpoint: str) -> list[dict]:
    """PSNR against the original after a x4 downscale, and sharpness relative to bicubic."""
    import torch
    import torch.nn.functional as F
    from skimage import data

    from imgan.engine import Engine
    from imgan.models import load_model

    engine = Engine(load_model(checkpoint, task="upscale"), torch.device("cpu"))
    rows = []
    for name in ("astronaut", "coffee", "chelsea", "rocket"):
        original = torch.from_numpy(getattr(data, name)()).permute(2, 0, 1)[None].float() / 255
        height, width = (s - s % 4 for s in original.shape[-2:])
        original = original[..., :height, :width]
        low = F.interpolate(original, scale_factor=0.25, mode="bicubic", antialias=True).clamp(0, 1)
        low = torch.round(low * 255) / 255
        bicubic = F.interpolate(low, size=(height, width), mode="bicubic").clamp(0, 1)
        model = engine.run(low).clamp(0, 1)
        rows.append({
            "image": f"{name} {width}x{height}",
            "psnr_bicubic": psnr(bicubic, original), "psnr_model": psnr(model, original),
            "psnr_y_bicubic": psnr(luma(bicubic), luma(original)),
            "psnr_y_model": psnr(luma(model), luma(original)),
            "sharpness_ratio": gradient_energy(model) / gradient_energy(bicubic),
            "sharpness_original": gradient_energy(original) / gradient_energy(bicubic),
        })
    return rows


def luma(image):  # noqa: ANN001,ANN201
    weights = image.new_tensor([65.481, 128.553, 24.966]).view(1, 3, 1, 1) / 255
    return (image * weights).sum(1, keepdim=True) + 16 / 255


def psnr(a, b, shave: int = 4) -> float:  # noqa: ANN001
    import math

    diff = (a - b)[..., shave:-shave, shave:-shave]
    return 10 * math.log10(1 / float(diff.pow(2).mean()))


def gradient_energy(image) -> float:  # noqa: ANN001
    dy = image[..., 1:, :] - image[..., :-1, :]
    dx = image[..., :, 1:] - image[..., :, :-1]
    return float(dy.pow(2).mean() + dx.pow(2).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=str(DEFAULT_CHECKPOINT))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--size", type=int, default=768, help="input side in pixels")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args.checkpoint, args.size)))
        return
    if not Path(args.checkpoint).exists():
        sys.exit(f"{args.checkpoint}: checkpoint not found; pass --checkpoint")

    import torch

    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}, CPU")
    print(f"input {args.size}x{args.size} real photo -> x4 = {(args.size * 4) ** 2 / 1e6:.1f} MP output; "
          f"median of {args.runs} runs, each in a fresh process\n")
    results = {}
    rows = []
    for config in ("naive", "imgan-tile128", "imgan-auto", "imgan-untiled"):
        runs = []
        for _ in range(args.runs):
            line = subprocess.run(
                [sys.executable, __file__, "--one", config, "--checkpoint", args.checkpoint,
                 "--size", str(args.size)], capture_output=True, text=True, check=True,
            ).stdout.strip().splitlines()[-1]
            runs.append(json.loads(line))
        seconds = statistics.median(r["seconds"] for r in runs)
        peak = statistics.median(r["peak_bytes"] for r in runs)
        results[config] = seconds
        megapixels = (args.size * 4) ** 2 / 1e6
        rows.append((config, seconds, megapixels / seconds, peak))
    # After the timed runs: Linux keeps ru_maxrss across execve, so a child would inherit this
    # process's high-water mark.
    seams = seam_error(args.checkpoint, args.size)
    for config, seconds, speed, peak in rows:
        print(f"{config:>14}: {seconds:7.2f} s  {speed:6.2f} MP/s  peak RSS {peak / 2**20:6.0f} MiB"
              f"  max diff from whole image {seams[config]:5.2f}/255")
    print()
    for config in ("imgan-tile128", "imgan-auto", "imgan-untiled"):
        print(f"{config} speed / naive speed: {results['naive'] / results[config]:.2f}x")
    print("(naive: 128 px tiles, 10 px context; imgan-tile128: at most 128 px tiles, 32 px blended overlap)\n")

    print("quality, x4 (PSNR against the original after a x4 bicubic downscale; 4 px shave):")
    print(f"{'image':>22} {'bicubic':>8} {'model':>8} {'Y bic':>7} {'Y model':>8} {'sharpness':>10} {'(orig)':>7}")
    for row in quality(args.checkpoint):
        print(f"{row['image']:>22} {row['psnr_bicubic']:8.2f} {row['psnr_model']:8.2f} "
              f"{row['psnr_y_bicubic']:7.2f} {row['psnr_y_model']:8.2f} "
              f"{row['sharpness_ratio']:9.2f}x {row['sharpness_original']:6.2f}x")
    print("sharpness = mean squared gradient relative to bicubic upsampling of the same input")


if __name__ == "__main__":
    main()
