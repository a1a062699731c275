"""Public-domain paintings for a photo-to-painting CycleGAN: GCompris' jigsaw and detail boards.

gcompris-qt-data (Debian) keeps 21 public-domain paintings and prints cut into jigsaw pieces
(paintings.rcc: Renoir, Van Gogh, Cassatt, Bazille, Kandinsky, Hokusai, Hiroshige...) and whole
Van Gogh paintings behind its "details" game (details.rcc). The Qt resource bundles are
unpacked, each jigsaw board is reassembled from its pieces (positions are the pieces' centres
as fractions of the board), the one photograph (Michelangelo's Pieta) is left out, and every
painting is written as PNG. Nothing is committed: run this script.

Usage: python recipes/stylize_paintings/prepare_data.py DATA_DIR
Writes DATA_DIR/paintings/*.png (the photo domain is DATA_DIR/train from recipes/default_x4).
"""

from __future__ import annotations

import re
import struct
import subprocess
import sys
import zlib
from pathlib import Path

from PIL import Image

PACKAGE = "gcompris-qt-data"
NOT_PAINTINGS = ("Pieta", "Pietà")
VAN_GOGH_DETAILS = ("Gogh4", "PortraitOfPereTanguy", "Van_Gogh_The_Night_Cafe", "VincentVanGogh0012",
                    "VincentVanGogh0013", "VincentVanGogh0019", "VincentVanGoghBridge", "Eglise_dAuvers-sur-Oise")


def unpack_rcc(bundle: bytes) -> dict[str, bytes]:
    """Files of a Qt resource bundle (format versions 1-3, zlib entries): path -> bytes."""
    if bundle[:4] != b"qres":
        raise ValueError("not a Qt resource bundle")
    version, tree, data, names = struct.unpack(">IIII", bundle[4:20])
    entry = 14 if version == 1 else 22
    files: dict[str, bytes] = {}

    def name(offset: int) -> str:
        offset += names
        length = struct.unpack(">H", bundle[offset : offset + 2])[0]
        return bundle[offset + 6 : offset + 6 + 2 * length].decode("utf-16-be")

    def visit(index: int, prefix: str) -> None:
        at = tree + index * entry
        name_offset, flags = struct.unpack(">IH", bundle[at : at + 6])
        path = f"{prefix}/{name(name_offset)}" if index else ""
        if flags & 2:  # a directory: its children are consecutive entries
            count, first = struct.unpack(">II", bundle[at + 6 : at + 14])
            for child in range(first, first + count):
                visit(child, path)
            return
        start = data + struct.unpack(">I", bundle[at + 10 : at + 14])[0]
        size = struct.unpack(">I", bundle[start : start + 4])[0]
        raw = bundle[start + 4 : start + 4 + size]
        files[path.lstrip("/")] = zlib.decompress(raw[4:]) if flags & 1 else raw

    visit(0, "")
    return files


def open_image(data: bytes) -> Image.Image:
    import io

    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGBA")


def reassemble(board: str, files: dict[str, bytes], folder: str) -> tuple[str, Image.Image] | None:
    title = re.search(r'qsTr\("([^"]+)"\)', board)
    size = re.search(r'"width"\s*:\s*(\d+),\s*"height"\s*:\s*(\d+)', board)
    pieces = re.findall(r'"pixmapfile"\s*:\s*"([^"]+\.webp)",\s*"x"\s*:\s*"([\d.]+)",\s*"y"\s*:\s*"([\d.]+)"', board)
    if not (title and size and pieces):
        return None
    width, height = int(size.group(1)), int(size.group(2))
    canvas = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    for path, x, y in pieces:
        piece = open_image(files[f"{folder}/{path}"])
        canvas.alpha_composite(piece, (round(float(x) * width - piece.width / 2),
                                       round(float(y) * height - piece.height / 2)))
    box = canvas.getchannel("A").getbbox()
    return title.group(1), canvas.crop(box).convert("RGB")


def main() -> None:
    data = Path(sys.argv[1])
    debs, out = data / "debs", data / "paintings"
    debs.mkdir(parents=True, exist_ok=True)
    if not list(debs.glob(f"{PACKAGE}_*.deb")):
        subprocess.run(["apt-get", "download", PACKAGE], cwd=debs, check=True)
    rcc = data / "root/usr/share/gcompris-qt/rcc"
    if not rcc.is_dir():
        [deb] = debs.glob(f"{PACKAGE}_*.deb")
        subprocess.run(["dpkg-deb", "-x", str(deb), str(data / "root")], check=True)
    out.mkdir(parents=True, exist_ok=True)
    count = 0
    paintings = unpack_rcc((rcc / "paintings.rcc").read_bytes())
    folder = "gcompris/src/activities/paintings/resource"
    for path, content in sorted(paintings.items()):
        if not (path.startswith(f"{folder}/board/") and path.endswith(".qml")):
            continue
        made = reassemble(content.decode("utf-8"), paintings, folder)
        if made is None or any(word in made[0] for word in NOT_PAINTINGS):
            continue
        made[1].save(out / f"{Path(path).stem}.png")
        count += 1
    details = unpack_rcc((rcc / "details.rcc").read_bytes())
    for stem in VAN_GOGH_DETAILS:
        path = f"gcompris/src/activities/details/resource/image/{stem}_background.webp"
        open_image(details[path]).convert("RGB").save(out / f"{stem}.png")
        count += 1
    print(f"{count} paintings in {out}")


if __name__ == "__main__":
    main()
