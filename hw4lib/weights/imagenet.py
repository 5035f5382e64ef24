"""torchvision's ImageNet-supervised ResNet weights, which ``--init imagenet`` starts
pre-training from, as the report's code did (``models.resnet50(pretrained=True)``)."""

from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from . import torchvision_file


def imagenet_weights(arch: str) -> Path:
    """torchvision's cached ImageNet file for ``arch`` (never downloaded here): the weights
    ``models.resnet50(pretrained=True)`` loads, as the report's code did (IMAGENET1K_V1)."""
    import torchvision  # slow to import: only --init imagenet needs its weight registry

    try:
        w = torchvision.models.get_model_weights(arch).IMAGENET1K_V1
    except ValueError:
        raise UserError(
            f"--init imagenet: torchvision has no ImageNet weights for {arch} (this "
            "profile's backbone); use --profile full (resnet50) or --init PATH"
        ) from None
    path = torchvision_file(Path(w.url).name)
    if not path.is_file():
        raise UserError(
            f"{path}: not found; --init imagenet reads torchvision's cached {arch} "
            f"weights: download {w.url} on a machine with internet and put the "
            f"file there (or set $TORCH_HOME)"
        )
    return path
