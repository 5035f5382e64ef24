"""Pre-training (BYOL, supervised) and fine-tuning A-E on a tiny generated corpus: the loss
falls, each setting freezes what the report's table says, runs resume, bad resumes fail."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from hw4lib.config import CorpusGen, get_profile
from hw4lib.data.corpus import generate_corpora
from hw4lib.errors import UserError
from hw4lib.ssl import checkpoint as ckpt
from hw4lib.ssl import finetune as FT
from hw4lib.ssl.models import backbone_state, make_backbone
from hw4lib.ssl.pretrain import run_pretrain

CFG = replace(get_profile("smoke").ssl, image_size=16, pretrain_batch=16, byol_hidden=64,
              byol_projection=32, knn_per_class=1, knn_every=3, cache_images=True, workers=0,
              finetune_batch=8, finetune_epochs=2, pretrain_epochs=2, supervised_epochs=1,
              checkpoint_every_s=0.0)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return generate_corpora(tmp_path_factory.mktemp("ssl") / "data",
                            CorpusGen(mini_per_class=1, office_train_per_class=1,
                                      office_val_per_class=1, mini_size=16),
                            progress=False)


@pytest.fixture(scope="module")
def byol_run(data, tmp_path_factory) -> dict:
    # 64 images, batch 16: 4 steps an epoch, 6 epochs; resume checkpoints only after the
    # last epoch (checkpoint_every_s is not a run setting, so the reuse test still matches)
    return run_pretrain("byol", data, tmp_path_factory.mktemp("runs") / "byol",
                        replace(CFG, checkpoint_every_s=1e9), profile="smoke", epochs=6,
                        progress=False)


def test_byol_loss_falls_and_backbone_is_saved(byol_run):
    losses = [h["loss"] for h in byol_run["history"] if h["loss"] is not None]
    assert len(losses) == 6
    assert sum(losses[-2:]) / 2 < 0.8 * sum(losses[:2]) / 2
    # the kNN monitor ran before training and every 3 epochs (and at the end)
    assert [h["epoch"] for h in byol_run["history"] if h["knn"] is not None] == [0, 3, 6]
    arch, state = FT.load_backbone_file(Path(byol_run["run_dir"]) / "backbone.pt")
    assert arch == CFG.backbone and not any(k.startswith("fc.") for k in state)
    # the saved backbone is BYOL's online network (the last checkpoint's net.*)
    last = ckpt.load(Path(byol_run["run_dir"]) / "last.pt")
    assert torch.equal(last["model"]["net.conv1.weight"], state["conv1.weight"])
    assert "target_encoder.net.conv1.weight" in last["model"]


def test_finished_run_is_reused(byol_run, data):
    again = run_pretrain("byol", data, Path(byol_run["run_dir"]), CFG, profile="smoke",
                         epochs=6, progress=False)
    assert again["history"] == byol_run["history"]
    with pytest.raises(UserError, match="already holds a run"):
        run_pretrain("byol", data, Path(byol_run["run_dir"]), CFG, profile="smoke", epochs=3,
                     progress=False)


def test_supervised_pretraining(data, tmp_path):
    s = run_pretrain("supervised", data, tmp_path / "sup", CFG, profile="smoke", epochs=1,
                     progress=False)
    assert s["classes"] and len(s["classes"]) == 64
    assert (tmp_path / "sup" / "backbone.pt").is_file()


@pytest.fixture(scope="module")
def r18_state() -> dict:
    return backbone_state(make_backbone("resnet18"))


@pytest.mark.parametrize("setting", list("ABCDE"))
def test_setting_trainable_parameters(setting, r18_state):
    method, frozen = FT.SETTINGS[setting]
    bstate = None if method is None else r18_state
    m = FT.build_model(setting, "resnet18", 5, bstate)
    trainable = {n for n, p in m.named_parameters() if p.requires_grad}
    if frozen:
        assert trainable == {"fc.weight", "fc.bias"}
    else:
        assert trainable == {n for n, _ in m.named_parameters()}
    if bstate is not None:
        assert torch.equal(m.conv1.weight, bstate["conv1.weight"])
    # one training step: a frozen backbone (weights AND BatchNorm statistics) does not move
    before = {k: v.clone() for k, v in m.state_dict().items()}
    FT.set_train_mode(m, frozen)
    opt = torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=0.1)
    loss = torch.nn.functional.cross_entropy(m(torch.randn(4, 3, 16, 16)), torch.arange(4))
    loss.backward()
    opt.step()
    after = m.state_dict()
    assert not torch.equal(before["fc.weight"], after["fc.weight"])
    moved = [k for k in before if not k.startswith("fc.") and not torch.equal(before[k], after[k])]
    assert (moved == []) == frozen


def test_finetune_settings_need_the_right_backbone(data, tmp_path, byol_run):
    with pytest.raises(UserError, match="needs --backbone"):
        FT.run_finetune("C", data, tmp_path / "c", CFG, profile="smoke", progress=False)
    with pytest.raises(UserError, match="from scratch"):
        FT.run_finetune("A", data, tmp_path / "a", CFG, profile="smoke",
                        backbone=byol_run["run_dir"], progress=False)


def test_finetune_E_resumes_after_a_kill(data, tmp_path, byol_run, monkeypatch):
    run = tmp_path / "E"
    calls = {"n": 0}
    real = FT.evaluate

    def dies_in_epoch_2(*a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(FT, "evaluate", dies_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        FT.run_finetune("E", data, run, CFG, profile="smoke", backbone=byol_run["run_dir"],
                        epochs=3, progress=False)
    monkeypatch.setattr(FT, "evaluate", real)
    first = ckpt.load(run / "last.pt")
    assert first["epoch"] == 1 and (run / "best.pt").is_file() and not (run / "run.json").exists()

    # a resume with different settings: one-line error, nothing touched
    files = {p.name: p.read_bytes() for p in run.iterdir()}
    with pytest.raises(UserError) as e:
        FT.run_finetune("E", data, run, CFG, profile="smoke", backbone=byol_run["run_dir"],
                        epochs=4, resume=True, progress=False)
    assert "settings.json" in str(e.value) and "epochs" in str(e.value)
    assert "\n" not in str(e.value)
    assert {p.name: p.read_bytes() for p in run.iterdir()} == files

    s = FT.run_finetune("E", data, run, CFG, profile="smoke", backbone=byol_run["run_dir"],
                        epochs=3, resume=True, progress=False)
    assert [h["epoch"] for h in s["history"]] == [1, 2, 3]
    assert s["history"][0] == first["history"][0]
    backbone_params = sum(p.numel() for p in make_backbone(CFG.backbone).parameters())
    assert s["trainable_params"] == 512 * 65 + 65 and s["frozen_params"] == backbone_params
    best = ckpt.load(run / "best.pt")
    assert best["val_acc"] == s["best_val_acc"] and len(best["classes"]) == 65


def test_frozen_settings_use_the_head_learning_rate(tmp_path, r18_state):
    f = tmp_path / "b.pt"
    torch.save(r18_state, f)
    cfg = replace(CFG, finetune_lr=1e-3, finetune_head_lr=0.02)
    lr = {s: FT.finetune_settings(s, tmp_path, None if s == "A" else f, cfg, "smoke")["lr"]
          for s in "ABCDE"}
    assert lr == {"A": 1e-3, "B": 1e-3, "C": 1e-3, "D": 0.02, "E": 0.02}
    # unset (the full profile, the report): one learning rate for every setting
    none = replace(cfg, finetune_head_lr=None)
    assert FT.finetune_settings("E", tmp_path, f, none, "full")["lr"] == 1e-3


def test_probe_head_norm_standardises_features_and_trains_only_the_linear_layer(r18_state):
    m = FT.build_model("E", "resnet18", 5, r18_state, head_norm=True)
    assert {n for n, p in m.named_parameters() if p.requires_grad} == {"fc.1.weight", "fc.1.bias"}
    FT.set_train_mode(m, frozen=True)
    feats = 7.0 * torch.randn(64, 512) + 3.0            # any scale and offset
    z = m.fc[0](feats)
    assert torch.allclose(z.mean(0), torch.zeros(512), atol=1e-5)
    assert torch.allclose(z.var(0, unbiased=False), torch.ones(512), atol=1e-3)
    # a training step moves the head's statistics and weights, never the backbone's
    before = {k: v.clone() for k, v in m.state_dict().items()}
    opt = torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=0.1)
    torch.nn.functional.cross_entropy(m(torch.randn(4, 3, 16, 16)), torch.arange(4)).backward()
    opt.step()
    after = m.state_dict()
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    assert {"fc.0.running_mean", "fc.1.weight"} <= moved
    assert all(k.startswith("fc.") for k in moved)
    with pytest.raises(ValueError, match="head_norm is for D and E"):
        FT.build_model("C", "resnet18", 5, r18_state, head_norm=True)


def test_head_norm_run_predicts_what_it_validated(data, tmp_path, byol_run):
    cfg = replace(CFG, probe_head_norm=True)
    s = FT.run_finetune("D", data, tmp_path / "D", cfg, profile="smoke",
                        backbone=byol_run["run_dir"], epochs=2, progress=False)
    assert s["settings"]["head_norm"] is True
    assert FT.finetune_settings("B", data, Path(byol_run["backbone"]), cfg,
                                "smoke")["head_norm"] is False  # full fine-tuning: plain head
    best = ckpt.load(tmp_path / "D" / "best.pt")
    assert best["head_norm"] is True and "fc.0.running_var" in best["model"]
    r = FT.predict(tmp_path / "D", data / "office" / "val.csv", data / "office" / "val",
                   tmp_path / "pred.csv")
    assert r["accuracy"] == pytest.approx(s["best_val_acc"])
