"""Saved DVGO models: ``coarse.pt`` / ``fine.pt`` (a finished stage) and ``checkpoint.pt`` (an
interrupted run), written atomically and read back without running code from the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..results import atomic_save, load_checkpoint
from .dvgo import FreeSpaceMask, VoxelModel


def model_args(m: VoxelModel) -> dict[str, Any]:
    return dict(
        lo=m.lo.cpu().tolist(),
        hi=m.hi.cpu().tolist(),
        num_voxels=m.num_voxels,
        base_voxel=m.base_voxel,
        alpha_init=m.alpha_init,
        stepsize=m.stepsize,
        fast_color_thres=m.fast_color_thres,
        feat_dim=m.feat_dim,
        rgbnet_width=m.rgbnet[0].out_features if m.rgbnet is not None else 0,
        rgbnet_depth=(len(m.rgbnet) - 1) // 2 if m.rgbnet is not None else 0,
        viewbase_pe=m.viewbase_pe,
        shift=m.shift,
        mask_shape=list(m.mask.occupied.shape) if m.mask is not None else None,
    )


def build_voxel_model(
    args: dict[str, Any], state: dict[str, torch.Tensor] | None = None, device: str = "cpu"
) -> VoxelModel:
    """Rebuild a :class:`VoxelModel` from :func:`model_args` (and load ``state``)."""
    mask = None
    if args.get("mask_shape"):
        mask = FreeSpaceMask(
            torch.zeros(args["mask_shape"], dtype=torch.bool), torch.zeros(3), torch.ones(3)
        )
    m = VoxelModel(
        torch.tensor(args["lo"]),
        torch.tensor(args["hi"]),
        args["num_voxels"],
        args["base_voxel"],
        alpha_init=args["alpha_init"],
        stepsize=args["stepsize"],
        fast_color_thres=args["fast_color_thres"],
        feat_dim=args["feat_dim"],
        rgbnet_width=args["rgbnet_width"] or 128,
        rgbnet_depth=args["rgbnet_depth"] or 2,
        viewbase_pe=args["viewbase_pe"],
        mask=mask,
    )
    m.shift = args["shift"]
    if state is not None:
        m.load_state_dict(state)
    return m.to(device)


def save_model(m: VoxelModel, path: Path, extra: dict | None = None) -> None:
    atomic_save({"args": model_args(m), "state": m.state_dict(), **(extra or {})}, path)


#: every saved model (coarse.pt, fine.pt) holds these; checkpoint.pt holds CHECKPOINT_KEYS
MODEL_KEYS = ("args", "state")
CHECKPOINT_KEYS = ("state", "args", "model")


def load_model(path: Path, device: str = "cpu") -> VoxelModel:
    """A saved stage (``coarse.pt``, ``fine.pt``), loaded without running code from the file."""
    ck = load_checkpoint(
        path,
        keys=MODEL_KEYS,
        fix=(
            f"delete {Path(path).parent} and train it again (`hw4 nerf train --data DIR --out "
            f"{Path(path).parent}`), or use a run you trust"
        ),
    )
    return build_voxel_model(ck["args"], ck["state"], device)


def load_resume_checkpoint(ck_path: Path) -> dict[str, Any]:
    """``checkpoint.pt`` of an interrupted run, or a one-line error saying how to go on."""
    # without checkpoint.pt, the same command minus --resume trains the run again from the start
    return load_checkpoint(
        ck_path,
        keys=CHECKPOINT_KEYS,
        fix=(
            f"delete {ck_path} and rerun without --resume to train the run afresh, or resume a run "
            "you trust"
        ),
    )
