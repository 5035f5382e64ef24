"""The SSL loops' shared skeleton (`hw4lib.ssl.loop`) on a two-weight model: a run cut after
its checkpoint and resumed ends where the uninterrupted one does; the checkpoint throttle;
the divergence check; the run folder acted on before training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from hw4lib.errors import UserError
from hw4lib.runs import SSL_FINETUNE, plan_run
from hw4lib.ssl import checkpoint as ckpt
from hw4lib.ssl import loop

SETTINGS = {"setting": "A", "frozen": False, "lr": 0.1, "momentum": 0.9, "gamma": 0.5}


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Linear(2, 1)


def _train(run: loop.RunLoop, steps: range) -> None:
    x = torch.tensor([[1.0, 2.0], [3.0, -1.0]])
    for _ in steps:
        run.step(((run.model(x) - 1) ** 2).mean())
        run.sched.step()


def test_a_resumed_loop_repeats_the_uninterrupted_one(tmp_path):
    whole = loop.RunLoop(tmp_path / "whole", _model(), SETTINGS, 2, None, 1e9)
    _train(whole, range(5))
    (tmp_path / "cut").mkdir()
    cut = loop.RunLoop(tmp_path / "cut", _model(), SETTINGS, 2, None, 1e9)
    _train(cut, range(3))
    cut.save(
        {
            "epoch": 3,
            "history": [],
            "best": {},
            "rng": torch.get_rng_state(),
            "order": torch.get_rng_state(),
        }
    )
    state = ckpt.load(tmp_path / "cut" / "last.pt", ckpt.LAST_KEYS)
    again = loop.RunLoop(tmp_path / "cut", _model(), SETTINGS, 2, state, 1e9)
    assert again.lr == cut.lr == 0.1 * 0.5  # StepLR(2, 0.5) after 3 steps
    _train(again, range(3, 5))
    for a, b in zip(whole.model.parameters(), again.model.parameters()):
        assert torch.equal(a, b)
    assert again.lr == whole.lr == 0.1 * 0.25
    assert len(again.params) == 2


def test_the_checkpoint_throttle(tmp_path):
    run = loop.RunLoop(tmp_path, _model(), SETTINGS, 1, None, 1e9)
    assert not run.due() and run.due(final=True)
    run.save({}, write=False)  # another DDP rank: nothing written
    assert not (tmp_path / "last.pt").exists()
    assert loop.RunLoop(tmp_path, _model(), SETTINGS, 1, None, 0.0).due()


def test_divergence_is_a_one_line_user_error_naming_the_run_and_its_checkpoint(tmp_path):
    run = loop.RunLoop(tmp_path, _model(), SETTINGS, 1, None, 1e9)
    assert run.check_finite(0.5, "setting A", "epoch 2") == 0.5
    with pytest.raises(UserError, match="no checkpoint had been written yet") as e:
        run.check_finite(float("nan"), "setting A", "epoch 2")
    msg = str(e.value)
    assert msg.startswith(f"{tmp_path}: the loss of setting A became NaN at epoch 2; ")
    assert "\n" not in msg and msg.endswith(
        "lower the learning rate, or rerun with --resume if it was a fluke"
    )
    run.save({})
    with pytest.raises(UserError, match=r"became inf at step 7; .*kept \(.*last\.pt\)"):
        run.check_finite(float("inf"), "byol pre-training", "step 7")


def test_the_run_folder_is_acted_on_before_training(tmp_path):
    run = tmp_path / "run"
    assert (
        loop.resume_state(run, SSL_FINETUNE, plan_run(run, SSL_FINETUNE, SETTINGS), SETTINGS)
        is None
    )
    assert json.loads((run / "settings.json").read_text()) == SETTINGS
    ckpt.atomic_save({k: 0 for k in ckpt.LAST_KEYS}, run / "last.pt")
    plan = plan_run(run, SSL_FINETUNE, SETTINGS, resume=True)
    assert loop.resume_state(run, SSL_FINETUNE, plan, SETTINGS)["epoch"] == 0
    Path(run / "last.pt").write_bytes(b"torn")
    with pytest.raises(UserError, match="last.pt"):
        loop.resume_state(run, SSL_FINETUNE, plan, SETTINGS)
    assert (run / "last.pt").read_bytes() == b"torn"  # kept, for the user to decide
