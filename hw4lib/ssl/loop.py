"""The skeleton both SSL training loops share (:mod:`.pretrain` counts optimizer steps and may
run data-parallel, :mod:`.finetune` counts epochs): the run folder's verdict acted on, SGD with
momentum and a StepLR schedule over the trainable parameters, the checkpoint resumed from, the
divergence check, and ``last.pt`` written atomically at most every ``checkpoint_every_s``
seconds. Each loop keeps only what is its own: its data, its step, its records.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..errors import UserError, check_finite
from ..runs import RESUME, CheckpointClock, RunKind, RunPlan
from . import checkpoint as ckpt
from .distributed import Dist


def resume_state(
    run_dir: Path,
    kind: RunKind,
    plan: RunPlan,
    settings: dict,
    keys: tuple[str, ...] = ckpt.LAST_KEYS,
    d: Dist | None = None,
) -> dict | None:
    """Act on ``plan`` (resume or start afresh) once the data has been read: the checkpoint
    to resume from, or None. One process prepares the folder; under DDP the others follow its
    verdict (a refused checkpoint stops every process) and read the checkpoint themselves."""
    d = d or Dist()
    err, state = None, None
    if d.main:
        try:
            state = ckpt.begin(run_dir, kind, plan, settings, keys)
        except UserError as e:
            err = str(e)
    err = d.broadcast(err)
    if err is not None:
        raise UserError(err)
    if not d.main and plan.action == RESUME:
        state = ckpt.load(Path(run_dir) / kind.checkpoint)
    return state


class RunLoop:
    """One run's optimiser, schedule and checkpoints: ``SGD(lr, momentum)`` over ``model``'s
    trainable parameters, ``StepLR(step_size, gamma)``, both (and the model) restored from
    ``state`` when the run resumes; :meth:`save` writes ``last.pt``."""

    def __init__(
        self,
        run_dir: Path,
        model: nn.Module,
        settings: dict,
        step_size: int,
        state: dict | None,
        every_s: float,
    ):
        self.run_dir, self.model = Path(run_dir), model
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.opt = torch.optim.SGD(self.params, lr=settings["lr"], momentum=settings["momentum"])
        self.sched = torch.optim.lr_scheduler.StepLR(
            self.opt, step_size=step_size, gamma=settings["gamma"]
        )
        if state is not None:
            model.load_state_dict(state["model"])
            self.opt.load_state_dict(state["optimizer"])
            self.sched.load_state_dict(state["scheduler"])
        self.clock = CheckpointClock(every_s)

    def start_clock(self) -> float:
        """Now, as the time the loop starts (the checkpoint throttle counts from it)."""
        return self.clock.restart()

    def step(self, loss: torch.Tensor) -> None:
        """One optimizer step on ``loss``."""
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()

    @property
    def lr(self) -> float:
        return self.sched.get_last_lr()[0]

    def due(self, final: bool = False) -> bool:
        """Whether ``last.pt`` is to be written now: ``final`` (the run's end), or
        ``checkpoint_every_s`` seconds since the last write (each write is a few times the
        model's size)."""
        return self.clock.due(final=final)

    def save(self, record: dict, write: bool = True) -> None:
        """``last.pt``: the model, optimiser and schedule with the loop's ``record`` (where it
        is, its history, its random states); ``write=False`` (a DDP process other than rank
        0) only restarts the throttle."""
        if write:
            ckpt.atomic_save(
                {
                    **record,
                    "model": self.model.state_dict(),
                    "optimizer": self.opt.state_dict(),
                    "scheduler": self.sched.state_dict(),
                },
                self.run_dir / "last.pt",
            )
        self.clock.restart()

    def check_finite(self, loss: float, what: str, where: str) -> float:
        """``loss``, or the project's one-line :class:`UserError` naming the run, ``where`` and
        ``last.pt``: called before anything is written, so that checkpoint stays the last good
        one."""
        return check_finite(loss, self.run_dir, what, where, self.run_dir / "last.pt")
