"""Data-parallel processes for pre-training: who this process is, and the few collectives needed.

``torchrun --nproc_per_node N`` and ``accelerate launch --multi_gpu --num_processes N`` both
start N copies of a command with ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
``MASTER_PORT`` set; a plain ``hw4`` has none of them and is one process with no process group.
The backend is nccl on CUDA (one GPU a process, ``cuda:LOCAL_RANK``) and gloo on CPUs; only
nccl runs SyncBatchNorm, so on CPUs every process normalises its own share of a batch.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.data import BatchSampler, Sampler

from ..errors import UserError


def _env_int(name: str, default: int) -> int:
    v = os.environ.get(name)
    if v is None or v == "":
        return default
    try:
        return int(v)
    except ValueError:
        raise UserError(
            f"${name}={v!r}: not an integer; launch with torchrun or accelerate "
            "launch, which set it, or unset it"
        ) from None


def _true(v: str | None) -> bool:
    return (v or "").strip().lower() in ("1", "true", "yes")


def world_from_env() -> int:
    """How many processes the launcher started (1 without a launcher)."""
    return max(1, _env_int("WORLD_SIZE", 1))


def is_main_process() -> bool:
    """Whether this process may write shared files (rank 0, or no launcher)."""
    return _env_int("RANK", 0) == 0


def refuse_many(what: str) -> None:
    """A one-line error when ``what`` (a single-process job) is started by a multi-process
    launcher: every process would run the whole job and write the same files."""
    if world_from_env() > 1:
        raise UserError(
            f"{what} runs as one process, but WORLD_SIZE={world_from_env()}: "
            "start it without torchrun / accelerate launch (only `hw4 ssl "
            "pretrain` is data-parallel)"
        )


@dataclass
class Dist:
    """This process's place among the pre-training processes; :meth:`start` joins the group."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    owns_group: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def backend(self) -> str | None:
        if self.world == 1:
            return None
        return "nccl" if self.device.type == "cuda" else "gloo"

    @property
    def sync_batchnorm(self) -> bool:
        return self.backend == "nccl"

    @property
    def batchnorm(self) -> str:
        """What normalises a batch, in words (for the run record)."""
        if self.world == 1:
            return "BatchNorm (one process)"
        if self.sync_batchnorm:
            return "SyncBatchNorm (nccl: statistics of the whole batch across processes)"
        return (
            "per-process BatchNorm (gloo on CPU: no SyncBatchNorm; each process normalises "
            "its share of the batch)"
        )

    def start(self) -> None:
        """Join (or reuse) the process group; a no-op for one process."""
        import torch.distributed as dist

        if self.world == 1 or dist.is_initialized():
            return
        dist.init_process_group(
            self.backend, init_method="env://", rank=self.rank, world_size=self.world
        )
        self.owns_group = True

    def close(self) -> None:
        import torch.distributed as dist

        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()
        self.owns_group = False

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier(**({"device_ids": [self.local_rank]} if self.sync_batchnorm else {}))

    def mean(self, x: torch.Tensor) -> float:
        """The mean over processes of a scalar tensor."""
        if self.world == 1:
            return float(x)
        import torch.distributed as dist

        t = x.detach().clone().float().to(self.device)
        dist.all_reduce(t)
        return float(t) / self.world

    def any(self, flag: bool) -> bool:
        """Whether any process says ``flag`` (so all take the same branch)."""
        if self.world == 1:
            return flag
        import torch.distributed as dist

        t = torch.tensor(float(flag), device=self.device)
        dist.all_reduce(t)
        return bool(t > 0)

    def gather(self, obj) -> list:
        """``obj`` from every process, in rank order, on every process."""
        if self.world == 1:
            return [obj]
        import torch.distributed as dist

        out = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def broadcast(self, obj):
        """Rank 0's ``obj`` on every process."""
        if self.world == 1:
            return obj
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def broadcast_buffers(self, module: nn.Module) -> None:
        """Rank 0's buffers (BatchNorm statistics) everywhere: per-process BatchNorm moves them
        apart in each process's last forward pass."""
        if self.world > 1:
            import torch.distributed as dist

            for b in module.buffers():
                dist.broadcast(b, src=0)

    def wrap(self, model: nn.Module) -> nn.Module:
        """``model`` in DistributedDataParallel (gradients averaged over processes), or itself."""
        if self.world == 1:
            return model
        from torch.nn.parallel import DistributedDataParallel as DDP

        return DDP(model, device_ids=[self.local_rank] if self.device.type == "cuda" else None)


def from_env(device: str) -> Dist:
    """This process as the launcher describes it (nothing started yet); one-line errors for a
    launch that cannot work."""
    world, rank, local = world_from_env(), _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    if world == 1 and _true(os.environ.get("ACCELERATE_USE_CPU")) and os.environ.get("MASTER_ADDR"):
        # accelerate launch --cpu --num_processes N (N > 1) sets MASTER_ADDR but starts one
        # process: its several CPU processes need MPI
        raise UserError(
            "accelerate launch --cpu started one process (several need MPI): for N "
            "CPU processes use `accelerate launch --multi_gpu --num_processes N -m "
            "hw4lib ssl pretrain ... --device cpu` or `torchrun --nproc_per_node N "
            "-m hw4lib ssl pretrain ...`"
        )
    mp = os.environ.get("ACCELERATE_MIXED_PRECISION", "no")
    if mp not in ("", "no"):
        raise UserError(
            f"accelerate launch --mixed_precision {mp}: hw4 ssl pretrain trains in "
            "float32 only; launch without --mixed_precision"
        )
    if not 0 <= rank < world or not 0 <= local < max(world, 1):
        raise UserError(
            f"RANK={rank}, LOCAL_RANK={local}, WORLD_SIZE={world}: not a valid "
            "process; launch with torchrun or accelerate launch"
        )
    if device == "cuda" and world > 1:
        n = torch.cuda.device_count()
        if local >= n:
            raise UserError(
                f"LOCAL_RANK={local} but {n} GPU(s) visible: start at most {n} "
                "processes a machine (--nproc_per_node / --num_processes)"
            )
        torch.cuda.set_device(local)
        dev = torch.device("cuda", local)
    else:
        dev = torch.device(device)
    return Dist(rank=rank, world=world, local_rank=local, device=dev)


class ShardedBatches(Sampler[list[int]]):
    """Each batch of ``batches`` cut into ``world`` equal slices; this rank's slice.

    Every process draws the same shuffle from the same generator state, so the slices of one
    step together are exactly the one-process batch, and a resume replays them."""

    def __init__(self, batches: BatchSampler, rank: int, world: int):
        self.batches, self.rank, self.world = batches, rank, world

    def __iter__(self):
        for b in self.batches:
            per = len(b) // self.world
            yield b[self.rank * per : (self.rank + 1) * per]

    def __len__(self) -> int:
        return len(self.batches)


def state_sha1(module: nn.Module) -> str:
    """The first 16 hex digits of a SHA-1 over a module's state (names, parameters, buffers)."""
    h = hashlib.sha1()
    for k, v in module.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]
