"""The report's settings A-E: what each one fine-tunes on ``office``, from which backbone.

| setting | backbone from | trained |
|---|---|---|
| A | nothing (random init) | full model |
| B | supervised pre-training | full model |
| C | BYOL pre-training | full model |
| D | supervised pre-training | classifier only (backbone frozen, BatchNorm statistics too) |
| E | BYOL pre-training | classifier only |
"""

from __future__ import annotations

from torch import nn

from .models import make_classifier

#: setting -> (pre-training method of its backbone or None, backbone frozen?)
AE_SETTINGS: dict[str, tuple[str | None, bool]] = {
    "A": (None, False),
    "B": ("supervised", False),
    "C": ("byol", False),
    "D": ("supervised", True),
    "E": ("byol", True),
}
DESCRIPTIONS = {
    "A": ("-", "full model (backbone + classifier)"),
    "B": ("supervised (labels)", "full model (backbone + classifier)"),
    "C": ("SSL (BYOL, no labels)", "full model (backbone + classifier)"),
    "D": ("supervised (labels)", "classifier only, backbone frozen"),
    "E": ("SSL (BYOL, no labels)", "classifier only, backbone frozen"),
}


def set_train_mode(model: nn.Module, frozen: bool) -> None:
    """Train mode, except a frozen backbone stays in eval mode (BatchNorm statistics fixed)."""
    model.train()
    if frozen:
        for name, m in model.named_children():
            if name != "fc":
                m.eval()


def setting_classifier(
    setting: str, arch: str, n_classes: int, backbone_state: dict | None, head_norm: bool = False
) -> nn.Module:
    """The setting's classifier with ``requires_grad`` set as the table says; ``head_norm``
    (frozen settings only) standardises the features before the linear head."""
    method, frozen = AE_SETTINGS[setting]
    if (method is None) != (backbone_state is None):
        raise ValueError(
            f"setting {setting} {'takes no' if method is None else 'needs a'} backbone"
        )
    if head_norm and not frozen:
        raise ValueError(f"setting {setting} trains its backbone: head_norm is for D and E")
    model = make_classifier(arch, n_classes, backbone_state, head_norm)
    for name, p in model.named_parameters():
        p.requires_grad = not frozen or name.startswith("fc.")
    return model
