"""Data-parallel training through torchrun: process group, device per process, DDP wrapping.

``torchrun --nproc-per-node N -m imgan train ...`` sets RANK, WORLD_SIZE, LOCAL_RANK and the
rendezvous address; with WORLD_SIZE above 1 each process joins the group (NCCL on CUDA,
Gloo on CPU) and trains on cuda:LOCAL_RANK (or the CPU). Without those variables everything
here is a no-op around one device. Only rank 0 writes files, progress and logs.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from imgan.errors import ImganError, UsageError

__all__ = ["Distributed", "any_rank", "check_replicas", "session", "wrap"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Distributed:
    """Where this process sits: its rank among ``world_size`` processes and its device."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that writes files, progress and logs."""
        return self.rank == 0


def _environment_int(name: str, default: int) -> int:
    text = os.environ.get(name, "")
    try:
        return int(text) if text else default
    except ValueError:
        raise UsageError(f"environment variable {name}={text!r} is not a number") from None


def _single_device(spec: str) -> torch.device:
    from imgan.engine import parse_devices

    devices = parse_devices(spec)
    if len(devices) != 1:
        raise UsageError(f"--device {spec}: training uses one device per process; for several GPUs "
                         "start it with torchrun --nproc-per-node N -m imgan train ...")
    return devices[0]


def _process_device(spec: str, local_rank: int) -> torch.device:
    """cuda:LOCAL_RANK unless the CPU is asked for (or no CUDA is there)."""
    if "," in spec or spec.startswith("cuda:"):
        raise UsageError(f"--device {spec}: under torchrun each process uses cuda:LOCAL_RANK; "
                         "use --device auto, cuda or cpu")
    if spec == "cpu" or (spec == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if spec not in ("auto", "cuda"):
        raise UsageError(f"--device {spec}: distributed training runs on cuda or cpu")
    if not torch.cuda.is_available():
        raise UsageError("--device cuda: CUDA is not available here; use --device cpu")
    if local_rank >= torch.cuda.device_count():
        raise UsageError(f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} CUDA device(s) "
                         "are visible; lower --nproc-per-node")
    device = torch.device("cuda", local_rank)
    torch.cuda.set_device(device)
    return device


@contextmanager
def session(device_spec: str) -> Iterator[Distributed]:
    """Join the process group when WORLD_SIZE > 1; on success wait for every rank, then leave."""
    world_size = _environment_int("WORLD_SIZE", 1)
    if world_size <= 1:
        yield Distributed(rank=0, world_size=1, local_rank=0, device=_single_device(device_spec))
        return
    rank = _environment_int("RANK", 0)
    local_rank = _environment_int("LOCAL_RANK", 0)
    device = _process_device(device_spec, local_rank)
    if not dist.is_available():
        raise ImganError("this PyTorch build has no torch.distributed; train with one process")
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
    if rank != 0:
        logging.getLogger("imgan").setLevel(logging.ERROR)
    log.info("process group: %d processes, %s backend", world_size, backend)
    finished = False
    try:
        yield Distributed(rank=rank, world_size=world_size, local_rank=local_rank, device=device)
        finished = True
    finally:
        if finished:
            dist.barrier()
        dist.destroy_process_group()


def wrap(module: nn.Module, context: Distributed) -> nn.Module:
    """The module in DistributedDataParallel when several processes train, else itself."""
    if not context.enabled:
        return module
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [context.device.index] if context.device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=device_ids)


def any_rank(flag: bool, context: Distributed) -> bool:
    """Whether ``flag`` is set on any process (a collective: every rank must call it)."""
    if not context.enabled:
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=context.device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item() > 0)


def _checksum(module: nn.Module) -> torch.Tensor:
    """Per-parameter sums and absolute sums, in float64."""
    parts = [torch.stack([p.detach().double().sum(), p.detach().double().abs().sum()])
             for p in module.parameters()]
    return torch.cat(parts) if parts else torch.zeros(2, dtype=torch.float64)


def check_replicas(module: nn.Module, context: Distributed, *, name: str = "generator") -> None:
    """ImganError unless every process holds exactly the same parameters (a collective)."""
    if not context.enabled:
        return
    local = _checksum(module).to(context.device)
    gathered = [torch.empty_like(local) for _ in range(context.world_size)]
    dist.all_gather(gathered, local)
    differing = [rank for rank, other in enumerate(gathered) if not torch.equal(other, gathered[0])]
    if differing:
        raise ImganError(f"the {name} weights of rank(s) {', '.join(map(str, differing))} differ from rank 0; "
                         "the processes fell out of step (a bug: please report it)")
    log.debug("%s weights identical on %d processes", name, context.world_size)
