"""The kNN feature monitor: how well a backbone's features separate labeled classes."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .augment import image_input


@torch.no_grad()
def extract_features(
    net: nn.Module, images: torch.Tensor, device: str, batch_size: int = 256
) -> torch.Tensor:
    """Backbone features of uint8 images (N,3,S,S), eval mode, no augmentation."""
    was = net.training
    net.eval()
    out = [
        net(image_input(images[i : i + batch_size].to(device))).flatten(1).float().cpu()
        for i in range(0, len(images), batch_size)
    ]
    net.train(was)
    return torch.cat(out)


def knn_loo_accuracy(feats: torch.Tensor, labels: torch.Tensor, k: int = 20) -> float:
    """Leave-one-out accuracy of a cosine-similarity k-nearest-neighbour majority vote.

    Each sample is classified by the labels of its k most similar OTHER samples (ties go to
    the lower class index).
    """
    n = len(feats)
    k = max(1, min(k, n - 1))
    z = F.normalize(feats.float(), dim=1)
    sim = z @ z.T
    sim.fill_diagonal_(-float("inf"))
    idx = sim.topk(k, dim=1).indices
    votes = F.one_hot(labels[idx], int(labels.max()) + 1).sum(1)
    return float((votes.argmax(1) == labels).float().mean())


def monitor_subset(labels: torch.Tensor, per_class: int) -> torch.Tensor:
    """Indices of the first ``per_class`` images of each class (a fixed labeled probe set)."""
    keep = []
    for c in labels.unique().tolist():
        keep.append((labels == c).nonzero().flatten()[:per_class])
    return torch.cat(keep).sort().values
