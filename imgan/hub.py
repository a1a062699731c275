"""Published weights: pretrained.toml -> specs; download, cache, verify and load them safely.

Every file is pinned by a full digest (or, where upstream publishes only that, the first digits of
its sha256, plus its size). Where upstream publishes no digest at all (the Berkeley CycleGAN and
pix2pix files), the registry says ``digest = "unpublished"`` and imgan pins the file on first
download instead: it records the sha256 and size of what it received in ``<file>.sha256`` and
checks every later use and re-download against that record (trust on first use), warning the
user once with the digest so they can compare it with another source.

Downloads resume from a ``.part`` file, fall back to mirrors, hold a file lock so parallel
processes download once (the lock file is removed afterwards), and only a verified file ever
reaches its final path. A cached file is hashed again on its first use after any change: a
``<file>.verified`` record beside it (in the cache folder also for the weights that ship inside
the package) holds the digest it matched and the size, times, inode and device it had then, so
an unchanged file is not hashed at every run, and a changed one is never used unchecked.

Checkpoints load with ``torch.load(weights_only=True)`` after their zip directory is checked
(no zip bombs), safetensors after their metadata is checked (``checked_metadata``): imgan never
runs pickled code, so a file that is not what upstream published can give wrong weights but
cannot run anything or make imgan allocate what its header claims. The one exception is
TorchScript (``format = "torchscript"``: LaMa and MI-GAN as IOPaint publishes them), which is code
by nature: it is loaded only from a file that matched the digest the registry pins for it.
``format = "builtin"`` entries (OpenCV's telea and ns) have no file at all.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import hashlib
import http.client
import json
import logging
import math
import os
import re
import sys
import types
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import filelock
import platformdirs

from imgan import __version__
from imgan.errors import DownloadError, ImganError, ModelChoiceError, ModelError, OfflineError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

FORMATS = ("pth", "safetensors", "torchscript", "builtin")
# A "builtin" entry has no file: its network is built from its params (OpenCV's classical
# inpainting); it lists no urls and its digest is this word.
BUILTIN_DIGEST = "none"
DIGEST_HEX_LENGTHS = {"sha256": 64, "md5": 32, "gitblob": 40}
# Digests of which upstream published only the first hex digits (torchvision names its files
# "<name>-<first 8 hex of sha256>.pth"): algorithm, and the fewest digits accepted.
PREFIX_DIGESTS = {"sha256-prefix": ("sha256", 8)}
# Upstream published no digest: pinned on first download (see the module docstring).
UNPUBLISHED = "unpublished"
# Wrapper keys tried in order when a checkpoint nests its state dict (BasicSR, Lightning, GANs).
WRAPPER_KEYS = ("params_ema", "params", "state_dict", "model", "generator", "netG", "G")

# Metadata of our own safetensors files (see checked_metadata): the largest value an int param
# may declare, by name (other names: _PARAM_LIMIT_DEFAULT), so no number from a file can make
# imgan build a network of absurd size.
PARAM_LIMITS = {
    "in_channels": 64,
    "out_channels": 64,
    "num_features": 4096,
    "num_grow": 4096,
    "num_blocks": 1000,
    "num_conv": 1000,
    "num_downs": 16,
    "scale": 16,
    "vocab_size": 200_000,  # words a text encoder knows (DF-GAN's COCO vocabulary has 27,297)
}
# A PyTorch zip checkpoint stores its tensors uncompressed, so its members unpack to about the
# file's size; an archive that claims more than this many times its size (plus the slack) is a
# zip bomb, refused before anything is unpacked.
ZIP_MAX_RATIO = 16
ZIP_SLACK_BYTES = 64 << 20

_PARAM_LIMIT_DEFAULT = 4096
_PARAMS_TEXT_LIMIT = 64 * 1024  # characters of the params JSON: parsed only below this
_TIMEOUT_S = 30.0
_CHUNK_BYTES = 256 * 1024
_USER_AGENT = f"imgan/{__version__}"
_FALSE_WORDS = frozenset({"", "0", "false", "no", "off"})
_MISSING = "is missing"
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@dataclass(frozen=True)
class WeightSpec:
    """One published weight file and what is needed to build and feed its network."""

    name: str
    task: str
    arch: str
    params: Mapping[str, Any] = field(hash=False)
    scale: int
    urls: tuple[str, ...]
    digest: str
    size: int | None
    format: str
    key: str
    value_range: tuple[float, float]
    license: str
    source: str
    paper: str
    description: str
    denoise_companion: str | None = None
    hidden: bool = False
    embedded: str | None = None  # path inside the imgan package for weights shipped with it
    local: str | None = None  # file a user registered with ``imgan models add`` (see added_specs)

    def __post_init__(self) -> None:
        problems = _spec_problems(self)
        if problems:
            raise ModelError(f"weight spec '{self.name}': {'; '.join(problems)}")

    @property
    def builtin(self) -> bool:
        """No weight file: the network is built from ``params`` alone."""
        return self.format == "builtin"

    @property
    def filename(self) -> str:
        """Name of the cached file: the last path component of the primary URL ('' if builtin)."""
        if self.builtin:
            return ""
        if self.embedded or self.local:
            return Path(self.embedded or self.local or "").name
        return _url_filename(self.urls[0])


# --------------------------------------------------------------------------------------------
# Registry


_REQUIRED_FIELDS: dict[str, type] = {
    "task": str,
    "arch": str,
    "params": dict,
    "scale": int,
    "urls": list,
    "digest": str,
    "format": str,
    "key": str,
    "value_range": list,
    "license": str,
    "source": str,
    "paper": str,
    "description": str,
}
_OPTIONAL_FIELDS: dict[str, type] = {"size": int, "denoise_companion": str, "hidden": bool, "embedded": str,
                                     "local": str}


def registry(path: Path | None = None) -> dict[str, WeightSpec]:
    """All weight specs in ``pretrained.toml`` (or ``path``), by name; parsed once per version."""
    path = _registry_path() if path is None else Path(path)
    try:
        stat = path.stat()
    except OSError as exc:
        raise ModelError(
            f"cannot read the model list {path}: {exc.strerror}; reinstall imgan"
        ) from exc
    return dict(_parse_registry(path.resolve(), stat.st_mtime_ns, stat.st_size))


def get_spec(name: str) -> WeightSpec:
    """The spec called ``name`` (registry or ``imgan models add``); the error suggests close names."""
    specs = all_specs()
    if name in specs:
        return specs[name]
    close = difflib.get_close_matches(name, list(specs), n=3, cutoff=0.6)
    if close:
        hint = "did you mean " + " or ".join(f"'{match}'" for match in close) + "?"
    else:
        shown = sorted(spec.name for spec in specs.values() if not spec.hidden)
        hint = "known models: " + ", ".join(shown)
    raise ModelChoiceError(f"unknown model '{name}'; {hint}")


def added_dir() -> Path:
    """Where ``imgan models add`` keeps the models a user registered: ``<name>.json`` + its weights."""
    return home() / "models"


def added_specs() -> dict[str, WeightSpec]:
    """The models a user registered with ``imgan models add``, by name.

    Each ``<name>.json`` record holds a registry table (as in pretrained.toml) whose ``local`` is
    a file name in the same folder, plus ``sources``: the files it was made from, with their
    sha256, which imgan does not read back. A damaged record is skipped with a warning.
    """
    folder = added_dir()
    specs: dict[str, WeightSpec] = {}
    for record_path in sorted(folder.glob("*.json")) if folder.is_dir() else ():
        name = record_path.stem
        try:
            table = json.loads(record_path.read_text(encoding="utf-8"))
            if not isinstance(table, dict) or not isinstance(table.get("local"), str):
                raise ModelError(f"{record_path}: not a record of imgan models add")
            table = {key: value for key, value in table.items() if key != "sources"}
            table["local"] = str(folder / Path(table["local"]).name)
            specs[name] = _spec_from_table(record_path, name, table)
        except (OSError, ValueError, ModelError) as exc:
            logger.warning("ignoring the added model record %s (%s); add the model again", record_path, exc)
    return specs


def all_specs() -> dict[str, WeightSpec]:
    """The registry's specs, then the added ones (a registry name always wins)."""
    specs = registry()
    specs.update((name, spec) for name, spec in added_specs().items() if name not in specs)
    return specs


def _registry_path() -> Path:
    packaged = Path(__file__).with_name("pretrained.toml")
    return packaged if packaged.is_file() else Path(__file__).parents[1] / "pretrained.toml"


@functools.lru_cache(maxsize=8)
def _parse_registry(
    path: Path, mtime_ns: int, size: int
) -> types.MappingProxyType[str, WeightSpec]:
    """Parse and check one version of a registry file (the stat values key the cache)."""
    del mtime_ns, size
    try:
        with path.open("rb") as file:
            tables = tomllib.load(file)
    except tomllib.TOMLDecodeError as exc:
        raise ModelError(f"{path} is not valid TOML ({exc}); fix its syntax") from exc

    specs: dict[str, WeightSpec] = {}
    for name, table in tables.items():
        if not isinstance(table, dict):
            raise _table_error(path, name, "is not a table")
        specs[name] = _spec_from_table(path, name, table)

    owners: dict[str, str] = {}
    for spec in specs.values():
        companion = spec.denoise_companion
        if companion is not None and companion not in specs:
            problem = f"names denoise_companion '{companion}', which has no table"
            raise _table_error(path, spec.name, problem)
        if spec.builtin:
            continue
        if spec.filename in owners:
            other = owners[spec.filename]
            raise _table_error(path, spec.name, f"downloads to {spec.filename}, as [{other}] does")
        owners[spec.filename] = spec.name
    return types.MappingProxyType(specs)


def _spec_from_table(path: Path, name: str, table: dict[str, Any]) -> WeightSpec:
    missing = sorted(set(_REQUIRED_FIELDS) - set(table))
    if missing:
        raise _table_error(path, name, f"lacks {', '.join(missing)}")
    unknown = sorted(set(table) - set(_REQUIRED_FIELDS) - set(_OPTIONAL_FIELDS))
    if unknown:
        raise _table_error(path, name, f"has unknown field(s) {', '.join(unknown)}")
    for key, value in table.items():
        expected = _REQUIRED_FIELDS.get(key) or _OPTIONAL_FIELDS[key]
        # bool is an int subclass; a flag where a number belongs is a typo.
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            raise _table_error(path, name, f"field {key} must be a {expected.__name__}")
    if not all(isinstance(url, str) for url in table["urls"]):
        raise _table_error(path, name, "field urls must be a list of strings")
    value_range = table["value_range"]
    if len(value_range) != 2 or not all(_is_number(bound) for bound in value_range):
        raise _table_error(path, name, "field value_range must be two numbers [low, high]")
    try:
        return WeightSpec(
            name=name,
            task=table["task"],
            arch=table["arch"],
            params=types.MappingProxyType(dict(table["params"])),
            scale=table["scale"],
            urls=tuple(table["urls"]),
            digest=table["digest"],
            size=table.get("size"),
            format=table["format"],
            key=table["key"],
            value_range=(float(value_range[0]), float(value_range[1])),
            license=table["license"],
            source=table["source"],
            paper=table["paper"],
            description=table["description"],
            denoise_companion=table.get("denoise_companion"),
            hidden=table.get("hidden", False),
            embedded=table.get("embedded"),
            local=table.get("local"),
        )
    except ModelError as exc:
        raise _table_error(path, name, str(exc).split(": ", 1)[-1]) from exc


def _spec_problems(spec: WeightSpec) -> list[str]:
    problems: list[str] = []
    if spec.builtin:
        if spec.urls or spec.embedded or spec.digest != BUILTIN_DIGEST:
            problems.append(f"a builtin entry has no file: no urls, not embedded, digest {BUILTIN_DIGEST!r}")
    elif spec.digest == BUILTIN_DIGEST:
        problems.append(f"digest {BUILTIN_DIGEST!r} is only for format 'builtin'")
    elif not spec.urls and not spec.embedded and not spec.local:
        problems.append("urls is empty (and the weights are neither embedded nor added from a file)")
    for url in spec.urls:
        if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
            problems.append(f"URL {url!r} is not http(s)")
        elif _url_filename(url) in ("", ".", ".."):
            problems.append(f"URL {url!r} does not end in a file name")
    if not _digest_is_well_formed(spec.digest):
        problems.append(
            f"digest {spec.digest!r} must be sha256:<64 hex>, md5:<32 hex>, gitblob:<40 hex>, "
            f"sha256-prefix:<8 to 64 hex> or {UNPUBLISHED!r}"
        )
    if spec.digest == UNPUBLISHED and (spec.embedded or spec.local):
        problems.append("embedded or added weights need their digest")
    if spec.size is not None and spec.size <= 0:
        problems.append(f"size {spec.size} is not positive")
    if spec.scale <= 0:
        problems.append(f"scale {spec.scale} is not positive")
    if spec.format not in FORMATS:
        problems.append(f"format {spec.format!r} is not one of {', '.join(FORMATS)}")
    if len(spec.value_range) != 2 or spec.value_range[0] >= spec.value_range[1]:
        problems.append(f"value_range {spec.value_range} is not [low, high]")
    return problems


def _digest_is_well_formed(digest: str) -> bool:
    if digest in (UNPUBLISHED, BUILTIN_DIGEST):
        return True
    algorithm, _, hexdigest = digest.partition(":")
    if re.fullmatch(r"[0-9a-f]+", hexdigest) is None:
        return False
    if algorithm in PREFIX_DIGESTS:
        full_algorithm, fewest = PREFIX_DIGESTS[algorithm]
        return fewest <= len(hexdigest) <= DIGEST_HEX_LENGTHS[full_algorithm]
    return len(hexdigest) == DIGEST_HEX_LENGTHS.get(algorithm)


def _table_error(path: Path, name: str, problem: str) -> ModelError:
    return ModelError(f"{path}: table [{name}] {problem}; fix that table")


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _url_filename(url: str) -> str:
    return urllib.parse.unquote(urllib.parse.urlsplit(url).path).rsplit("/", 1)[-1]


# --------------------------------------------------------------------------------------------
# Cache


def home() -> Path:
    """imgan's user directory: ``$IMGAN_HOME``, else the platform's cache directory."""
    override = os.environ.get("IMGAN_HOME", "")
    return Path(override).expanduser() if override else Path(platformdirs.user_cache_dir("imgan"))


def weights_dir() -> Path:
    """Where downloaded weights live."""
    return home() / "weights"


def cached_path(spec: WeightSpec) -> Path:
    """Where the verified file for ``spec`` lives once fetched (inside the package if embedded)."""
    if spec.builtin:
        raise ModelError(f"model '{spec.name}' is built into imgan; it has no file")
    if spec.embedded:
        return Path(__file__).resolve().parent / spec.embedded
    if spec.local:
        return Path(spec.local)
    return weights_dir() / spec.filename


def pin_path(path: Path) -> Path:
    """Where the first-download record of an ``unpublished``-digest file lives."""
    return path.with_name(path.name + ".sha256")


def read_pin(path: Path) -> tuple[str, int] | None:
    """(sha256, size) recorded for ``path`` on its first download, or None."""
    try:
        digest, size = pin_path(path).read_text(encoding="ascii").split()
        return digest, int(size)
    except (OSError, ValueError):
        return None


def verified_record_path(spec: WeightSpec) -> Path:
    """Where the record of the last full check of ``spec``'s file lives (see the module docstring)."""
    return weights_dir() / f"{spec.filename}.verified"


def fetch(
    spec: WeightSpec, *, progress: Callable[[int, int | None], None] | None = None
) -> Path:
    """Path of the verified weight file for ``spec``, downloading it first if needed.

    ``progress(done, total)`` is called as bytes arrive; ``total`` is None when unknown.
    """
    if spec.builtin:
        raise ModelError(f"model '{spec.name}' is built into imgan ({spec.source}); it has no file to fetch")
    target = cached_path(spec)
    problem = _cached_problem(target, spec)
    if problem is None:
        return target
    if spec.embedded:
        raise ModelError(f"model '{spec.name}' ships with imgan but {target} {problem}; reinstall imgan")
    if spec.local:
        raise ModelError(f"model '{spec.name}' was added with imgan models add, but {target} {problem}; "
                         f"add it again from the files you downloaded")
    if _offline():
        if problem == _MISSING:
            raise OfflineError(
                f"model '{spec.name}' is not in the cache and IMGAN_OFFLINE is set: "
                f"download {spec.urls[0]} and save it as {target}"
            )
        raise OfflineError(
            f"model '{spec.name}': the cached {target} {problem}, so imgan will not use it, and "
            f"IMGAN_OFFLINE is set: unset it and run `imgan models download {spec.name}` to replace it"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    with _download_lock(target.with_name(target.name + ".lock"), spec.name):
        return _fetch_locked(spec, target, progress)


def verify_cache(*, specs: Iterable[WeightSpec] | None = None) -> list[tuple[str, Path, bool, str]]:
    """Re-hash every cached file of ``specs`` (default: the registry): (name, path, ok, reason)."""
    chosen = all_specs().values() if specs is None else specs
    results: list[tuple[str, Path, bool, str]] = []
    for spec in sorted(chosen, key=lambda spec: spec.name):
        if spec.builtin:
            continue
        path = cached_path(spec)
        try:
            before = path.stat()
        except OSError:
            continue
        problem = _file_problem(path, spec)
        if problem is None:
            _record_verified(spec, path, before)
        results.append((spec.name, path, problem is None, problem or "ok"))
    return results


class _TransferError(Exception):
    """A download stopped early; any ``.part`` file is kept for resuming."""


def _offline() -> bool:
    return os.environ.get("IMGAN_OFFLINE", "").strip().lower() not in _FALSE_WORDS


def _cached_problem(path: Path, spec: WeightSpec) -> str | None:
    """Why ``path`` cannot be used as is, checked at every use: it exists with the right size,
    and its digest matches, hashed again whenever the file changed since its last full check."""
    try:
        before = path.stat()
    except FileNotFoundError:
        return _MISSING
    expected = spec.size
    if spec.digest == UNPUBLISHED:
        pin = read_pin(path)
        if pin is None:
            return "has no first-download record"
        expected = pin[1]
    if expected is not None and before.st_size != expected:
        return f"has {before.st_size} bytes instead of {expected}"
    if _verified_record(spec, path, before) == _read_verified_record(spec):
        return None
    logger.debug("hashing %s: it changed since its last check, or was never checked", path)
    problem = _file_problem(path, spec)
    if problem is not None:
        return f"failed its check ({problem})"
    _record_verified(spec, path, before)
    return None


def _verified_record(spec: WeightSpec, path: Path, stat: os.stat_result) -> dict[str, Any]:
    """What the record of a full check holds: the digest matched, and the file's identity then."""
    expected = spec.digest
    if spec.digest == UNPUBLISHED:
        pin = read_pin(cached_path(spec))
        expected = f"sha256:{pin[0]}" if pin is not None else UNPUBLISHED
    # ctime cannot be set back by a user (mtime can), and changes with every write or rename.
    return {
        "path": os.path.abspath(path), "digest": expected, "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns, "ctime_ns": stat.st_ctime_ns,
        "inode": stat.st_ino, "device": stat.st_dev,
    }


def _read_verified_record(spec: WeightSpec) -> dict[str, Any] | None:
    """The record of the last full check; None when missing or unreadable (then: hash again)."""
    try:
        record = json.loads(verified_record_path(spec).read_bytes())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _record_verified(spec: WeightSpec, path: Path, before: os.stat_result) -> None:
    """Record that ``path``, as ``before`` describes it, matched its digest; skipped when it changed
    while it was being hashed, or when the cache folder is not writable (then: hash at every use)."""
    from imgan.files import write_atomically

    try:
        if not _same_file_state(before, path.stat()):
            return
        record = _verified_record(spec, path, before)
        write_atomically(verified_record_path(spec), json.dumps(record).encode("ascii"))
    except (OSError, ImganError) as exc:
        logger.debug("cannot record the check of %s (%s); it will be hashed again", path, exc)


def _same_file_state(first: os.stat_result, second: os.stat_result) -> bool:
    fields = ("st_size", "st_mtime_ns", "st_ctime_ns", "st_ino", "st_dev")
    return all(getattr(first, name) == getattr(second, name) for name in fields)


@contextlib.contextmanager
def _download_lock(path: Path, name: str) -> Iterator[None]:
    """Hold the lock file ``path`` (parallel processes download once), and remove it afterwards.

    An flock lives on an inode, not a name, so the file is removed while still held, before the
    release: a process that was waiting on the removed file then holds a lock nobody else can see,
    notices it (its file no longer has that name) and locks the new file instead. Where the lock is
    not an flock on a descriptor imgan can see (Windows, where filelock removes the file itself, or
    filelock's soft-lock fallback), the file is left to filelock.
    """
    lock = filelock.FileLock(str(path))
    waited = False
    while True:
        try:
            lock.acquire(timeout=0)
        except filelock.Timeout:
            if not waited:
                logger.info("waiting for another process that is downloading %s (%s)", name, path)
                waited = True
            lock.acquire()
        descriptor = _flock_descriptor(lock)
        if descriptor is None or _names_descriptor(path, descriptor):
            break
        lock.release()  # won a file its last holder removed: lock the current one
    try:
        yield
    finally:
        try:
            if descriptor is not None and _names_descriptor(path, descriptor):
                with contextlib.suppress(OSError):
                    path.unlink()
        finally:
            lock.release()


def _flock_descriptor(lock: filelock.BaseFileLock) -> int | None:
    """The descriptor a held native Unix lock has its flock on; None for any other kind of lock."""
    if sys.platform == "win32" or not isinstance(lock, filelock.UnixFileLock):
        return None
    context = getattr(lock, "_context", None)
    if getattr(context, "soft_fallback", False):
        return None
    descriptor = getattr(context, "lock_file_fd", None)
    return descriptor if isinstance(descriptor, int) else None


def _names_descriptor(path: Path, descriptor: int) -> bool:
    try:
        return os.path.samestat(os.stat(path), os.fstat(descriptor))
    except OSError:
        return False


def _fetch_locked(
    spec: WeightSpec, target: Path, progress: Callable[[int, int | None], None] | None
) -> Path:
    problem = _cached_problem(target, spec)
    if problem is None:  # another process finished it while we waited for the lock
        return target
    if problem != _MISSING:
        logger.warning("cached %s %s; downloading it again", target, problem)
        target.unlink()
    part = target.with_name(target.name + ".part")
    failures: list[str] = []
    for index, url in enumerate(spec.urls):
        failure = _download_verified(spec, url, part, progress)
        if failure is None:
            if spec.digest == UNPUBLISHED and read_pin(target) is None:  # a kept record was just checked
                _record_pin(spec, part, target)
            os.replace(part, target)
            _record_verified(spec, target, target.stat())  # just hashed: no need at its first use
            logger.info("saved %s", target)
            return target
        failures.append(f"{url}: {failure}")
        if index + 1 < len(spec.urls):  # the last failure is told once, by the error below
            logger.warning("could not download %s from %s (%s); trying the next mirror", spec.name, url, failure)
    raise DownloadError(
        f"could not download model '{spec.name}' ({'; '.join(failures)}); check the network, "
        f"or download one of those URLs yourself and save it as {target}"
    )


def _record_pin(spec: WeightSpec, part: Path, target: Path) -> None:
    """Pin a file upstream published no digest for, on its first download: its sha256 and size."""
    from imgan.files import write_atomically

    digest, size = _hash_file(part, "sha256"), part.stat().st_size
    logger.warning(
        "upstream publishes no checksum for model '%s'; imgan recorded sha256 %s (%d bytes) on this "
        "first download and will check the file against it from now on", spec.name, digest, size)
    write_atomically(pin_path(target), f"{digest} {size}\n".encode("ascii"))


def _download_verified(
    spec: WeightSpec,
    url: str,
    part: Path,
    progress: Callable[[int, int | None], None] | None,
) -> str | None:
    """Download ``url`` into ``part`` (resuming it) and verify it; the failure reason, or None."""
    while True:
        resumed_from = _resumable_size(part, spec)
        if spec.size is None or resumed_from < spec.size:
            logger.info("downloading %s from %s", spec.name, url)
            try:
                _download(url, part, offset=resumed_from, size=spec.size, progress=progress)
            except _TransferError as exc:
                logger.debug("download of %s from %s stopped: %s", spec.name, url, exc)
                return str(exc)
        problem = _file_problem(part, spec)
        if problem is None:
            return None
        part.unlink()
        if resumed_from == 0:
            logger.debug("%s from %s failed verification: %s", spec.name, url, problem)
            return problem
        # The kept bytes may come from an older or different file: start once more from byte 0.
        logger.warning(
            "resumed download of %s failed verification (%s); starting over", spec.name, problem
        )


def _resumable_size(part: Path, spec: WeightSpec) -> int:
    try:
        size = part.stat().st_size
    except FileNotFoundError:
        return 0
    if spec.size is not None and size > spec.size:
        part.unlink()
        return 0
    return size


def _download(
    url: str,
    part: Path,
    *,
    offset: int,
    size: int | None,
    progress: Callable[[int, int | None], None] | None,
) -> None:
    """Append ``url``'s bytes from ``offset`` to ``part``, or rewrite it if the server restarts."""
    headers = {"User-Agent": _USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    done = offset
    try:
        with urllib.request.urlopen(request, timeout=_TIMEOUT_S) as response:
            length = _optional_int(response.headers.get("Content-Length"))
            if offset and response.status == 206:
                start, total = _content_range(response.headers.get("Content-Range", ""))
                if start != offset:
                    raise _TransferError(f"server resumed at byte {start} instead of {offset}")
                mode = "ab"
            else:
                if offset:
                    logger.info("%s ignored the resume request; downloading from the start", url)
                offset = done = 0
                total = length
                mode = "wb"
            total = total if total is not None else size
            with part.open(mode) as file:
                if progress is not None:
                    progress(done, total)
                while chunk := response.read(_CHUNK_BYTES):
                    file.write(chunk)
                    done += len(chunk)
                    if size is not None and done > size:
                        break
                    if progress is not None:
                        progress(done, total)
            if size is not None and done > size:
                part.unlink()
                raise _TransferError(f"server sent more than the published {size} bytes")
            if length is not None and done - offset < length:
                raise _TransferError(f"connection closed after {done} of {total} bytes")
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:
            return  # nothing left to send: the kept bytes are complete, or verification says not
        raise _TransferError(f"HTTP {exc.code} {exc.reason}") from exc
    except urllib.error.URLError as exc:
        raise _TransferError(f"cannot connect ({exc.reason})") from exc
    except TimeoutError as exc:
        raise _TransferError(f"no data for {_TIMEOUT_S:.0f} s after {done} bytes") from exc
    except (OSError, http.client.HTTPException) as exc:
        reason = type(exc).__name__ if not str(exc) else str(exc)
        raise _TransferError(f"connection lost after {done} bytes ({reason})") from exc


def _content_range(header: str) -> tuple[int, int | None]:
    match = re.fullmatch(r"\s*bytes\s+(\d+)-\d+/(\d+|\*)\s*", header)
    if match is None:
        raise _TransferError(f"server sent a bad Content-Range {header!r}")
    total = match.group(2)
    return int(match.group(1)), None if total == "*" else int(total)


def _optional_int(text: str | None) -> int | None:
    return int(text) if text is not None and text.strip().isdigit() else None


def _file_problem(path: Path, spec: WeightSpec) -> str | None:
    """Full check of a file against the spec's size and digest; None when it matches."""
    actual_size = path.stat().st_size
    if spec.size is not None and actual_size != spec.size:
        return f"size is {actual_size} bytes, expected {spec.size}"
    if spec.digest == UNPUBLISHED:
        return _pin_problem(path, spec)
    algorithm, _, expected = spec.digest.partition(":")
    if algorithm in PREFIX_DIGESTS:  # only the first digits are published: compare those
        full_algorithm = PREFIX_DIGESTS[algorithm][0]
        actual = _hash_file(path, full_algorithm)
        if not actual.startswith(expected.lower()):
            return f"{full_algorithm} is {actual}, expected one starting with {expected}"
        return None
    actual = _hash_file(path, algorithm)
    if actual != expected.lower():
        return f"{algorithm} is {actual}, expected {expected}"
    return None


def _pin_problem(path: Path, spec: WeightSpec) -> str | None:
    """Check against the first download's record; a first download (no record yet) passes."""
    target = cached_path(spec)
    pin = read_pin(target)
    if pin is None:
        return None if path != target else f"has no first-download record ({pin_path(target)})"
    actual = _hash_file(path, "sha256")
    if actual != pin[0]:
        return (f"sha256 is {actual}, but the first download recorded {pin[0]} in {pin_path(target)} "
                "(delete that record only if you trust the new file)")
    return None


def _hash_file(path: Path, algorithm: str) -> str:
    if algorithm == "gitblob":  # git hash-object: sha1 over a "blob <size>\0" header and the bytes
        digest = hashlib.sha1(b"blob %d\0" % path.stat().st_size)
    else:
        digest = hashlib.new(algorithm)
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------
# Loading


def load_state_dict(
    path: Path, *, key: str | None = None
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors of a checkpoint, unwrapped, plus its safetensors metadata ({} for pickles).

    The metadata is checked (``checked_metadata``) before any tensor is read. Pickled
    checkpoints load with ``weights_only=True`` once their zip directory looks sane; files
    holding code are refused.
    """
    import torch

    path = Path(path)
    if path.suffix == ".safetensors":
        return _load_safetensors(path, key=key)
    _check_zip(path)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise ModelError(f"checkpoint {path} does not exist; check the path") from exc
    except Exception as exc:  # torch raises many types for a bad file; all mean the same here
        raise _load_error(path, exc) from exc
    return unwrap_state_dict(checkpoint, key=key), {}


def load_torchscript(path: Path) -> torch.nn.Module:
    """The TorchScript module in ``path``, on the CPU, in eval mode.

    TorchScript is code as well as weights: call this only on a file that matched the digest the
    registry pins for it (``fetch`` returns no other; ``registry_spec_for_file`` finds the entry a
    local file matches).
    """
    import warnings

    import torch

    try:
        with warnings.catch_warnings():  # torch 2.9+ calls TorchScript deprecated; IOPaint's files are TorchScript
            warnings.simplefilter("ignore", FutureWarning)
            module = torch.jit.load(str(path), map_location="cpu")
    except FileNotFoundError as exc:
        raise ModelError(f"TorchScript file {path} does not exist; check the path") from exc
    except Exception as exc:  # torch raises many types for a bad archive
        raise ModelError(f"cannot read {path} as TorchScript ({_first_line(exc)}); delete it and download it "
                         "again") from exc
    return module.eval()


def is_torchscript(path: Path) -> bool:
    """Whether ``path`` is a TorchScript archive (a zip holding a ``code/`` folder), not a checkpoint."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            return any("/code/" in name or name.startswith("code/") for name in archive.namelist())
    except (OSError, zipfile.BadZipFile, ValueError):
        return False


def registry_spec_for_file(path: Path, *, format: str) -> WeightSpec | None:
    """The registry entry of ``format`` whose pinned digest (and size, if known) ``path`` matches."""
    size = path.stat().st_size
    hashes: dict[str, str] = {}
    for spec in registry().values():
        if spec.format != format or spec.digest in (UNPUBLISHED, BUILTIN_DIGEST) or spec.size not in (None, size):
            continue
        algorithm, _, expected = spec.digest.partition(":")
        full = PREFIX_DIGESTS[algorithm][0] if algorithm in PREFIX_DIGESTS else algorithm
        if full not in hashes:
            hashes[full] = _hash_file(path, full)
        actual, expected = hashes[full], expected.lower()
        if actual.startswith(expected) if algorithm in PREFIX_DIGESTS else actual == expected:
            return spec
    return None


def checked_metadata(
    path: Path, metadata: object, *, tensor_elements: int | None = None
) -> dict[str, str]:
    """The metadata of the safetensors file ``path`` once it is safe to act on; else a ModelError.

    Always a mapping of str to str. When it names an ``arch`` (imgan's own files), also: ``params``
    is a JSON object of names to numbers, strings or booleans, every number within
    ``PARAM_LIMITS``; ``value_range`` is two finite numbers, low < high; ``scale`` an int within
    its limit; and, given ``tensor_elements`` (the file's tensor element count, from its header),
    the network those params describe is built on torch's ``meta`` device (no memory) and must
    not have more weights than the file holds, so no number in a file makes imgan allocate more
    than that file's size.
    """
    def refuse(problem: str) -> ModelError:
        return ModelError(f"{path}: metadata {problem}; the file is damaged or was not written by imgan")

    if not isinstance(metadata, Mapping) or not all(
        isinstance(name, str) and isinstance(value, str) for name, value in metadata.items()
    ):
        raise refuse("is not a mapping of strings to strings")
    checked = dict(metadata)
    if "arch" not in checked:
        return checked
    arch = checked["arch"]
    if re.fullmatch(r"[a-z][a-z0-9_]{0,63}", arch) is None:
        raise refuse(f"arch {arch[:64]!r} is not an architecture name")
    if "task" in checked and re.fullmatch(r"[a-z][a-z0-9_]{0,63}", checked["task"]) is None:
        raise refuse(f"task {checked['task'][:64]!r} is not a task name")
    params = _checked_params(checked.get("params", "{}"), refuse)
    if "scale" in checked:
        scale = checked["scale"]
        if re.fullmatch(r"[0-9]{1,3}", scale) is None or not 1 <= int(scale) <= PARAM_LIMITS["scale"]:
            raise refuse(f"scale {scale[:64]!r} is not a whole number from 1 to {PARAM_LIMITS['scale']}")
    if "value_range" in checked:
        bounds = _parsed_json(checked["value_range"], limit=256)
        if not (isinstance(bounds, list) and len(bounds) == 2 and all(_is_finite(bound) for bound in bounds)
                and bounds[0] < bounds[1]):
            raise refuse(f"value_range {checked['value_range'][:64]!r} is not two numbers, low then high")
    if tensor_elements is not None:
        _check_declared_size(path, arch, params, tensor_elements)
    return checked


def _checked_params(text: str, refuse: Callable[[str], ModelError]) -> dict[str, Any]:
    """``params``: a JSON object of names to numbers (within PARAM_LIMITS), strings or booleans."""
    params = _parsed_json(text, limit=_PARAMS_TEXT_LIMIT)
    if not isinstance(params, dict):
        raise refuse(f"params is not a JSON object of names to values ({text[:64]!r})")
    for name, value in params.items():
        limit = PARAM_LIMITS.get(name, _PARAM_LIMIT_DEFAULT)
        if isinstance(value, bool) or (isinstance(value, str) and len(value) <= 64):
            continue
        if not _is_finite(value):
            raise refuse(f"params {name[:64]!r} is not a number, a short string or a boolean")
        if not 0 <= value <= limit:
            raise refuse(f"params {name[:64]!r} is {value!r}, outside 0 to {limit}")
    return params


def _parsed_json(text: str, *, limit: int) -> object:
    """``text`` as JSON; None when it is longer than ``limit`` characters or not JSON."""
    if len(text) > limit:
        return None
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: thousands of nested brackets
        return None


def _is_finite(value: object) -> bool:
    return _is_number(value) and math.isfinite(value)  # type: ignore[arg-type]


def _check_declared_size(path: Path, arch: str, params: Mapping[str, Any], tensor_elements: int) -> None:
    """Refuse params that describe a network with more weights than the file holds."""
    import torch

    from imgan.archs import ARCHS, build_model

    if arch not in ARCHS:
        raise ModelError(f"{path}: metadata names architecture {arch!r}, which imgan does not know "
                         f"(it knows {', '.join(ARCHS)}); use a file made for imgan")
    try:
        with torch.device("meta"):  # shapes only: nothing is allocated
            module = build_model(arch, params)
    except ModelError as exc:
        raise ModelError(f"{path}: {exc}") from exc
    except Exception as exc:  # the params come from the file: any failure to build means the same
        raise ModelError(f"{path}: metadata params do not build a {arch} network ({_first_line(exc)}); "
                         "the file is damaged or was not written by imgan") from exc
    declared = sum(parameter.numel() for parameter in module.parameters())
    if declared > tensor_elements:
        raise ModelError(
            f"{path}: the weights do not fit the metadata, which describes a {arch} network of {declared:,} "
            f"weights where the file holds {tensor_elements:,}; the file is damaged or was not written by imgan"
        )


def _load_safetensors(path: Path, *, key: str | None) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read the header (safetensors checks it against the file size), check the metadata, then the tensors."""
    import safetensors

    try:
        with safetensors.safe_open(str(path), framework="pt", device="cpu") as file:
            names = list(file.keys())
            elements = sum(math.prod(file.get_slice(name).get_shape()) for name in names)
            metadata = checked_metadata(path, file.metadata() or {}, tensor_elements=elements)
            tensors: dict[str, torch.Tensor] = {name: file.get_tensor(name) for name in names}
    except (safetensors.SafetensorError, OSError) as exc:
        raise ModelError(
            f"cannot read {path} as safetensors ({_first_line(exc)}); download it again"
        ) from exc
    return unwrap_state_dict(tensors, key=key), metadata


def _check_zip(path: Path) -> None:
    """Refuse the zip archive ``path`` (PyTorch's format since 1.6) when it must not be unpacked.

    Only the central directory is read: the sizes its members declare when unpacked. PyTorch
    stores tensors uncompressed, so they add up to about the file size; far more is a zip bomb.
    """
    import zipfile

    try:
        with path.open("rb") as file:
            if file.read(4) != b"PK\x03\x04":  # how torch.load tells a zip from a legacy pickle
                return
        size = path.stat().st_size
        with zipfile.ZipFile(path) as archive:
            declared = sum(member.file_size for member in archive.infolist())
    except FileNotFoundError:
        return  # torch.load says so
    except (OSError, zipfile.BadZipFile, ValueError) as exc:
        raise _load_error(path, exc) from exc
    if declared > ZIP_MAX_RATIO * size + ZIP_SLACK_BYTES:
        raise ModelError(
            f"checkpoint {path} is a zip archive whose members unpack to {declared:,} bytes from {size:,} "
            "(a PyTorch checkpoint stores its tensors uncompressed); imgan will not unpack it: use the original file"
        )


def unwrap_state_dict(checkpoint: object, *, key: str | None = None) -> dict[str, torch.Tensor]:
    """The str -> Tensor state dict inside ``checkpoint``, without wrappers or ``module.`` prefixes.

    ``key`` names the wrapper when known; otherwise ``WRAPPER_KEYS`` are tried in order, level
    by level, until a mapping of tensors is reached.
    """
    import torch

    current = checkpoint
    if key and isinstance(current, Mapping) and key in current:
        current = current[key]
    for _ in range(len(WRAPPER_KEYS)):
        if not isinstance(current, Mapping) or _holds_tensors(current, torch.Tensor):
            break
        wrappers = (current[k] for k in WRAPPER_KEYS if isinstance(current.get(k), Mapping))
        inner = next(wrappers, None)
        if inner is None:
            break
        current = inner

    if not isinstance(current, Mapping) or not _holds_tensors(current, torch.Tensor):
        found = sorted(map(str, current))[:8] if isinstance(current, Mapping) else []
        what = f"keys {', '.join(found)}" if found else f"a {type(current).__name__}"
        raise ModelError(
            f"checkpoint holds no state dict of tensors (found {what}); "
            "pass the right wrapper key or use a checkpoint saved from model.state_dict()"
        )
    return {
        name.removeprefix("module."): tensor
        for name, tensor in current.items()
        if name != "_metadata"
    }


def _holds_tensors(mapping: Mapping[Any, Any], tensor_type: type) -> bool:
    items = [(name, value) for name, value in mapping.items() if name != "_metadata"]
    return bool(items) and all(
        isinstance(name, str) and isinstance(value, tensor_type) for name, value in items
    )


def torch_load_problem(exc: BaseException) -> str:
    """What a ``torch.load(weights_only=True)`` failure means, in one line without terminal codes."""
    text = _ANSI_ESCAPE.sub("", str(exc))
    refused = re.search(r"GLOBAL (\S+)", text)
    if refused is not None:
        return f"it contains code or unknown objects ({refused.group(1)}), which imgan will not run"
    detail = re.search(r"WeightsUnpickler error: *(\S.*)", text)  # behind a paragraph of advice
    return detail.group(1)[:200] if detail is not None else _first_line(exc)


def _load_error(path: Path, exc: Exception) -> ModelError:
    refused = re.search(r"GLOBAL (\S+)", _ANSI_ESCAPE.sub("", str(exc)))
    if refused is not None:
        return ModelError(
            f"checkpoint {path} contains code or unknown objects ({refused.group(1)}) and imgan "
            "will not run it; use a checkpoint of plain tensors (state_dict) or safetensors"
        )
    return ModelError(
        f"cannot read checkpoint {path} ({torch_load_problem(exc)}); it is damaged or not a PyTorch "
        "checkpoint: delete it and download it again"
    )


def _first_line(exc: BaseException) -> str:
    """The first non-blank line of an exception's message (terminal codes removed), or its type."""
    lines = (line.strip() for line in _ANSI_ESCAPE.sub("", str(exc)).splitlines())
    return next((line for line in lines if line), type(exc).__name__)[:200]
