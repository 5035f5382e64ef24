"""Pretrained weights the project reads and never downloads on its own: LPIPS's VGG16 backbone
(:mod:`.lpips`, obtained and verified by ``hw4 weights lpips``; its conversion and check in
:mod:`.vgg16`) and torchvision's ImageNet ResNets that ``--init imagenet`` starts BYOL from
(:mod:`.imagenet`). Here: where such files are looked for and kept.
"""

from __future__ import annotations

from pathlib import Path

from .. import env


def cache_dir() -> Path:
    """``$HW4_CACHE`` or ``~/.cache/hw4``: what this project makes of weights (verified copies)."""
    return env.path("HW4_CACHE")


def torchvision_file(name: str) -> Path:
    """Where torchvision keeps the downloaded weights file ``name`` (honours ``$TORCH_HOME``)."""
    import torch  # here, not at import: `hw4 weights --help` and the env checks stay light

    return Path(torch.hub.get_dir()) / "checkpoints" / name
