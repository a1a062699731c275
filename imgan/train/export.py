"""Turn a training run into a ``.safetensors`` model that ``imgan upscale --model`` loads as is.

The file holds the EMA generator (the live one when the run had no EMA) and the metadata
``imgan.models`` reads: arch, params (JSON), scale, value_range, task, plus family, step
and imgan_version for the record.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from imgan import __version__
from imgan.errors import ImganError
from imgan.files import write_atomically
from imgan.train.checkpoint import find_checkpoint, load_checkpoint

__all__ = ["canonical_safetensors", "export_run"]

log = logging.getLogger(__name__)


def export_run(location: Path, out: Path, *, half: bool = False) -> Path:
    """Write the generator of a run directory (its latest checkpoint) or of one checkpoint file to ``out``.

    ``half`` stores floating-point tensors as float16 (loading casts them back to the model's dtype).
    """
    import safetensors.torch
    import torch

    if out.suffix != ".safetensors":
        raise ImganError(f"{out}: the exported model is a safetensors file; end the name in .safetensors")
    path = find_checkpoint(location)
    state = load_checkpoint(path)
    record = state.get("export")
    modules = state.get("modules", {})
    if not isinstance(record, dict) or record.get("module") not in modules:
        raise ImganError(f"{path}: the checkpoint does not say which network to export")
    dtype = torch.float16 if half else torch.float32
    tensors = {name: (tensor.to(dtype) if tensor.is_floating_point() else tensor).contiguous().clone()
               for name, tensor in modules[record["module"]].items()}
    metadata = {
        "arch": str(record["arch"]),
        "params": json.dumps(record["params"], sort_keys=True),
        "scale": str(record["scale"]),
        "value_range": json.dumps([float(value) for value in record["value_range"]]),
        "task": str(record["task"]),
        "family": str(record.get("family", "")),
        "step": str(state["step"]),
        "imgan_version": __version__,
        "source": "imgan train",
    }
    extra = record.get("metadata") or {}
    metadata.update({str(key): str(value) for key, value in extra.items() if str(key) not in metadata})
    data = canonical_safetensors(safetensors.torch.save(tensors, metadata=metadata))
    write_atomically(out, data)
    log.info("exported %s (%s, step %s) to %s", record["module"], record["arch"], state["step"], out)
    return out


def canonical_safetensors(data: bytes) -> bytes:
    """The same safetensors file with its JSON header in sorted key order.

    safetensors writes the header from a hash map, so identical weights and metadata give
    different bytes from run to run; a shipped file needs one digest. The data section is kept
    byte for byte; the header is padded with spaces to a multiple of 8 bytes, as the format asks.
    """
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + size])
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + data[8 + size :]
