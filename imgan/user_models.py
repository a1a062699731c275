"""``imgan models add``: register weight files a user downloaded, checked against their architecture.

Some published weights cannot be fetched by imgan: DF-GAN's generators, DAMSM text encoders and
vocabularies are on Google Drive only, under CC BY-NC-SA 4.0. The user downloads them and runs
``imgan models add NAME FILE...``; imgan recognises each file from its content (a DF-GAN
checkpoint or bare NetG, a DAMSM text encoder, a vocabulary pickle or JSON; or one checkpoint of
an image family), loads the layers strictly into the architecture, and writes one safetensors
file (weights, params, vocabulary as JSON) plus a record into ``$IMGAN_HOME/models``
(``hub.added_dir``). The record pins that file's sha256 and lists the source files with theirs.
From then on ``--model NAME`` finds it like a registry model, and the hub checks it against its
digest at every use that follows a change. The source files are not needed any more, and the
vocabulary pickle is read once, by a restricted unpickler (``imgan.text``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imgan import hub
from imgan.errors import ModelError, UsageError
from imgan.files import write_atomically
from imgan.text import Vocabulary, read_vocabulary_pickle, vocabulary_from_json, vocabulary_json

if TYPE_CHECKING:
    import torch

__all__ = ["PUBLISHED", "Published", "add_model", "missing_model_hint"]

log = logging.getLogger(__name__)

_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_VOCABULARY_SUFFIXES = (".pickle", ".pkl", ".json")


@dataclass(frozen=True)
class Published:
    """Weights imgan knows of but cannot download: what they are, and where the user gets them."""

    task: str
    arch: str
    params: Mapping[str, Any]  # the published hyperparameters, checked against the files
    license: str
    source: str
    paper: str
    description: str
    downloads: tuple[str, ...]  # what to download, one line each
    files: str  # the files to hand to imgan models add, as a shell fragment
    truncation: float  # the sampling script's noise truncation


_DFGAN_PAPER = "DF-GAN: A Simple and Effective Baseline for Text-to-Image Synthesis (Tao et al., CVPR 2022)"
_DFGAN_NETG = {"image_size": 256, "num_features": 32, "noise_dim": 100, "cond_dim": 256, "out_channels": 3,
               "text_encoder": "damsm", "embedding_dim": 300}

PUBLISHED: dict[str, Published] = {
    "dfgan-bird": Published(
        task="text2img", arch="dfgan", params=_DFGAN_NETG, license="CC BY-NC-SA 4.0",
        source="https://github.com/tobran/DF-GAN", paper=_DFGAN_PAPER,
        description="DF-GAN trained on CUB-200 birds, 256x256, with its DAMSM text encoder (5,450 words)",
        downloads=(
            "generator: https://drive.google.com/file/d/1rzfcCvGwU8vLCrn5reWxmrAMms6WQGA6/view "
            "(state_epoch_1220.pth)",
            "bird metadata zip: https://drive.google.com/file/d/1I6ybkR7L64K8hZOraEZDuHh0cCJw5OUj/view "
            "(birds/DAMSMencoder/text_encoder200.pth and birds/captions_DAMSM.pickle inside)",
        ),
        files="state_epoch_1220.pth text_encoder200.pth captions_DAMSM.pickle",
        truncation=0.88,
    ),
    "dfgan-coco": Published(
        task="text2img", arch="dfgan", params=_DFGAN_NETG, license="CC BY-NC-SA 4.0",
        source="https://github.com/tobran/DF-GAN", paper=_DFGAN_PAPER,
        description="DF-GAN trained on MS-COCO, 256x256, with its DAMSM text encoder",
        downloads=(
            "generator: https://drive.google.com/file/d/1e_AwWxbClxipEnasfz_QrhmLlv2-Vpyq/view "
            "(state_epoch_290.pth)",
            "COCO metadata zip linked from https://github.com/tobran/DF-GAN#readme "
            "(coco/DAMSMencoder/text_encoder100.pth and coco/captions_DAMSM.pickle inside)",
        ),
        files="state_epoch_290.pth text_encoder100.pth captions_DAMSM.pickle",
        truncation=0.88,
    ),
}


def missing_model_hint(name: str) -> str | None:
    """For a known but not yet added model: how to get its files and add them; else None."""
    published = PUBLISHED.get(name)
    if published is None or name in hub.added_specs():
        return None
    steps = "; ".join(published.downloads)
    return (f"model '{name}' is published on Google Drive only ({published.license}), so imgan cannot download it: "
            f"download {steps}; then run: imgan models add {name} {published.files}")


@dataclass
class _Found:
    generator: dict[str, torch.Tensor] | None = None
    text_encoder: dict[str, torch.Tensor] | None = None
    vocabulary: Vocabulary | None = None
    image_model: tuple[str, dict[str, Any], dict[str, torch.Tensor]] | None = None


def add_model(name: str, files: Sequence[str | Path], *, overwrite: bool = False) -> dict[str, Any]:
    """Check ``files``, write ``NAME.safetensors`` and ``NAME.json`` into ``hub.added_dir()``; the record.

    Refuses a name the registry uses, an existing added name without ``overwrite``, a file it
    cannot recognise, and files that do not make one model (UsageError / ModelError).
    """
    if _NAME.fullmatch(name) is None:
        raise UsageError(f"model name {name!r}: use lower-case letters, digits, '.', '_' and '-' (at most 64)")
    if name in hub.registry():
        raise UsageError(f"'{name}' is a registry model (imgan models info {name}); choose another name")
    folder = hub.added_dir()
    if (folder / f"{name}.json").exists() and not overwrite:
        raise UsageError(f"a model '{name}' was already added; pass --overwrite to replace it")
    paths = [Path(file) for file in files]
    if not paths:
        raise UsageError("name the weight files to add")
    found = _Found()
    sources = [_identify(path, found) for path in paths]
    tensors, metadata, table = _assemble(name, found)
    data = _safetensors_bytes(tensors, metadata)
    weights = folder / f"{name}.safetensors"
    write_atomically(weights, data)
    record = {**table, "scale": 1, "urls": [], "digest": f"sha256:{hashlib.sha256(data).hexdigest()}",
              "size": len(data), "format": "safetensors", "key": "", "local": weights.name, "sources": sources}
    write_atomically(folder / f"{name}.json", (json.dumps(record, indent=2) + "\n").encode("utf-8"))
    log.info("added %s: %s", name, weights)
    return {"name": name, **record, "local": str(weights)}


# --------------------------------------------------------------------------------------------
# Recognising the files


def _identify(path: Path, found: _Found) -> dict[str, Any]:
    """Recognise one file, store what it holds in ``found``; its provenance record."""
    from imgan.archs import detect_arch
    from imgan.archs.dfgan import damsm_params, netg_params

    if not path.is_file():
        raise ModelError(f"{path}: no such file")
    if path.suffix.lower() in _VOCABULARY_SUFFIXES:
        role = "vocabulary"
        if path.suffix.lower() == ".json":
            vocabulary = vocabulary_from_json(path.read_text(encoding="utf-8"), source=str(path))
        else:
            vocabulary = read_vocabulary_pickle(path)
        _keep(found, "vocabulary", vocabulary, path)
    else:
        state_dict, _ = hub.load_state_dict(path)
        if netg_params(state_dict) is not None:
            role = "generator"
            _keep(found, "generator", state_dict, path)
        elif damsm_params(state_dict) is not None:
            role = "text_encoder"
            _keep(found, "text_encoder", state_dict, path)
        else:
            try:
                arch, params = detect_arch(state_dict)
            except ModelError as exc:
                raise ModelError(f"{path}: {exc}; imgan models add takes DF-GAN generators and DAMSM text "
                                 "encoders, vocabularies, or a checkpoint of a family imgan knows") from exc
            role = "model"
            _keep(found, "image_model", (arch, params, state_dict), path)
    size = path.stat().st_size
    return {"role": role, "file": path.name, "sha256": _sha256(path), "size": size}


def _keep(found: _Found, slot: str, value: object, path: Path) -> None:
    if getattr(found, slot) is not None:
        raise UsageError(f"{path}: a second {slot.replace('_', ' ')}; give one of each")
    setattr(found, slot, value)


def _assemble(name: str, found: _Found) -> tuple[dict[str, torch.Tensor], dict[str, str], dict[str, Any]]:
    """The tensors, the safetensors metadata and the registry fields of the model ``found`` makes."""
    from imgan.archs import ARCHS, build_model

    published = PUBLISHED.get(name)
    if found.image_model is not None:
        if found.generator is not None or found.text_encoder is not None or found.vocabulary is not None:
            raise UsageError("an image model is one checkpoint; add its file alone")
        arch_name, params, state_dict = found.image_model
        arch = ARCHS[arch_name]
        _strict_load(build_model(arch_name, params), state_dict, arch_name, arch.remap)
        metadata = {"arch": arch_name, "task": arch.task, "params": json.dumps(params),
                    "value_range": json.dumps(list(arch.value_range))}
        table = _table(arch.task, arch_name, params, arch.value_range, published=None,
                       description=f"added from a {arch_name} checkpoint")
        state = arch.remap(state_dict) if arch.remap else state_dict
        return dict(state), metadata, table

    missing = [role for role, value in (("generator", found.generator), ("text encoder", found.text_encoder),
                                        ("vocabulary", found.vocabulary)) if value is None]
    if missing:
        hint = f" ({published.files})" if published else ""
        raise UsageError(f"a DF-GAN model needs a generator, a DAMSM text encoder and a vocabulary{hint}; "
                         f"missing: {', '.join(missing)}")
    from imgan.archs.dfgan import damsm_params, netg_params

    assert found.generator is not None and found.text_encoder is not None and found.vocabulary is not None
    netg, encoder = netg_params(found.generator), damsm_params(found.text_encoder)
    assert netg is not None and encoder is not None
    if netg["cond_dim"] != encoder["cond_dim"]:
        raise ModelError(f"the generator takes {netg['cond_dim']}-d sentence embeddings but the text encoder "
                         f"gives {encoder['cond_dim']}-d ones; they are not a pair")
    if found.vocabulary.size > encoder["vocab_size"]:
        raise ModelError(f"the vocabulary has indices up to {found.vocabulary.size - 1} but the text encoder "
                         f"knows {encoder['vocab_size']} words; they are not a pair")
    params = {**netg, "text_encoder": "damsm", "vocab_size": encoder["vocab_size"],
              "embedding_dim": encoder["embedding_dim"]}
    if published is not None:
        differing = {key: value for key, value in published.params.items() if params.get(key) != value}
        if differing:
            log.warning("%s: these files differ from the published %s in %s; added as they are", name, name,
                        ", ".join(f"{key} {params.get(key)} (published {value})" for key, value in differing.items()))
    tensors = {f"generator.{key}": value for key, value in found.generator.items()}
    tensors.update({f"text_encoder.{key}": value for key, value in found.text_encoder.items()})
    _strict_load(build_model("dfgan", params), tensors, "dfgan", None)
    truncation = published.truncation if published else 1.0
    metadata = {"arch": "dfgan", "task": "text2img", "params": json.dumps(params), "value_range": "[-1.0, 1.0]",
                "vocabulary": vocabulary_json(found.vocabulary), "truncation": repr(truncation)}
    table = _table("text2img", "dfgan", params, (-1.0, 1.0), published=published,
                   description=f"DF-GAN {params['image_size']}x{params['image_size']}, {len(found.vocabulary):,} words")
    return tensors, metadata, table


def _strict_load(module: torch.nn.Module, state_dict: Mapping[str, torch.Tensor], arch: str, remap: Any) -> None:
    try:
        module.load_state_dict(remap(state_dict) if remap else state_dict, strict=True)
    except RuntimeError as exc:
        raise ModelError(f"the weights do not fit {arch}: {str(exc).splitlines()[-1].strip()}") from exc


def _table(task: str, arch: str, params: Mapping[str, Any], value_range: tuple[float, float], *,
           published: Published | None, description: str) -> dict[str, Any]:
    return {
        "task": task, "arch": arch, "params": dict(params), "value_range": list(value_range),
        "license": published.license if published else "as its source says",
        "source": published.source if published else "added by the user (imgan models add)",
        "paper": published.paper if published else "",
        "description": published.description if published else description,
    }


def _safetensors_bytes(tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str]) -> bytes:
    from safetensors.torch import save

    return save({key: value.detach().contiguous().clone() for key, value in tensors.items()}, metadata=dict(metadata))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
