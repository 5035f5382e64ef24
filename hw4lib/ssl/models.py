"""torchvision ResNets (no pretrained weights), and backbone files.

A *backbone* is a torchvision ResNet whose ``fc`` is ``Identity``: it maps an image to its
pooled feature vector. Backbone files are plain torchvision ResNet state dicts (an ``fc.*``
entry, if any, is ignored), so a user's own ResNet50 checkpoint works as ``--backbone``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch import nn

from ..errors import UserError
from ..results import OUR_CHECKPOINT, load_checkpoint

# blocks per stage of each architecture, and whether it uses bottleneck blocks (torchvision's
# layouts; resnet10, one basic block a stage, is half a resnet18)
_LAYOUT = {
    "resnet10": ((1, 1, 1, 1), False),
    "resnet18": ((2, 2, 2, 2), False),
    "resnet34": ((3, 4, 6, 3), False),
    "resnet50": ((3, 4, 6, 3), True),
    "resnet101": ((3, 4, 23, 3), True),
    "resnet152": ((3, 8, 36, 3), True),
}
ARCHS = tuple(_LAYOUT)


def make_backbone(arch: str) -> nn.Module:
    """A randomly initialised torchvision ResNet with ``fc = Identity`` (built as
    ``torchvision.models.resnet18(weights=None)`` etc. build theirs)."""
    from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet  # slow: on first build

    if arch not in ARCHS:
        raise UserError(f"unknown backbone {arch!r}: choose one of {', '.join(ARCHS)}")
    blocks, bottleneck = _LAYOUT[arch]
    net = ResNet(Bottleneck if bottleneck else BasicBlock, list(blocks))
    net.fc = nn.Identity()
    return net


def make_byol(
    net: nn.Module,
    image_size: int,
    hidden: int,
    projection: int,
    ema: float,
    views: tuple[nn.Module, nn.Module],
) -> nn.Module:
    """BYOL (byol-pytorch) around a backbone, as the paper has it: ``views`` make its two
    augmented views, the projector/predictor MLPs are ``hidden`` wide with ``projection``
    outputs, the target is an EMA (``ema``) of the online network. Plain BatchNorm (byol-pytorch
    would pick SyncBatchNorm under a process group, which has no CPU kernels) and no simplicial
    embeddings (0.9.x turns them on by default; the paper has none)."""
    from byol_pytorch import BYOL  # only BYOL runs need it

    return BYOL(
        net,
        image_size=image_size,
        hidden_layer=-1,  # the backbone's fc is Identity: its output is the pooled feature
        projection_size=projection,
        projection_hidden_size=hidden,
        augment_fn=views[0],
        augment_fn2=views[1],
        moving_average_decay=ema,
        sync_batchnorm=False,
        use_simplicial_embeddings=False,
    )


class PooledFeatures(nn.Module):
    """A classifier seen up to its pooled features (its ``fc`` bypassed, weights shared): the
    one way the kNN monitor and the frozen settings D/E take features."""

    def __init__(self, classifier: nn.Module):
        super().__init__()
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.classifier
        fc, m.fc = m.fc, nn.Identity()
        try:
            return m(x)
        finally:
            m.fc = fc


@torch.no_grad()
def restat_batchnorm(net: nn.Module, batches) -> nn.Module:
    """``net``'s BatchNorm statistics re-estimated on ``batches`` (inputs as the net takes them):
    the plain average over every batch (AdaBN), weights untouched. A frozen backbone then
    normalises what it is shown, not what it was pre-trained on (BYOL: augmented views of
    another data set)."""
    bns = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m.momentum, m.training) for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
        m.train()
    for x in batches:
        net(x)
    for m, (momentum, training) in zip(bns, saved):
        m.momentum = momentum
        m.train(training)
    return net


def feature_dim(arch: str) -> int:
    return 2048 if _LAYOUT[arch][1] else 512


def make_classifier(
    arch: str, n_classes: int, backbone_state: dict | None = None, head_norm: bool = False
) -> nn.Module:
    """Backbone (optionally loaded) + a linear classifier as ``fc`` (torchvision key names).

    ``head_norm`` puts a BatchNorm without affine parameters before the linear layer (``fc.0``,
    ``fc.1``): MAE's linear probe. It standardises the frozen features, so one learning rate
    suits backbones whose features differ in scale (BYOL's are ~5x a supervised net's), and,
    with no trainable parameters, the model is still linear in the features.
    """
    net = make_backbone(arch)
    if backbone_state is not None:
        net.load_state_dict(backbone_state)
    dim = feature_dim(arch)
    linear = nn.Linear(dim, n_classes)
    net.fc = nn.Sequential(nn.BatchNorm1d(dim, affine=False), linear) if head_norm else linear
    return net


def file_sha1(path: str | Path) -> str:
    """The first 16 hex digits of a file's SHA-1: what a run records of the weights it read."""
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def backbone_state(net: nn.Module) -> dict[str, torch.Tensor]:
    """The backbone part of a ResNet's state dict (no ``fc.*``), on the CPU."""
    return {
        k: v.detach().cpu().clone() for k, v in net.state_dict().items() if not k.startswith("fc.")
    }


def infer_arch(state: dict) -> str | None:
    """Which torchvision ResNet a state dict belongs to, from its keys; None if not a ResNet."""
    keys = set(state)
    if not {"conv1.weight", "bn1.weight"} <= keys:
        return None
    for arch, (blocks, bottleneck) in _LAYOUT.items():
        stage_ok = all(
            f"layer{i + 1}.{n - 1}.conv1.weight" in keys
            and f"layer{i + 1}.{n}.conv1.weight" not in keys
            for i, n in enumerate(blocks)
        )
        if stage_ok and (("layer1.0.conv3.weight" in keys) == bottleneck):
            return arch
    return None


def load_backbone_file(path: str | Path) -> tuple[str, dict[str, torch.Tensor]]:
    """(arch, backbone state dict) from a file: a torchvision ResNet state dict, or one of our
    checkpoints holding it under ``backbone``/``state_dict``/``model``. One-line errors."""
    path = Path(path)
    if not path.is_file():
        raise UserError(
            f"{path}: backbone file not found; pass a pre-training run folder or a "
            "ResNet state dict (.pt)"
        )
    obj = load_checkpoint(
        path,
        what=f"{OUR_CHECKPOINT} or a ResNet state dict",
        fix=(
            "pass a pre-training run folder you trust, or a torchvision ResNet state dict saved "
            "with torch.save(model.state_dict(), ...)"
        ),
    )
    if isinstance(obj, dict):
        for key in ("backbone", "state_dict", "model"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise UserError(
            f"{path}: not a state dict of tensors; pass a torchvision ResNet "
            "state dict (torch.save(model.state_dict(), ...))"
        )
    state = {k.removeprefix("module."): v for k, v in obj.items()}
    arch = infer_arch(state)
    if arch is None:
        raise UserError(
            f"{path}: not a torchvision ResNet state dict (keys such as "
            f"{sorted(state)[:3]}); pass a resnet10/18/34/50/101/152 state dict"
        )
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    # the same check as load_state_dict (names and shapes), on a weightless meta-device model
    with torch.device("meta"):
        want = {k: v.shape for k, v in make_backbone(arch).state_dict().items()}
    problems = (
        [f"missing {k}" for k in want if k not in state]
        + [f"unexpected {k}" for k in state if k not in want]
        + [
            f"{k} has shape {tuple(state[k].shape)}, expected {tuple(want[k])}"
            for k in want
            if k in state and state[k].shape != want[k]
        ]
    )
    if problems:
        raise UserError(
            f"{path}: looks like a {arch} but does not load ({problems[0]}); pass "
            "an unmodified torchvision ResNet state dict"
        )
    return arch, state
