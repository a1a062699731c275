"""What a small hole costs in photos of growing size, for imgan inpaint's crop, resize and full strategies.

Prints, for a real photograph (skimage astronaut, mirrored to each size) with the same small hole
(a 120x80 box and a stroke beside it, about 0.02 MP) in its centre:
  * the seconds ``imgan.tasks.inpaint.inpaint_picture`` takes (the whole task: mask blending
    weights, regions, model, blending back; not reading or writing files) and the peak RSS, median
    of several runs each in a fresh process, for each strategy, with the ratio to the same
    strategy on the smallest photo, and the fastest run (on a machine shared with other jobs the
    fastest run says best what the work itself costs);
  * the whole command (``imgan inpaint photo.jpg --mask mask.png``: decoding, the task, encoding
    and writing the JPEG) for the smallest and the largest photo, median of the same number of runs.

The model is imgan's inpainter at its shipped size (``imgan-inpaint``, or random weights of the same
shape when the embedded file is absent: speed does not depend on the values). ``--full-max`` caps
the photo size the full strategy is run on (it runs the network on every pixel: minutes and many
GB at 24 MP on a CPU).

Usage: python benchmarks/bench_inpaint.py [--runs 5] [--sizes 1,4,12,24] [--full-max 4]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PARAMS = {"in_channels": 4, "out_channels": 3, "num_features": 16, "num_blocks": 4}
ASPECT = (3, 2)  # width : height, as a camera


def dimensions(megapixels: float) -> tuple[int, int]:
    """(height, width) of a 3:2 photo of about ``megapixels``."""
    unit = (megapixels * 1e6 / (ASPECT[0] * ASPECT[1])) ** 0.5
    return round(unit * ASPECT[1]), round(unit * ASPECT[0])


def photo(height: int, width: int):  # noqa: ANN201 - Picture
    """The skimage astronaut (NASA, public domain) mirrored to ``height`` x ``width``, as a Picture."""
    import numpy as np
    import torch
    from skimage import data

    from imgan.io import Picture

    tile = np.concatenate([data.astronaut(), data.astronaut()[:, ::-1]], axis=1)
    tile = np.concatenate([tile, tile[::-1]], axis=0)
    image = np.tile(tile, (-(-height // tile.shape[0]), -(-width // tile.shape[1]), 1))[:height, :width]
    rgb = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float().div_(255)
    return Picture(rgb=rgb, alpha=None, bit_depth=8, grayscale=False, icc_profile=None, exif=None,
                   source_format="jpg", name="photo.jpg")


def hole(height: int, width: int):  # noqa: ANN201 - tensor
    """The benchmark's hole: a 120x80 box and a 6 px stroke beside it, in the centre."""
    import cv2
    import numpy as np
    import torch

    mask = np.zeros((height, width), np.uint8)
    top, left = height // 2 - 40, width // 2 - 60
    mask[top : top + 80, left : left + 120] = 1
    cv2.line(mask, (left + 140, top), (left + 200, top + 90), 1, 6)
    return torch.from_numpy(mask.astype(bool))[None, None]


def engine():  # noqa: ANN201 - Engine
    import torch

    from imgan.archs import build_model
    from imgan.descriptor import ModelDescriptor
    from imgan.engine import Engine
    from imgan.errors import ImganError
    from imgan.models import load_model

    try:
        descriptor = load_model("imgan-inpaint", task="inpaint")
    except ImganError:  # the embedded file is absent: the same shape with random weights
        torch.manual_seed(0)
        descriptor = ModelDescriptor(module=build_model("inpaint_ffc", PARAMS), name="random", arch="inpaint_ffc",
                                     task="inpaint", scale=1, in_channels=4, size_multiple=4, tileable=False,
                                     working_size=512)
    return Engine(descriptor, torch.device("cpu"), tile_size=0)


def run_one(strategy: str, megapixels: float) -> dict:
    """One task run in this process: seconds and peak RSS."""
    from imgan.tasks.inpaint import inpaint_picture

    height, width = dimensions(megapixels)
    picture, holes, runner = photo(height, width), hole(height, width), engine()
    started = time.perf_counter()
    inpaint_picture(picture, holes, runner, strategy=strategy)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def fresh(strategy: str, megapixels: float) -> dict:
    command = [sys.executable, __file__, "--one", strategy, str(megapixels)]
    finished = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(finished.stdout.strip().splitlines()[-1])


def command_seconds(megapixels: float, folder: Path, runs: int) -> tuple[float, float]:
    """Median and fastest seconds of the whole ``imgan inpaint`` command on a JPEG of this size."""
    from PIL import Image

    height, width = dimensions(megapixels)
    source, mask = folder / f"photo{megapixels:g}.jpg", folder / f"photo{megapixels:g}_mask.png"
    image = photo(height, width).rgb[0].permute(1, 2, 0).mul(255).round().byte().numpy()
    Image.fromarray(image).save(source, quality=92)
    Image.fromarray(hole(height, width)[0, 0].numpy().astype("uint8") * 255).save(mask)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(["imgan", "inpaint", str(source), "--mask", str(mask), "--overwrite", "-q"], check=True,
                       capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times), min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--sizes", default="1,4,12,24", help="photo sizes in megapixels")
    parser.add_argument("--full-max", type=float, default=4, help="largest photo (MP) for the full strategy")
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one[0], float(args.one[1]))))
        return
    sizes = [float(size) for size in args.sizes.split(",")]
    print(f"# {platform.machine()}, {len(__import__('os').sched_getaffinity(0))} CPU cores; median of {args.runs} "
          "fresh processes")
    print("| photo | strategy | task time (median) | fastest run | fastest vs the smallest photo | peak RSS |")
    print("|---|---|---|---|---|---|")
    first: dict[str, float] = {}
    for strategy in ("crop", "resize", "full"):
        for megapixels in sizes:
            if strategy == "full" and megapixels > args.full_max:
                continue
            results = [fresh(strategy, megapixels) for _ in range(args.runs)]
            seconds = statistics.median(r["seconds"] for r in results)
            fastest = min(r["seconds"] for r in results)
            rss = statistics.median(r["rss_mib"] for r in results)
            first.setdefault(strategy, fastest)
            height, width = dimensions(megapixels)
            print(f"| {width}x{height} ({megapixels:g} MP) | {strategy} | {seconds:.2f} s | {fastest:.2f} s | "
                  f"{fastest / first[strategy]:.2f}x | {rss:.0f} MiB |", flush=True)
    with tempfile.TemporaryDirectory() as folder:
        for megapixels in (sizes[0], sizes[-1]):
            median, fastest = command_seconds(megapixels, Path(folder), args.runs)
            print(f"whole command, {megapixels:g} MP JPEG, crop: {median:.2f} s (fastest {fastest:.2f} s)", flush=True)


if __name__ == "__main__":
    main()
