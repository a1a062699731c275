"""Fetch the offline photo pool and the held-out photos for the inpainting default.

The same sources as the default upscaler (``recipes/default_x4/prepare_data.py``, whose code this
reuses): Debian wallpaper packages and the mvtb-data wheel, listed with their licences in
``../shared/data/README.md``; nothing is committed. Layout written under DATA_DIR:

    train/                     symlinks to the training photos (the held-out photos excluded)
    eval/lomiri13/, eval/palapeli5/
    inpaint-heldout/           the 18 held-out photos of both sets together, for imgan eval --task inpaint

Usage: python recipes/inpaint_photos/prepare_data.py DATA_DIR
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

RECIPES = Path(__file__).resolve().parents[1]


def default_x4_recipe():  # noqa: ANN201 - a module
    """recipes/default_x4/prepare_data.py as a module (recipes are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location("default_x4_prepare", RECIPES / "default_x4" / "prepare_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    data = Path(sys.argv[1])
    recipe = default_x4_recipe()
    recipe.fetch(data)
    recipe.build(data)
    heldout = data / "inpaint-heldout"
    heldout.mkdir(exist_ok=True)
    for photo in sorted((data / "eval").glob("*/*")):
        target = heldout / photo.name
        if not target.exists():
            target.symlink_to(photo.resolve())
    print(f"held out for inpainting: {len(list(heldout.iterdir()))} photos in {heldout}")


if __name__ == "__main__":
    main()
