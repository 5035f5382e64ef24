"""``hw4 bench ssl``: what the data loader costs a BYOL training step.

The same BYOL step (profile's backbone, image size and batch) is timed three ways: on a batch
already in memory (the upper bound), fed by the profile's loader (in-memory cache on the CPU
profiles), and fed by a loader that decodes JPEGs on the fly with DataLoader workers (the
full profile's path). The loader's cost is ``1 - rate / in-memory rate``; the goal is <= 15%.
"""

from __future__ import annotations

import itertools
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch


def _time_steps(step, batches, n: int, warmup: int = 2) -> float:
    """Images per second over ``n`` steps after ``warmup`` (batches drawn from an iterator)."""
    it = iter(batches)
    for _ in range(warmup):
        step(next(it))
    imgs, t = 0, time.perf_counter()
    for _ in range(n):
        x = next(it)
        step(x)
        imgs += x.shape[0]
    return imgs / (time.perf_counter() - t)


def _corpus(root: Path, prof, steps: int) -> Path:
    """A generated corpus under ``root`` with enough ``mini`` images for ``steps`` batches
    (and the warm-up ones) of the profile."""
    from ..config import CorpusGen
    from ..data.corpus import generate_corpora

    n_per = max(2, -(-prof.ssl.pretrain_batch * (steps + 3) // 64))
    return generate_corpora(
        root,
        CorpusGen(
            mini_per_class=n_per,
            office_train_per_class=1,
            office_val_per_class=1,
            mini_size=prof.corpus.mini_size,
        ),
        progress=False,
    )


def _byol_step(cfg, device: str) -> Callable[[torch.Tensor], None]:
    """One BYOL training step on a uint8 batch, as pre-training takes it (seeded: every
    bench starts from the same weights); waits for the GPU so that it can be timed."""
    from .augment import BatchAugment, byol_views, to_float
    from .models import make_backbone, make_byol

    torch.manual_seed(0)
    net = make_backbone(cfg.backbone).to(device)
    views = tuple(BatchAugment(v) for v in byol_views(cfg))
    byol = make_byol(net, cfg.image_size, cfg.byol_hidden, cfg.byol_projection, cfg.byol_ema, views)
    opt = torch.optim.SGD(byol.parameters(), lr=cfg.pretrain_lr, momentum=cfg.momentum)

    def step(x: torch.Tensor) -> None:
        loss = byol(to_float(x.to(device, non_blocking=True)))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        byol.update_moving_average()
        if device == "cuda":
            torch.cuda.synchronize()

    return step


def _batches(data: Path, cfg, cache: bool, workers: int, device: str) -> Iterator[torch.Tensor]:
    """``mini``'s images in shuffled batches, epoch after epoch without end."""
    from .datasets import ImageSet, make_loader

    csv_path, img_dir = Path(data) / "mini" / "train.csv", Path(data) / "mini" / "train"
    ds = ImageSet(csv_path, img_dir, cfg.image_size, cache=cache)
    loader = make_loader(
        ds, cfg.pretrain_batch, shuffle=True, drop_last=True, workers=workers, device=device
    )
    return (x for x, _ in itertools.chain.from_iterable(itertools.repeat(loader)))


def _print_rates(rows: list[tuple[str, float]]) -> None:
    """Each way's images per second and loader cost (against the first, in-memory, row)."""
    mem = rows[0][1]
    for name, rate in rows:
        cost = 100.0 * (1.0 - rate / mem)
        print(
            f"  {name:<40} {rate:8.1f} images/s   loader cost {max(cost, 0.0):5.1f}%"
            + (
                ""
                if name.startswith("in-memory")
                else ("   (goal <= 15%: met)" if cost <= 15 else "   (goal <= 15%: NOT met)")
            )
        )


def bench_ssl(args) -> int:
    """The BYOL step's images/s on in-memory tensors and through two loaders, printed."""
    from ..config import get_profile, resolve_device

    prof = get_profile(getattr(args, "profile", None))
    cfg = prof.ssl
    device = resolve_device(getattr(args, "device", "auto"))
    steps = int(getattr(args, "steps", 0) or (20 if device == "cuda" else 6))
    data = getattr(args, "data", None)
    tmp = None
    if data is None:
        tmp = tempfile.TemporaryDirectory(prefix="hw4-bench-ssl-")
        data = _corpus(Path(tmp.name), prof, steps)

    step = _byol_step(cfg, device)
    fixed = torch.randint(
        0, 256, (cfg.pretrain_batch, 3, cfg.image_size, cfg.image_size), dtype=torch.uint8
    )
    rows = [("in-memory tensors", _time_steps(step, itertools.repeat(fixed), steps))]
    rows.append(
        (
            f"profile loader (cache={cfg.cache_images}, workers="
            f"{0 if cfg.cache_images else cfg.workers})",
            _time_steps(step, _batches(data, cfg, cfg.cache_images, cfg.workers, device), steps),
        )
    )
    w = max(cfg.workers, 1)
    rows.append(
        (
            f"decode on the fly (workers={w})",
            _time_steps(step, _batches(data, cfg, False, w, device), steps),
        )
    )
    print(
        f"BYOL step, {cfg.backbone} {cfg.image_size}px batch {cfg.pretrain_batch} on {device} "
        f"(profile {prof.name}, {steps} steps each):"
    )
    _print_rates(rows)
    if tmp is not None:
        tmp.cleanup()
    return 0
