"""LPIPS(vgg, v0.1) through the real ``lpips`` package with our cached VGG16 backbone."""

from __future__ import annotations

import contextlib
import io
import warnings

import numpy as np
import torch

from ..config import resolve_device
from ..weights import lpips as _weights
from .image import to_float_image

# torchvision index of each conv -> lpips's slice holding it (vgg16 slices 0-3, 4-8, ...)
_SLICE_STARTS = (0, 4, 9, 16, 23)


def _slice_of(idx: int) -> int:
    return max(i for i, start in enumerate(_SLICE_STARTS) if idx >= start) + 1


@contextlib.contextmanager
def _features_only_vgg16():
    """Let lpips build its VGG16 without torchvision's classifier.

    lpips 0.1.4 reads only ``tv.vgg16(...).features``; the 123 M-parameter classifier it would
    randomly initialise and discard costs seconds a construction (7.6 s vs ~1 s here).
    Restored on exit.
    """
    import types

    from lpips import pretrained_networks as pn
    from torchvision.models.vgg import cfgs, make_layers

    # swap lpips's own reference to torchvision.models, never torchvision itself
    original = pn.tv
    pn.tv = types.SimpleNamespace(
        vgg16=lambda *a, **k: types.SimpleNamespace(features=make_layers(cfgs["D"]))
    )
    try:
        yield
    finally:
        pn.tv = original


def build_lpips_vgg(features: dict[str, torch.Tensor]) -> torch.nn.Module:
    """``lpips.LPIPS(net='vgg', v0.1)`` with ``features`` loaded into its VGG slices.

    ``pnet_rand=True`` stops lpips asking torchvision for the (undownloadable) backbone; the
    placeholder init is then overwritten, every conv of every slice, and checked to be.
    """
    import lpips

    with _features_only_vgg16(), contextlib.redirect_stdout(io.StringIO()):
        model = lpips.LPIPS(
            net="vgg", version="0.1", pretrained=True, pnet_rand=True, verbose=False
        )
    state = {}
    for key, value in features.items():
        _, idx, kind = key.split(".")
        state[f"net.slice{_slice_of(int(idx))}.{idx}.{kind}"] = value
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or any(k.startswith("net.") for k in missing):
        raise RuntimeError(
            f"VGG16 weights did not fit lpips: missing {missing}, unexpected {unexpected}"
        )
    return model.eval().requires_grad_(False)


class LPIPSMetric:
    """LPIPS(vgg, v0.1) of two HxWx3 images in [0, 1] (numpy or torch, uint8 scaled)."""

    def __init__(self, features: dict[str, torch.Tensor], device: str = "cpu"):
        self.device = device
        self.model = build_lpips_vgg(features).to(device)

    @torch.no_grad()
    def __call__(self, pred: np.ndarray | torch.Tensor, gt: np.ndarray | torch.Tensor) -> float:
        p, g = (to_float_image(x).float() for x in (pred, gt))
        if p.shape != g.shape or p.ndim != 3 or p.shape[2] != 3:
            raise ValueError(
                f"LPIPS needs two HxWx3 images of one size, got "
                f"{tuple(p.shape)} and {tuple(g.shape)}"
            )
        to_nchw = lambda t: t.permute(2, 0, 1)[None].to(self.device)  # noqa: E731
        return self.model(to_nchw(p), to_nchw(g), normalize=True).item()  # [0,1] -> [-1,1]


_CACHE: dict[str, LPIPSMetric] = {}
_WARNED = False


def load_lpips(device: str = "auto") -> LPIPSMetric | None:
    """The LPIPS(vgg) metric on ``device``, or None (with one warning) when no weights are cached.

    Built once per device and reused. Weights come only from ``hw4 weights lpips``'s cache.
    """
    global _WARNED
    dev = resolve_device(device)
    key = f"{dev}:{_weights.cache_path()}"
    if key in _CACHE:
        return _CACHE[key]
    features = _weights.load_cached_features()
    if features is None:
        if not _WARNED:
            warnings.warn(
                f"LPIPS(vgg) weights are not cached at {_weights.cache_path()}: "
                "LPIPS is reported as missing; run `hw4 weights lpips` to obtain them",
                RuntimeWarning,
                stacklevel=2,
            )
            _WARNED = True
        return None
    _CACHE[key] = LPIPSMetric(features, dev)
    return _CACHE[key]


def reference_photo(size: int = 256) -> np.ndarray:
    """A natural photo (scikit-image's bundled astronaut) resized to ``size``: uint8 HxWx3."""
    from PIL import Image
    from skimage import data

    return np.asarray(Image.fromarray(data.astronaut()).resize((size, size), Image.BICUBIC))


def distortions(img: np.ndarray, noise_std: float = 0.2, seed: int = 0) -> dict[str, np.ndarray]:
    """The design note's two distortions: Gaussian blur radius 2 and added N(0, std) noise."""
    from PIL import Image, ImageFilter

    blur = np.asarray(Image.fromarray(img).filter(ImageFilter.GaussianBlur(2)))
    rng = np.random.default_rng(seed)
    noisy = np.clip(img / 255.0 + rng.normal(0.0, noise_std, img.shape), 0.0, 1.0)
    return {"blur": blur, "noise": noisy}


def check_lpips_behaviour(
    metric: LPIPSMetric, size: int = 128, noise_std: float = 0.2
) -> dict[str, float]:
    """LPIPS of a photo against its blurred and noisy versions, and raise unless trained-like.

    A random backbone gives ~0.01-0.02 for both (design note: 0.009 / 0.017 on lego); the
    trained VGG gives ~0.15 / ~0.45 there. We require blur < noise, both clearly above the
    random-backbone range, and 0 for identical images.
    """
    img = reference_photo(size)
    d = distortions(img, noise_std)
    out = {
        "size": size,
        "noise_std": noise_std,
        "same": metric(img, img),
        "blur": metric(img, d["blur"]),
        "noise": metric(img, d["noise"]),
    }
    if not (out["same"] < 1e-6 and 0.05 < out["blur"] < out["noise"]):
        raise RuntimeError(f"LPIPS(vgg) does not behave like a trained VGG: {out}")
    return out
