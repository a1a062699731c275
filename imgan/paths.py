"""Input expansion (files, directories, globs, stdin) and output naming from templates."""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path

from imgan.errors import InputError, OutputError, UsageError
from imgan.io import SUPPORTED_FORMATS, format_for_path, is_image_path

STDIO = "-"
DEFAULT_TEMPLATE = "{dir}/{stem}_{suffix}.{ext}"
DIRECTORY_TEMPLATE = "{relpath}/{stem}_{suffix}.{ext}"
TEMPLATE_FIELDS = ("stem", "ext", "scale", "model", "relpath", "dir", "suffix")


@dataclass(frozen=True)
class Source:
    """One input: a file (with the directory or glob base it was found under) or stdin."""

    path: Path | None
    root: Path | None = None

    @property
    def is_stdin(self) -> bool:
        return self.path is None

    @property
    def name(self) -> str:
        return "<stdin>" if self.path is None else str(self.path)

    @property
    def relpath(self) -> str:
        """The file's folder relative to the directory or glob base it came from ('' if none)."""
        if self.path is None or self.root is None:
            return ""
        parent = os.path.relpath(self.path.parent, self.root)
        return "" if parent == "." else parent


def resolved(path: Path) -> Path:
    """``path.resolve()``, or the absolute path where a symlink loop makes resolving impossible."""
    try:
        return path.resolve()
    except (RuntimeError, OSError):
        return path.absolute()


def _glob_base(pattern: str) -> Path:
    """The longest leading part of a glob pattern without wildcards."""
    parts = Path(pattern).parts
    base: list[str] = []
    for part in parts:
        if glob.has_magic(part):
            break
        base.append(part)
    return Path(*base) if base else Path(".")


def expand_inputs(arguments: list[str]) -> tuple[list[Source], list[Source]]:
    """Expand files, directories (recursively), globs (``**`` included) and ``-``.

    Returns the sources in a stable order without duplicates, and the directory and pattern
    arguments that matched no image.
    """
    sources: list[Source] = []
    unmatched: list[Source] = []
    seen: set[Path] = set()

    def add(path: Path, root: Path | None) -> None:
        key = resolved(path)
        if key not in seen:
            seen.add(key)
            sources.append(Source(path, root))

    for argument in arguments:
        if argument == STDIO:
            sources.append(Source(None))
            continue
        path = Path(argument)
        if path.is_dir():
            found = sorted(
                p for p in path.rglob("*")
                if p.is_file() and is_image_path(p)
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
            if not found:
                unmatched.append(Source(path))
            for file in found:
                add(file, path)
        elif glob.has_magic(argument) and not path.exists():
            matches = sorted(Path(m) for m in glob.glob(argument, recursive=True))
            files = [m for m in matches if m.is_file() and is_image_path(m)]
            if not files:
                unmatched.append(Source(path))
            base = _glob_base(argument)
            for file in files:
                add(file, base)
        else:
            # Missing and unreadable files are reported by the reader, one line per file.
            add(path, None)
    return sources, unmatched


def output_format(source: Source, requested: str, *, stdin_format: str = "png") -> str:
    """The output format: the requested one, or the input's own when it is writeable."""
    if requested != "same":
        return format_for_path(Path(f"x.{requested}"))
    if source.path is None:
        return stdin_format
    try:
        fmt = format_for_path(source.path)
    except (InputError, OutputError):
        return "png"
    return fmt if fmt in SUPPORTED_FORMATS else "png"


def output_extension(source: Source, fmt: str) -> str:
    """The output's extension: the input's own spelling when it is the same format (.tif, .jpeg)."""
    if source.path is not None:
        suffix = source.path.suffix.lower().lstrip(".")
        try:
            if suffix and format_for_path(source.path) == fmt:
                return suffix
        except (InputError, OutputError):
            pass
    return fmt


def check_out_template(template: str | None) -> None:
    """Refuse an --out template with unknown fields before any work (exit 2)."""
    if template is None or "{" not in template:
        return
    try:
        template.format(**dict.fromkeys(TEMPLATE_FIELDS, "x"))
    except (KeyError, IndexError, ValueError) as exc:
        fields = " ".join("{" + name + "}" for name in TEMPLATE_FIELDS)
        raise UsageError(f"--out {template!r}: unknown field {exc}; the fields are {fields}") from None


def format_scale(scale: float) -> str:
    """4.0 -> '4', 2.5 -> '2.5'."""
    return str(int(scale)) if float(scale).is_integer() else f"{scale:g}"


def render_output(
    source: Source, template: str | None, *, ext: str, scale: float, model: str, suffix: str | None = None
) -> Path | None:
    """The output path for ``source``: None means stdout.

    ``template`` may be ``-`` (stdout), a directory (existing, ending in a slash, or a name
    without a suffix), a file name (for one input), or a pattern with the fields {stem} {ext}
    {scale} {model} {relpath} {dir} {suffix}. ``suffix`` is the command's tag for its outputs
    (default ``x{scale}``; ``monet``, ``photo``, ``aged`` for the translation commands). Default:
    beside the input as ``{stem}_{suffix}.{ext}``; stdin defaults to stdout.
    """
    if template == STDIO or (template is None and source.is_stdin):
        return None
    if template is None:
        template = DEFAULT_TEMPLATE
    elif "{" not in template and (
        template.endswith(("/", os.sep)) or Path(template).is_dir() or not Path(template).suffix
    ):
        template = str(Path(template) / DIRECTORY_TEMPLATE)
    stem = "stdin" if source.path is None else source.path.stem
    folder = "." if source.path is None else str(source.path.parent)
    try:
        rendered = template.format(
            stem=stem, ext=ext, scale=format_scale(scale), model=model,
            relpath=source.relpath or ".", dir=folder,
            suffix=f"x{format_scale(scale)}" if suffix is None else suffix,
        )
    except (KeyError, IndexError, ValueError) as exc:
        fields = " ".join("{" + name + "}" for name in TEMPLATE_FIELDS)
        raise OutputError(f"--out {template!r}: unknown field {exc}; the fields are {fields}") from None
    return Path(os.path.normpath(rendered))


def check_target(source: Source, target: Path, *, overwrite: bool, inputs: set[Path]) -> None:
    """Refuse to write onto any input, or onto an existing file without ``overwrite``."""
    if resolved(target) in inputs:
        raise OutputError(f"{target}: this is an input file; imgan never overwrites inputs (choose another --out)")
    if target.exists() and not overwrite:
        raise OutputError(f"{target}: already exists; pass --overwrite to replace it or --skip-existing")


def resolve_companion(given: str, source: Source, *, name: str) -> Path:
    """The file of companion ``name`` (a mask, a reference) for ``source``.

    ``given`` is one file for every input; a folder, searched for a file with the input's stem
    (under the input's relative folder first, then at its top), or a template with {stem} {ext}
    {dir} {relpath}: one without a folder (``{stem}_mask.png``) lies beside the input.
    Existence is checked when the job reads it, so a missing file fails that job alone.
    """
    stem = "stdin" if source.path is None else source.path.stem
    folder = Path(".") if source.path is None else source.path.parent
    if "{" in given:
        try:
            rendered = given.format(stem=stem, dir=str(folder), relpath=source.relpath or ".",
                                    ext="" if source.path is None else source.path.suffix.lstrip("."))
        except (KeyError, IndexError, ValueError) as exc:
            raise InputError(f"--{name} {given!r}: unknown field {exc}; the fields are {{stem}} {{ext}} "
                             "{dir} {relpath}") from None
        path = Path(rendered)
        return Path(os.path.normpath(folder / path if path.parent == Path(".") else path))
    path = Path(given)
    if not path.is_dir():
        return path
    itself = None if source.path is None else resolved(source.path)
    for candidate_folder in dict.fromkeys((path / source.relpath, path)):
        matches = sorted(
            file for file in candidate_folder.glob(f"{glob.escape(stem)}.*")
            if file.is_file() and is_image_path(file) and resolved(file) != itself
        )
        if len(matches) > 1:
            raise InputError(f"{name} folder {path}: {', '.join(m.name for m in matches)} all match; keep one")
        if matches:
            return matches[0]
    raise InputError(f"{name} folder {path}: no image named {stem}.* for this input")
