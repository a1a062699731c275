"""Object photos on white for the sketch2photo default: Tux Paint's stamps, composited and framed.

tuxpaint-stamps-default (Debian, GPL-2) holds about 550 cut-out objects with alpha (photos and
cartoons: fruit, animals, tools, vehicles...). Each is composited onto white paper, centred in a
square with a margin (the object fills about 85%, as the shoes of edges2shoes do) and resized
to SIZE. Every 20th image is held out for validation. Nothing is committed: run this script.

Usage: python recipes/sketch2photo_objects/prepare_data.py DATA_DIR [SIZE]
Writes DATA_DIR/objects/{train,val}/*.png
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from PIL import Image

PACKAGE = "tuxpaint-stamps-default"
FILL = 0.85
MIN_SIDE = 128  # smaller stamps would be blown up


def fetch(data: Path) -> Path:
    debs, root = data / "debs", data / "root"
    debs.mkdir(parents=True, exist_ok=True)
    if not list(debs.glob(f"{PACKAGE}_*.deb")):
        subprocess.run(["apt-get", "download", PACKAGE], cwd=debs, check=True)
    stamps = root / "usr/share/tuxpaint/stamps"
    if not stamps.is_dir():
        [deb] = debs.glob(f"{PACKAGE}_*.deb")
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    return stamps


def frame(path: Path, size: int) -> Image.Image | None:
    with Image.open(path) as image:
        image = image.convert("RGBA")
    box = image.getchannel("A").point(lambda a: 255 if a > 16 else 0).getbbox()
    if box is None:
        return None
    image = image.crop(box)
    if max(image.size) < MIN_SIDE:
        return None
    side = round(max(image.size) / FILL)
    paper = Image.new("RGBA", (side, side), (255, 255, 255, 255))
    paper.alpha_composite(image, ((side - image.width) // 2, (side - image.height) // 2))
    return paper.convert("RGB").resize((size, size), Image.Resampling.LANCZOS)


def main() -> None:
    data = Path(sys.argv[1])
    size = int(sys.argv[2]) if len(sys.argv) > 2 else 256
    stamps = fetch(data)
    paths = sorted(p for p in stamps.rglob("*.png") if "symbols" not in p.relative_to(stamps).parts
                   and not p.stem.endswith(("_mirror", "_flip")))
    kept = 0
    for folder in ("train", "val"):
        (data / "objects" / folder).mkdir(parents=True, exist_ok=True)
    for path in paths:
        framed = frame(path, size)
        if framed is None:
            continue
        folder = "val" if kept % 20 == 19 else "train"
        name = "_".join(path.relative_to(stamps).with_suffix("").parts)
        framed.save(data / "objects" / folder / f"{name}.png")
        kept += 1
    print(f"{kept} objects from {len(paths)} stamps in {data / 'objects'}")


if __name__ == "__main__":
    main()
