"""Peak memory of ``imgan upscale`` against the size of what it writes, across sizes and scales.

Every run is a fresh process running ``imgan upscale``. Its peak resident memory is measured
from the moment it starts reading the input (Linux: the peak is reset through
``/proc/self/clear_refs``), so imports and model loading, whose transient peaks would hide
everything under ~100 MB, are left out. For each input (generated noise or flat PNG) and
``--scale`` it prints:

  output MB   the written image's own size: width x height x channels x bytes per sample
  input MB    the decoded input as the float32 tensor every task receives (4 bytes a sample)
  peak MB     peak RSS of the run: process, torch and weights included
  extra MB    growth of RSS from reading on, less that of the same command on one tile's input
              (a tile's working memory, part of "the model")
  ratio       extra / output

Every run uses the same ``--tile`` (default 256), so no run needs more per tile than the
one-tile run. With glibc's malloc, freed tile-sized buffers are partly kept resident (it raises its
mmap threshold to the largest block freed, up to 32 MiB); ``MALLOC_MMAP_THRESHOLD_=1048576`` in
the environment turns that off and shows the memory actually in use.

``--code DIR`` runs the imgan package found in DIR instead of the installed one, e.g. the last
commit for a before/after table::

    mkdir /tmp/imgan_head && git archive HEAD | tar -x -C /tmp/imgan_head
    python benchmarks/bench_memory.py --code /tmp/imgan_head

``--model tiny`` (default) is a random-weight SRVGG x4 (16 features, 4 convs): memory is about
data, not weights, and it keeps each run within seconds on two cores. ``--model imgan-sr-x4`` or a
checkpoint path measures a real network.

Usage: python benchmarks/bench_memory.py [--sizes 512 1024 2048] [--scales 1 2 4]
       [--kinds noise] [--model tiny] [--format png] [--code DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DRIVER = """
import sys
import imgan.io

def resident(field):
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith(field))

start = []
read_picture = imgan.io.read_picture

def read_from_here(*args, **kwargs):
    if not start:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")  # the peak (VmHWM) starts again from the present size
        start.append(resident("VmRSS:"))
    return read_picture(*args, **kwargs)

imgan.io.read_picture = read_from_here
from imgan.cli import app
try:
    app(sys.argv[1:])
    code = 0
except SystemExit as exit_:
    code = exit_.code or 0
print(resident("VmHWM:"), start[0] if start else 0, code)
"""
TINY_MODEL = (
    "import sys, torch\n"
    "from imgan.archs.srvgg import SRVGGNetCompact\n"
    "torch.manual_seed(0)\n"
    "net = SRVGGNetCompact(num_features=16, num_conv=4, scale=4)\n"
    "torch.save({'params': net.state_dict()}, sys.argv[1])\n"
)


def peak_rss(arguments: list[str], *, env: dict[str, str], cwd: Path) -> tuple[int, int, float]:
    """Run ``imgan ARGUMENTS`` in a fresh process: its peak resident bytes, the resident bytes when
    it started reading its input, and the wall time.

    ``cwd`` must not hold an ``imgan`` folder: ``python -c`` imports from there before PYTHONPATH.
    """
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", DRIVER, *arguments], env=env, cwd=cwd,
                            stdin=subprocess.DEVNULL, capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - started
    peak, start, code = result.stdout.split()[-3:]
    if code != "0":
        raise RuntimeError(f"imgan {' '.join(arguments)} exited with {code}:\n{result.stderr}")
    return int(peak), int(start), seconds


def make_image(path: Path, size: int, kind: str) -> Path:
    """A ``size`` x ``size`` RGB PNG of uniform noise, or of one flat grey."""
    import numpy as np
    from PIL import Image

    if kind == "noise":
        pixels = np.random.default_rng(size).integers(0, 256, (size, size, 3), dtype=np.uint8)
    else:
        pixels = np.full((size, size, 3), 128, dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024, 2048])
    parser.add_argument("--scales", type=float, nargs="+", default=[1, 2, 4])
    parser.add_argument("--kinds", nargs="+", choices=("noise", "flat"), default=["noise"])
    parser.add_argument("--model", default="tiny", help="tiny, a catalogue name or a checkpoint path")
    parser.add_argument("--format", default="png", help="output format (png, jpg, ...)")
    parser.add_argument("--tile", type=int, default=256, help="tile size of every run (and the baseline's input side)")
    parser.add_argument("--code", help="a folder holding the imgan package to measure instead")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="imgan-bench-memory-"))
    env = {**os.environ, "IMGAN_OFFLINE": "1", "IMGAN_HOME": str(work / "home")}
    if args.code:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(args.code).resolve()),
                                                          env.get("PYTHONPATH")]))
    model = args.model
    if model == "tiny":
        model = str(work / "tiny_x4.pth")
        subprocess.run([sys.executable, "-c", TINY_MODEL, model], env=env, cwd=work, check=True)

    def upscale(source: Path, scale: float | None) -> tuple[int, int, float]:
        arguments = ["upscale", str(source), "--model", model, "--tile", str(args.tile),
                     "-o", str(work / f"out.{args.format}"), "--overwrite", "--quiet"]
        return peak_rss(arguments + ([] if scale is None else ["--scale", f"{scale:g}"]), env=env, cwd=work)

    peak, start, _ = upscale(make_image(work / "baseline.png", args.tile, "noise"), None)
    one_tile = peak - start
    threshold = os.environ.get("MALLOC_MMAP_THRESHOLD_", "glibc default")
    print(f"code: {args.code or 'installed imgan'}; model {args.model}; output {args.format}; tile {args.tile}; "
          f"MALLOC_MMAP_THRESHOLD_ {threshold}; one tile's run grows {one_tile / 1e6:.0f} MB from reading on\n")
    print(f"{'input':>12} {'scale':>5} {'output MB':>10} {'input MB':>9} {'peak MB':>8} {'extra MB':>9} "
          f"{'ratio':>6} {'seconds':>8}")
    for kind in args.kinds:
        for size in args.sizes:
            source = make_image(work / f"{kind}_{size}.png", size, kind)
            for scale in args.scales:
                peak, start, seconds = upscale(source, scale)
                side = max(1, round(size * scale))
                output = side * side * 3
                extra = peak - start - one_tile
                print(f"{kind + ' ' + str(size):>12} {scale:>5g} {output / 1e6:10.1f} "
                      f"{size * size * 3 * 4 / 1e6:9.1f} {peak / 1e6:8.0f} {extra / 1e6:9.0f} "
                      f"{extra / output:6.2f} {seconds:8.1f}", flush=True)
    print("\nratio = extra / output size in its bit depth; input MB = the decoded float32 input every task "
          "receives (reading is not part of this change)")


if __name__ == "__main__":
    main()
