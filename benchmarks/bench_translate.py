"""Speed and tiling of imgan stylize, and the costs of the age and sketch2photo front ends.

Prints, for a real photograph (skimage astronaut, mirrored to the requested size):
  * CycleGAN at its published size (ngf 64, 9 blocks; random weights: speed and tiling do not
    depend on the values) untiled, tiled with whole-image normalisation statistics (imgan), and
    tiled with each tile normalised alone (what a plain tile loop does): seconds and peak RSS,
    median of several runs each in a fresh process, with ratios against untiled; and how far
    each tiled result is from the untiled one (mean and max over pixels, and the spread of the
    mean error between 64 px cells, which is what shows as blocks of different colour).
  * face detection time on astronaut and grace_hopper (matplotlib), and the time of
    ``sketch_from_photo`` at 256 px and at the photo's size.

Usage: python benchmarks/bench_translate.py [--runs 3] [--size 1024] [--tile 384]
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

PARAMS = {"in_channels": 3, "out_channels": 3, "num_features": 64, "num_blocks": 9}


def photo(size: int):  # noqa: ANN201 - tensor
    """The skimage astronaut (NASA, public domain) mirrored to ``size`` x ``size``."""
    import numpy as np
    import torch
    from skimage import data

    image = data.astronaut()
    reps = -(-size // image.shape[0])
    image = np.concatenate([np.concatenate([image, image[:, ::-1]] * reps, axis=1)] * reps, axis=0)
    return torch.from_numpy(image[:size, :size].copy()).permute(2, 0, 1)[None].float() / 255


def engine(tile: int):  # noqa: ANN201 - Engine
    import torch

    from imgan.archs import ARCHS, build_model
    from imgan.descriptor import ModelDescriptor
    from imgan.engine import Engine

    torch.manual_seed(0)
    module = build_model("cyclegan", PARAMS)
    descriptor = ModelDescriptor(module=module, name="cyclegan", arch="cyclegan", task="stylize", scale=1,
                                 size_multiple=4, value_range=(-1.0, 1.0), tile_overlap=ARCHS["cyclegan"].tile_overlap)
    return Engine(descriptor, torch.device("cpu"), tile_size=tile)


def run_one(config: str, size: int, tile: int, save: str) -> dict:
    """One configuration in this process: seconds and peak RSS (and the result saved to ``save``)."""
    import torch

    from imgan.tiling import run_tiled

    image = photo(size)
    if config == "untiled":
        worker = engine(0)
        run = worker.run
    elif config == "shared":
        run = engine(tile).run
    else:  # each tile normalised by its own statistics
        worker = engine(0)
        worker.descriptor.module.to(memory_format=torch.channels_last)

        def run(image):  # noqa: ANN001,ANN202
            with torch.no_grad():
                return run_tiled(worker.descriptor, image, scale=1, tile_size=tile,
                                 overlap=worker.descriptor.tile_overlap, multiple=4, batch_size=1)
    start = time.perf_counter()
    result = run(image)
    seconds = time.perf_counter() - start
    torch.save(result, save)
    return {"seconds": seconds, "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def differences(untiled, tiled, cell: int = 64) -> dict[str, float]:  # noqa: ANN001
    error = (tiled - untiled) * 255
    cells = error.unfold(2, cell, cell).unfold(3, cell, cell).mean(dim=(-1, -2))
    spread = (cells.amax(dim=(2, 3)) - cells.amin(dim=(2, 3))).max()
    return {"mean": float(error.abs().mean()), "max": float(error.abs().max()), "cell_spread": float(spread)}


def front_ends(size: int) -> None:
    import numpy as np
    from PIL import Image
    from skimage import data

    from imgan.edges import sketch_from_photo
    from imgan.faces import detect_faces

    faces = {"astronaut": data.astronaut()}
    try:
        import matplotlib.cbook

        with Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg")) as image:
            faces["grace_hopper"] = np.asarray(image.convert("RGB"))
    except ImportError:
        pass
    for name, rgb in faces.items():
        times = []
        for _ in range(3):
            start = time.perf_counter()
            found = detect_faces(rgb)
            times.append(time.perf_counter() - start)
        print(f"detect_faces {name} {rgb.shape[1]}x{rgb.shape[0]}: {len(found)} face(s) "
              f"{[str(face) for face in found]}, median {statistics.median(times):.2f} s")
    for side in (256, size):
        image = photo(side)
        times = []
        for _ in range(5):
            start = time.perf_counter()
            sketch_from_photo(image)
            times.append(time.perf_counter() - start)
        print(f"sketch_from_photo {side}x{side}: median {statistics.median(times) * 1000:.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--tile", type=int, default=384)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--save", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args.size, args.tile, args.save)))
        return

    import tempfile

    import torch

    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; {args.size}x{args.size} photo, tile {args.tile}, "
          f"CycleGAN ngf 64 / 9 blocks, median of {args.runs} runs")
    results: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(args.runs):
            for config in ("untiled", "shared", "independent"):
                save = f"{folder}/{config}.pt"
                output = subprocess.run(
                    [sys.executable, __file__, "--one", config, "--size", str(args.size), "--tile", str(args.tile),
                     "--save", save], capture_output=True, text=True, check=True).stdout
                results.setdefault(config, []).append(json.loads(output.splitlines()[-1]))
        untiled = torch.load(f"{folder}/untiled.pt")
        errors = {config: differences(untiled, torch.load(f"{folder}/{config}.pt"))
                  for config in ("shared", "independent")}
    base = statistics.median(r["seconds"] for r in results["untiled"])
    for config, runs in results.items():
        seconds = statistics.median(r["seconds"] for r in runs)
        peak = statistics.median(r["peak_mib"] for r in runs)
        line = f"{config:12s} {seconds:6.2f} s ({seconds / base:.2f}x untiled)  peak RSS {peak:6.0f} MiB"
        if config in errors:
            error = errors[config]
            line += (f"  vs untiled: mean {error['mean']:.2f}/255, max {error['max']:.1f}/255, "
                     f"64px-cell spread {error['cell_spread']:.2f}/255")
        print(line)
    front_ends(args.size)


if __name__ == "__main__":
    main()
