"""The full-size fuzz run: a corpus of 1,000+ generated inputs through every image command.

``tests/test_fuzz.py`` runs about 600 inputs in seconds; this makes the corpus at ``--scale``
(4: about 1,300 files, more cuts and byte flips of every valid image) in a temporary folder
and runs each command as the installed command line in its own process, with the real
512 px aging frame. Prints, per command: exit code, seconds, peak RSS, how many inputs were
written and failed, and every rule broken (a traceback, an exit code other than 1, a control
not written or at the wrong size, an output for an undecodable input, a temporary file left,
an input changed), then the corpus composition. Exits 1 if any rule was broken.

Usage: python benchmarks/fuzz_full.py [--scale 4] [--seed 0] [--commands upscale,stylize,sketch2photo,age]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fuzzcorpus import SCALES, check_batch, command_line, make_corpus, snapshot, tiny_models  # noqa: E402

# Peak RSS of the child, in kB (Linux ru_maxrss units), printed after it ran.
RUNNER = "import resource, runpy, sys; sys.argv = ['imgan', *sys.argv[1:]]\n" \
         "try:\n    runpy.run_module('imgan', run_name='__main__')\n" \
         "finally:\n    print('RSS', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--commands", default=",".join(SCALES))
    args = parser.parse_args()

    broken = 0
    with tempfile.TemporaryDirectory(prefix="imgan-fuzz-") as folder:
        base = Path(folder)
        os.environ["IMGAN_HOME"] = str(base / "home")
        started = time.perf_counter()
        corpus = make_corpus(base / "corpus", seed=args.seed, scale=args.scale)
        print(f"corpus: {len(corpus.entries)} inputs in {time.perf_counter() - started:.1f}s "
              f"(seed {args.seed}, scale {args.scale})")
        models = tiny_models(base / "models")
        for command in args.commands.split(","):
            out = base / "out" / command
            before = snapshot(corpus.folder)
            started = time.perf_counter()
            arguments = command_line(command, corpus, models[command], out)
            result = subprocess.run([sys.executable, "-c", RUNNER, *arguments], capture_output=True, text=True,
                                    cwd=ROOT)
            seconds = time.perf_counter() - started
            stderr = result.stderr
            rss = next((line.split()[1] for line in stderr.splitlines() if line.startswith("RSS ")), "?")
            stderr = "\n".join(line for line in stderr.splitlines() if not line.startswith("RSS "))
            statuses: dict[str, int] = {}
            for line in result.stdout.splitlines():
                try:
                    status = json.loads(line)["status"]
                except (ValueError, KeyError):
                    continue
                statuses[status] = statuses.get(status, 0) + 1
            problems = check_batch(corpus, command, out, exit_code=result.returncode, stdout=result.stdout,
                                   stderr=stderr, before=before)
            broken += len(problems)
            print(f"{command:>13}: exit {result.returncode}, {seconds:6.1f}s, peak RSS {rss} kB, "
                  f"{statuses.get('ok', 0)} written, {statuses.get('failed', 0)} failed, {len(problems)} broken rules")
            for problem in problems:
                print(f"    {problem.replace(str(corpus.folder) + os.sep, '')[:400]}")
        print("composition:", ", ".join(f"{kind} {count}" for kind, count in sorted(corpus.counts().items())))
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
