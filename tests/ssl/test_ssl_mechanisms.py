"""BYOL's target EMA, the SSL training mechanism the report names, checked by what it does
(byol-pytorch's formula, to the bit), so that switching it off fails a test."""

from __future__ import annotations

import json
import math

import torch


def test_byols_target_network_follows_the_online_one(data, tmp_path, monkeypatch):
    """After one pre-training step the target network's weights are ema * old target + (1 -
    ema) * the online network's new weights (byol-pytorch's formula, to the bit)."""
    from hw4lib.ssl import loop
    from hw4lib.ssl.pretrain_run import pretrain_run
    from hw4lib.ssl.request import PretrainRequest

    real_step, old = loop.RunLoop.step, {}

    def step(self, loss):
        old.update({k: v.detach().clone() for k, v in self.model.state_dict().items()})
        real_step(self, loss)

    monkeypatch.setattr(loop.RunLoop, "step", step)
    out = tmp_path / "byol"
    req = PretrainRequest("byol", data=data, out=out, profile="smoke", device="cpu", steps=1)
    pretrain_run(req, progress=False)
    ema = json.loads((out / "settings.json").read_text())["byol_ema"]
    assert 0 < ema < 1 and not math.isclose(ema, 1.0)
    new = torch.load(out / "last.pt", weights_only=True)["model"]
    targets = [k for k in new if k.startswith("target_encoder.") and new[k].is_floating_point()]
    weights = [k for k in targets if not k.rsplit(".", 1)[-1].startswith(("running_", "num_"))]
    assert len(weights) > 10
    for k in weights:
        online = new["online_encoder." + k.split(".", 1)[1]]
        assert not torch.equal(online, old[k]), k  # the step moved the online network
        assert torch.equal(new[k], old[k] * ema + (1 - ema) * online), k
