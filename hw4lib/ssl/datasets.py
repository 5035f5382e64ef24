"""Image datasets over the course's csv layout, yielding uint8 tensors of one fixed size.

Images are resized to ``image_size`` x ``image_size`` on the CPU (the report: resize 128) and
stay uint8 until they reach the device, where :mod:`hw4lib.ssl.augment` turns a whole batch
into normalised floats. With ``cache`` every image is decoded once into memory (small corpora,
CPU profiles); otherwise DataLoader workers decode on the fly (large corpora, GPU).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler
from tqdm.auto import tqdm

from ..data.csvimages import CsvImageDataset, load_rgb
from .distributed import ShardedBatches

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def to_uint8_tensor(img, size: int) -> torch.Tensor:
    """A PIL RGB image resized (antialiased bilinear) to ``size`` x ``size``, as uint8 (3, S, S)."""
    img = img.resize((size, size), Image.BILINEAR)
    return torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1)


class ResizeToTensor:
    """Picklable transform for DataLoader workers."""

    def __init__(self, size: int):
        self.size = size

    def __call__(self, img) -> torch.Tensor:
        return to_uint8_tensor(img, self.size)


#: decoded images of the last few csvs read in this process, by (csv, folder, their mtimes,
#: size): the jobs of a study read the same corpora several times
_DECODED: dict[tuple, torch.Tensor] = {}
_DECODED_MAX = 4  # mini, office train and val: a study's working set


class ImageSet(Dataset):
    """``(uint8 image (3,S,S), class index or -1)`` for each csv row, optionally all in memory."""

    def __init__(
        self,
        csv_path: str | Path,
        image_dir: str | Path,
        size: int,
        classes: list[str] | None = None,
        require_label: bool = False,
        cache: bool = False,
        progress: bool = False,
    ):
        self.base = CsvImageDataset(
            csv_path, image_dir, ResizeToTensor(size), classes=classes, require_label=require_label
        )
        self.size = size
        self.images: torch.Tensor | None = None
        self.labels = torch.tensor([self.base.label_index(i) for i in range(len(self.base))])
        if cache:
            csv, folder = Path(self.base.csv_path).resolve(), Path(self.base.image_dir).resolve()
            key = (str(csv), str(folder), csv.stat().st_mtime_ns, folder.stat().st_mtime_ns, size)
            if key not in _DECODED:
                while len(_DECODED) >= _DECODED_MAX:
                    _DECODED.pop(next(iter(_DECODED)))  # the oldest
                _DECODED[key] = self._decode(size, progress)
            self.images = _DECODED[key]

    def _decode(self, size: int, progress: bool) -> torch.Tensor:
        imgs = torch.empty(len(self.base), 3, size, size, dtype=torch.uint8)
        for i, r in enumerate(
            tqdm(
                self.base.rows,
                desc=f"load {self.base.csv_path.name}",
                disable=not progress,
                leave=False,
            )
        ):
            imgs[i] = to_uint8_tensor(load_rgb(self.base.image_dir / r.filename), size)
        return imgs

    @property
    def classes(self) -> list[str]:
        return self.base.classes

    @property
    def rows(self):
        return self.base.rows

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int):
        if self.images is not None:
            return self.images[i], int(self.labels[i])
        return self.base[i]


def make_loader(
    ds: Dataset,
    batch_size: int,
    shuffle: bool,
    drop_last: bool,
    workers: int,
    device: str,
    seed: int = 0,
    shard: tuple[int, int] = (0, 1),
) -> DataLoader:
    """A DataLoader; workers only when images are decoded on the fly, pinned memory on a GPU.

    ``shard=(rank, world)`` with ``world > 1`` (shuffled, whole batches only): this process's
    slice of every ``batch_size`` batch, drawn as one process would draw it."""
    cached = getattr(ds, "images", None) is not None
    w = 0 if cached else workers
    g = torch.Generator()
    g.manual_seed(seed)
    common = {
        "num_workers": w,
        "pin_memory": device == "cuda",
        "generator": g,
        "persistent_workers": w > 0,
    }
    rank, world = shard
    if world > 1:
        if not (shuffle and drop_last):
            raise ValueError("a sharded loader draws shuffled whole batches only")
        # what DataLoader(shuffle=True, drop_last=True) builds, then cut per process
        batches = BatchSampler(RandomSampler(ds, generator=g), batch_size, drop_last=True)
        return DataLoader(ds, batch_sampler=ShardedBatches(batches, rank, world), **common)
    return DataLoader(ds, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last, **common)
