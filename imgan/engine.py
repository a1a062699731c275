"""Run a model descriptor on whole images: device and precision choice, tiling, OOM and NaN recovery.

``Engine.run_blocks`` hands the output over in finished blocks (optionally resized to another
size, tile by tile), so a caller can store each block at the output's bit depth at once and the
full-size float32 result never exists; ``Engine.run`` assembles the blocks into one tensor.
"""

from __future__ import annotations

import copy
import logging
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from imgan.descriptor import ModelDescriptor
from imgan.errors import ImganError, UsageError
from imgan.normstats import whole_image_statistics
from imgan.tiling import Block, TileProgress, assemble, pad_to_multiple, padded_side, tiled_blocks, unit

log = logging.getLogger(__name__)

PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
MIN_TILE = 32
CPU_MAX_TILE = 384  # measured on 2 cores: 278 px tiles 1.60 MP/s, 216 px 1.39, whole image 1.37
HOST_RESULTS_BYTES = 64 * 2**20  # float32 tile outputs of one batch on the CPU: at least this much ...
HOST_RESULTS_SHARE = 4  # ... or a quarter of the 8-bit output, so big GPU tiles do not outgrow the output


def parse_devices(spec: str) -> list[torch.device]:
    """``auto``, ``cpu``, ``cuda``, ``cuda:1``, ``mps`` or a comma list such as ``cuda:0,cuda:1``."""
    devices = []
    for part in (p.strip() for p in spec.split(",")):
        if part in ("", "auto"):
            if torch.cuda.is_available():
                part = "cuda"
            elif getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
                part = "mps"
            else:
                part = "cpu"
        try:
            device = torch.device(part)
        except RuntimeError as exc:
            raise UsageError(f"--device {part!r} is not a device: use auto, cpu, cuda, cuda:N or mps") from exc
        if device.type == "cuda":
            if not torch.cuda.is_available():
                raise UsageError(f"--device {part}: CUDA is not available here; use --device cpu")
            if device.index is not None and device.index >= torch.cuda.device_count():
                raise UsageError(
                    f"--device {part}: only {torch.cuda.device_count()} CUDA device(s) are visible"
                )
        if device.type == "mps" and not torch.backends.mps.is_available():
            raise UsageError(f"--device {part}: MPS is not available here; use --device cpu")
        devices.append(device)
    return devices


def resolve_precision(precision: str, device: torch.device, descriptor: ModelDescriptor) -> torch.dtype:
    """fp32 on CPU; fp16 on CUDA and MPS when the model allows half precision."""
    if precision != "auto":
        if precision not in PRECISIONS:
            raise UsageError(f"--precision {precision!r}: use auto, fp32, fp16 or bf16")
        return PRECISIONS[precision]
    if device.type in ("cuda", "mps") and descriptor.supports_half:
        return torch.float16
    return torch.float32


def strict_fp32(precision: str, device: torch.device) -> bool:
    """Whether to switch TF32 off: ``--precision fp32`` on CUDA asks for true fp32, while torch lets
    cuDNN convolutions round their inputs to TF32 (10-bit mantissa) by default. Other precisions
    keep torch's defaults."""
    return precision == "fp32" and device.type == "cuda"


def disable_tf32() -> None:
    """Make CUDA matmuls and cuDNN convolutions compute in full fp32 (process-wide torch flags)."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False


def is_out_of_memory(error: BaseException) -> bool:
    """True for CUDA, MPS and CPU allocator failures."""
    oom_type = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", ())
    if oom_type and isinstance(error, oom_type):
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and (
        "out of memory" in text or "can't allocate memory" in text or "not enough memory" in text
    )


def available_memory(device: torch.device) -> int:
    """Bytes the next allocations can use on ``device``."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def auto_tile_size(descriptor: ModelDescriptor, device: torch.device, dtype: torch.dtype, batch_size: int) -> int:
    """The largest tile whose activations fit in a quarter of the free memory.

    On CPU, tiles are capped at ``CPU_MAX_TILE`` (faster there), except for networks that
    normalise by whole-image statistics: those run untiled whenever memory allows, since tiles
    can only share statistics estimated on a downscaled copy.
    """
    features = int(descriptor.params.get("num_features", 64))
    element = torch.finfo(dtype).bits // 8
    # A few live feature maps per input pixel plus the upscaled output.
    per_pixel = element * (4 * features + 2 * descriptor.out_channels * descriptor.scale**2)
    budget = available_memory(device) // 4
    side = int(math.sqrt(budget / max(1, per_pixel * batch_size)))
    if device.type != "cuda" and not descriptor.image_statistics:
        side = min(side, CPU_MAX_TILE)
    side -= side % max(descriptor.size_multiple, 8)
    return max(side, 2 * descriptor.tile_overlap, MIN_TILE)


@dataclass
class Engine:
    """One model on one device; ``run`` maps a (1,C,H,W) [0,1] CPU image to the model's output."""

    descriptor: ModelDescriptor
    device: torch.device
    precision: str = "auto"
    tile_size: int | None = None  # None: auto; 0: whole image
    batch_size: int | None = None  # None: 1 on CPU (batching measured slower there), 4 on GPUs
    progress: TileProgress | None = field(default=None, repr=False)  # told the tiles of each run
    dtype: torch.dtype = field(init=False)
    _current_tile: int = field(init=False, default=0)
    _shared_statistics: bool = field(init=False, default=False)  # tiles already share norm statistics
    # The weights as loaded, on the CPU, kept when the module runs in half precision: rounded once,
    # they cannot be recovered, and the fp32 fallback and replicas need them exact.
    _fp32_weights: dict[str, torch.Tensor] | None = field(init=False, default=None, repr=False)

    def __post_init__(self) -> None:
        self.dtype = resolve_precision(self.precision, self.device, self.descriptor)
        if self.batch_size is None:
            self.batch_size = 1 if self.device.type == "cpu" else 4
        if strict_fp32(self.precision, self.device):
            disable_tf32()
        self.descriptor.module.eval().requires_grad_(False)
        if self.dtype != torch.float32:
            self._fp32_weights = {key: value.detach().to("cpu", copy=True)
                                  for key, value in self.descriptor.module.state_dict().items()}
        self.descriptor.to(self.device, self.dtype)
        # NHWC convolutions: about 1.7x faster on CPU (oneDNN), and what tensor cores want.
        self.descriptor.module.to(memory_format=torch.channels_last)
        if self.tile_size is None:
            self._current_tile = auto_tile_size(self.descriptor, self.device, self.dtype, self.batch_size)
        else:
            self._current_tile = self.tile_size
        if 0 < self._current_tile < self.min_tile:
            log.info("tile %d is below twice the overlap; using %d", self._current_tile, self.min_tile)
            self._current_tile = self.min_tile
        log.debug("engine on %s %s, tile %s", self.device, self.dtype, self._current_tile)

    @property
    def min_tile(self) -> int:
        """Smaller tiles would have to shrink the overlap, and seams would show."""
        multiple = max(self.descriptor.size_multiple, 1)
        return max(MIN_TILE, -(-2 * self.descriptor.tile_overlap // multiple) * multiple)

    def replica(self, device: torch.device) -> Engine:
        """A copy of this engine with its own weights (from the fp32 originals) on another device."""
        module = copy.deepcopy(self.descriptor.module).float()
        if self._fp32_weights is not None:
            module.load_state_dict(self._fp32_weights)
        descriptor = copy.copy(self.descriptor)
        descriptor.module = module
        return Engine(descriptor, device, self.precision, self.tile_size, self.batch_size)

    @torch.no_grad()  # not inference_mode: callers clamp and blend the result in place
    def run(self, image: torch.Tensor) -> torch.Tensor:
        """Run the model on a whole image, tiling as configured; returns float32 on the CPU."""
        height, width = image.shape[-2:]
        scale = self.descriptor.scale
        return assemble(self.run_blocks(image), height * scale, width * scale)

    def run_blocks(self, image: torch.Tensor, *, size: tuple[int, int] | None = None) -> Iterator[Block]:
        """The model's output on a (1,C,H,W) [0,1] CPU image, in finished float32 blocks.

        The image may also be integer levels (a picture read with ``levels``): each tile is made
        float as it is cut (``tiling.unit``), so the whole image never is.

        ``size`` (height, width) resizes the output as ``resize_to(run(image).clamp(0, 1), *size)``
        does, tile by tile. Blocks are views, valid until the next one is asked for (see
        ``tiling.tiled_blocks``). Float memory is about one batch of tile outputs plus the rows
        shared with the next row of tiles; untiled (tile 0, an image within one tile, a network that
        cannot be tiled) the whole output is one block. (Not wrapped in ``torch.no_grad``: its
        generator wrapper would hold each block while the next tile runs; ``_forward`` is.)
        """
        height, width = image.shape[-2:]
        scale = self.descriptor.scale
        padded = pad_to_multiple(image, self.descriptor.size_multiple, min_side=self.descriptor.min_side)
        tile = self._tile_for(height * scale * width * scale) if self.descriptor.tileable else 0
        yield from self._blocks(padded, tile, crop=(height * scale, width * scale), size=size,
                                progress=self.progress)

    def _tile_for(self, output_pixels: int) -> int:
        """The tile for one image: an automatic tile is also kept small enough that one batch of
        float32 tile outputs on the CPU stays within a quarter of the 8-bit output (or 64 MiB)."""
        tile = self._current_tile
        if self.tile_size is not None or tile <= 0 or self.descriptor.image_statistics:
            return tile
        channels = self.descriptor.out_channels
        budget = max(HOST_RESULTS_BYTES, output_pixels * channels // HOST_RESULTS_SHARE)
        per_input_pixel = 4 * channels * self.descriptor.scale**2 * max(1, self.batch_size or 1)
        side = int(math.sqrt(budget / per_input_pixel))
        side -= side % max(self.descriptor.size_multiple, 8)
        return max(min(tile, side), self.min_tile)

    def _statistics_image(self, image: torch.Tensor, tile_size: int) -> torch.Tensor:
        """The whole image shrunk to at most one tile's pixels, for the normalisation statistics."""
        height, width = image.shape[-2:]
        factor = min(1.0, tile_size / math.sqrt(height * width))
        multiple = max(self.descriptor.size_multiple, 1)
        smallest = padded_side(1, multiple, min_side=self.descriptor.min_side)
        size = [max(smallest, round(side * factor / multiple) * multiple) for side in (height, width)]
        log.debug("normalisation statistics from a %dx%d copy", size[1], size[0])
        return resize_to(unit(image), *size)

    def _blocks(self, image: torch.Tensor, tile_size: int, *, crop: tuple[int, int] | None = None,
                size: tuple[int, int] | None = None, progress: TileProgress | None = None) -> Iterator[Block]:
        if self.descriptor.image_statistics and not self._shared_statistics and 0 < tile_size < max(image.shape[-2:]):
            reference = self._statistics_image(image, tile_size)
            self._shared_statistics = True
            try:
                with whole_image_statistics(self.descriptor.module, lambda: self._forward_safe(reference)):
                    yield from self._blocks(image, tile_size, crop=crop, size=size, progress=progress)
            finally:
                self._shared_statistics = False
            return
        yield from tiled_blocks(
            self._forward_safe,
            image,
            scale=self.descriptor.scale,
            tile_size=tile_size,
            overlap=self.descriptor.tile_overlap,
            multiple=self.descriptor.size_multiple,
            batch_size=self.batch_size,
            crop=crop,
            size=size,
            progress=progress,
        )

    def _tiled(self, image: torch.Tensor, tile_size: int) -> torch.Tensor:
        """The whole output of ``image`` (already a multiple of the size multiple) in tiles of ``tile_size``."""
        height, width = image.shape[-2:]
        scale = self.descriptor.scale
        return assemble(self._blocks(image, tile_size), height * scale, width * scale)

    def _forward_safe(self, batch: torch.Tensor) -> torch.Tensor:
        """Forward a batch (integer levels made [0,1] floats here, tile by tile); on out-of-memory split
        the batch, then the tile, and retry only it."""
        batch = unit(batch)
        try:
            return self._forward_checked(batch)
        except Exception as error:  # noqa: BLE001 - only memory errors are handled here
            if not is_out_of_memory(error):
                raise
        self._release_cached_memory()
        if batch.shape[0] > 1:
            self.batch_size = max(1, batch.shape[0] // 2)
            log.warning("out of memory: batch size lowered to %d", self.batch_size)
            return torch.cat([self._forward_safe(part) for part in batch.split(self.batch_size)])
        side = max(batch.shape[-2:])
        half = side // 2
        half -= half % max(self.descriptor.size_multiple, 1)
        if not self.descriptor.tileable or half < self.min_tile:
            advice = "free some memory" if self.device.type == "cpu" else "use --precision fp16 or --device cpu"
            raise ImganError(f"out of memory on {self.device} even with {side}px tiles; {advice}")
        log.warning("out of memory on %s: retrying this tile as %dpx tiles", self.device, half)
        self._current_tile = min(self._current_tile or side, half)
        return self._tiled(batch, half)

    def _forward_checked(self, batch: torch.Tensor) -> torch.Tensor:
        """Forward at the engine's precision; fall back to fp32 if the result is not finite."""
        result = self._forward(batch, self.dtype)
        if self.dtype != torch.float32 and not bool(torch.isfinite(result).all()):
            log.warning("%s output had NaN/Inf values in %s; switching to fp32", self.descriptor.name,
                        str(self.dtype).removeprefix("torch."))
            self.dtype = torch.float32
            self.descriptor.to(self.device, torch.float32)
            if self._fp32_weights is not None:
                self.descriptor.module.load_state_dict(self._fp32_weights)
            result = self._forward(batch, torch.float32)
        return result

    @torch.no_grad()
    def _forward(self, batch: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        inputs = batch.to(self.device, dtype, non_blocking=True).contiguous(memory_format=torch.channels_last)
        return self.descriptor(inputs).float().to("cpu").contiguous()

    def _release_cached_memory(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.empty_cache()


def resize_to(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """High-quality resize of (B,C,H,W): antialiased bicubic, clamped to [0,1]."""
    if image.shape[-2:] == (height, width):
        return image
    antialias = height < image.shape[-2] or width < image.shape[-1]
    resized = F.interpolate(image, size=(height, width), mode="bicubic", align_corners=False,
                            antialias=antialias)
    return resized.clamp(0.0, 1.0)
