"""Pre-training (BYOL, supervised) and fine-tuning A-E on a tiny generated corpus: the loss
falls, each setting freezes what the report's table says, runs resume, bad resumes fail."""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path

import pytest
import torch

from hw4lib.config import SSLConfig, get_profile
from hw4lib.errors import UserError
from hw4lib.ssl import ae
from hw4lib.ssl import checkpoint as ckpt
from hw4lib.ssl import finetune as FT
from hw4lib.ssl.augment import LIGHT
from hw4lib.ssl.finetune_run import finetune_run, finetune_settings
from hw4lib.ssl.models import backbone_state, load_backbone_file, make_backbone
from hw4lib.ssl.predict import predict
from hw4lib.ssl.pretrain_run import pretrain_run, pretrain_settings
from hw4lib.ssl.request import FinetuneRequest, PretrainRequest

CFG = replace(
    get_profile("smoke").ssl,
    image_size=16,
    pretrain_batch=16,
    byol_hidden=64,
    byol_projection=32,
    knn_per_class=1,
    knn_evals=2,
    cache_images=True,
    workers=0,
    finetune_batch=8,
    finetune_epochs=2,
    pretrain_epochs=2,
    supervised_epochs=1,
    checkpoint_every_s=0.0,
)


def _pretrain(method: str, data: Path, out: Path, cfg: SSLConfig, **kw) -> dict:
    """:func:`pretrain_run` (smoke profile, CPU, no progress bar), ``cfg`` for its settings."""
    req = PretrainRequest(method, data=data, out=out, profile="smoke", device="cpu", **kw)
    return pretrain_run(req, cfg=cfg, progress=False)


def _finetune(setting: str, data: Path, out: Path, cfg: SSLConfig, **kw) -> dict:
    """:func:`finetune_run` (smoke profile, CPU, no progress bar), ``cfg`` for its settings."""
    req = FinetuneRequest(setting, data=data, out=out, profile="smoke", device="cpu", **kw)
    return finetune_run(req, cfg=cfg, progress=False)


@pytest.fixture(scope="module")
def byol_run(data, tmp_path_factory) -> dict:
    # 64 images, batch 16: 4 steps an epoch, 6 epochs; resume checkpoints only after the
    # last epoch (checkpoint_every_s is not a run setting, so the reuse test still matches)
    return _pretrain(
        "byol",
        data,
        tmp_path_factory.mktemp("runs") / "byol",
        replace(CFG, checkpoint_every_s=1e9),
        epochs=6,
    )


def test_byol_loss_falls_and_backbone_is_saved(byol_run):
    h = byol_run["history"]
    # 24 steps: a row every 2 (about 20 in all, at least one an epoch), each the mean loss since
    # the row before
    assert [r["step"] for r in h] == [0] + list(range(2, 25, 2))
    assert [r["epoch"] for r in h if r["step"] % 4 == 0] == [0, 1, 2, 3, 4, 5, 6]
    losses = [r["loss"] for r in h if r["loss"] is not None]
    assert sum(losses[-3:]) / 3 < 0.8 * sum(losses[:3]) / 3
    # the kNN monitor ran before training and knn_evals = 2 times (halfway, at the end)
    assert [r["epoch"] for r in h if r["knn"] is not None] == [0, 3, 6]
    assert byol_run["steps"] == 24 and byol_run["epochs"] == 6
    arch, state = load_backbone_file(Path(byol_run["run_dir"]) / "backbone.pt")
    assert arch == CFG.backbone and not any(k.startswith("fc.") for k in state)
    # the saved backbone is BYOL's online network (the last checkpoint's net.*)
    last = ckpt.load(Path(byol_run["run_dir"]) / "last.pt")
    assert torch.equal(last["model"]["net.conv1.weight"], state["conv1.weight"])
    assert "target_encoder.net.conv1.weight" in last["model"]


def test_finished_run_is_reused(byol_run, data):
    again = _pretrain("byol", data, Path(byol_run["run_dir"]), CFG, epochs=6)
    assert again["history"] == byol_run["history"]
    with pytest.raises(UserError, match="already holds a run"):
        _pretrain("byol", data, Path(byol_run["run_dir"]), CFG, epochs=3)


def test_supervised_pretraining(data, tmp_path):
    """It learns: over 8 passes (32 steps) the loss falls and every layer's weights move away
    from the ones it started from."""
    torch.manual_seed(5)
    init = backbone_state(make_backbone(CFG.backbone))
    torch.save(init, tmp_path / "init.pt")
    s = _pretrain(
        "supervised",
        data,
        tmp_path / "sup",
        CFG,
        epochs=8,
        init=tmp_path / "init.pt",
    )
    assert s["classes"] and len(s["classes"]) == 64
    losses = [r["loss"] for r in s["history"] if r["loss"] is not None]
    assert len(losses) == 16  # a row every 2 steps
    first, last = sum(losses[:4]) / 4, sum(losses[-4:]) / 4
    assert last < 0.85 * first, losses
    got = load_backbone_file(tmp_path / "sup" / "backbone.pt")[1]
    convs = [k for k in init if k.endswith("conv1.weight") or k.endswith("conv2.weight")]
    assert len(convs) >= 9 and not any(torch.equal(got[k], init[k]) for k in convs)


def test_a_step_budget_stops_mid_epoch(data, tmp_path):
    # 4 steps an epoch: 10 steps end half-way through the third epoch
    s = _pretrain("supervised", data, tmp_path / "sup", CFG, steps=10)
    assert s["steps"] == 10 and s["epochs"] == 2.5 and s["history"][-1]["step"] == 10
    assert s["settings"]["steps"] == 10 and s["settings"]["epochs"] is None
    last = ckpt.load(tmp_path / "sup" / "last.pt")
    assert last["step"] == 10 and last["scheduler"]["last_epoch"] == 10  # 10 optimizer steps
    # the profile's budget: smoke pre-trains BYOL for pretrain_steps steps
    assert pretrain_settings("byol", data, CFG, "smoke")["steps"] == CFG.pretrain_steps
    with pytest.raises(UserError, match="choose one budget"):
        pretrain_settings("byol", data, CFG, "smoke", epochs=1, steps=1)


def _count_calls(monkeypatch, module, name: str) -> dict:
    """Count the calls of ``module.name`` from now on (the steps or epochs a run trains)."""
    real, n = getattr(module, name), {"n": 0}

    def counted(*a, **k):
        n["n"] += 1
        return real(*a, **k)

    monkeypatch.setattr(module, name, counted)
    return n


def _stop_after_checkpoint(monkeypatch, at_step: int) -> None:
    """Make the run die (as a kill would) just after it checkpointed step ``at_step``."""
    real = ckpt.atomic_save

    def save(obj, path):
        real(obj, path)
        if Path(path).name == "last.pt" and obj.get("step", obj.get("epoch")) == at_step:
            raise KeyboardInterrupt

    monkeypatch.setattr(ckpt, "atomic_save", save)


@pytest.mark.slow
def test_resumed_byol_run_repeats_the_uninterrupted_one(data, tmp_path, monkeypatch):
    whole = _pretrain("byol", data, tmp_path / "whole", CFG, steps=10)
    _stop_after_checkpoint(monkeypatch, 6)  # mid-way through the second epoch
    with pytest.raises(KeyboardInterrupt):
        _pretrain("byol", data, tmp_path / "cut", CFG, steps=10)
    monkeypatch.undo()
    assert not (tmp_path / "cut" / "run.json").exists()
    steps = _count_calls(monkeypatch, torch.optim.SGD, "step")
    again = _pretrain("byol", data, tmp_path / "cut", CFG, steps=10, resume=True)
    monkeypatch.undo()
    assert steps["n"] == 4  # steps 7-10 only: it went on, it did not start over
    # it went on from step 6 (the rows before it are the first run's) ...
    assert [r["step"] for r in again["history"]] == [r["step"] for r in whole["history"]]
    # ... with the same data order and random draws: the same losses and the same weights
    assert [r["loss"] for r in again["history"]] == [r["loss"] for r in whole["history"]]
    a = load_backbone_file(tmp_path / "whole" / "backbone.pt")[1]
    b = load_backbone_file(tmp_path / "cut" / "backbone.pt")[1]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_pretraining_from_a_state_dict(data, tmp_path):
    torch.manual_seed(7)
    init = backbone_state(make_backbone(CFG.backbone))
    torch.save({**init, "fc.weight": torch.zeros(10, 512)}, tmp_path / "init.pt")
    s = _pretrain(
        "supervised",
        data,
        tmp_path / "sup",
        replace(CFG, supervised_lr=0.0),
        steps=2,
        init=tmp_path / "init.pt",
    )
    rec = s["settings"]["init"]
    assert rec["path"] == str((tmp_path / "init.pt").resolve()) and len(rec["sha1"]) == 16
    # lr 0: the run's weights are the file's (its fc ignored); BatchNorm statistics moved
    got = load_backbone_file(tmp_path / "sup" / "backbone.pt")[1]
    assert torch.equal(got["conv1.weight"], init["conv1.weight"])
    assert not torch.equal(got["bn1.running_mean"], init["bn1.running_mean"])
    # resuming with another init is refused, nothing touched
    other = tmp_path / "other.pt"
    torch.save(backbone_state(make_backbone(CFG.backbone)), other)
    files = {p.name: p.read_bytes() for p in (tmp_path / "sup").iterdir()}
    with pytest.raises(UserError, match="cannot resume with different settings.*init"):
        _pretrain(
            "supervised",
            data,
            tmp_path / "sup",
            replace(CFG, supervised_lr=0.0),
            steps=2,
            init=other,
            resume=True,
        )
    assert {p.name: p.read_bytes() for p in (tmp_path / "sup").iterdir()} == files


@pytest.mark.parametrize("case", ["missing", "not a state dict", "other arch", "imagenet"])
def test_bad_init_is_one_line_and_writes_nothing(case, data, tmp_path, monkeypatch):
    f = tmp_path / "init.pt"
    if case == "not a state dict":
        torch.save([1, 2, 3], f)
    elif case == "other arch":
        torch.save(make_backbone("resnet18").state_dict(), f)
    init = "imagenet" if case == "imagenet" else f
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))  # no cached weights there
    with pytest.raises(UserError) as e:
        _pretrain("byol", data, tmp_path / "run", CFG, steps=2, init=init)
    msg = str(e.value)
    assert "\n" not in msg and not (tmp_path / "run").exists()
    want = {
        "missing": "not found",
        "not a state dict": "not a state dict of tensors",
        "other arch": "a resnet18 state dict, but this profile pre-trains a resnet10",
        "imagenet": "torchvision has no ImageNet weights for resnet10",
    }[case]
    assert want in msg


def test_imagenet_init_names_the_cached_file(tmp_path, monkeypatch):
    from hw4lib.weights.imagenet import imagenet_weights

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(UserError) as e:
        imagenet_weights("resnet50")
    assert str(tmp_path / "hub" / "checkpoints" / "resnet50-") in str(e.value)
    assert "download https://download.pytorch.org/models/resnet50-" in str(e.value)
    # once the file is where torchvision caches it, it is used (checked like any --init)
    name = str(e.value).split(":")[0]
    Path(name).parent.mkdir(parents=True)
    torch.save(make_backbone("resnet50").state_dict(), name)
    assert imagenet_weights("resnet50") == Path(name)


@pytest.fixture(scope="module")
def r18_state() -> dict:
    return backbone_state(make_backbone("resnet18"))


@pytest.mark.parametrize("setting", list("ABCDE"))
def test_setting_trainable_parameters(setting, r18_state):
    method, frozen = ae.AE_SETTINGS[setting]
    bstate = None if method is None else r18_state
    m = ae.setting_classifier(setting, "resnet18", 5, bstate)
    trainable = {n for n, p in m.named_parameters() if p.requires_grad}
    if frozen:
        assert trainable == {"fc.weight", "fc.bias"}
    else:
        assert trainable == {n for n, _ in m.named_parameters()}
    if bstate is not None:
        assert torch.equal(m.conv1.weight, bstate["conv1.weight"])
    # one training step: a frozen backbone (weights AND BatchNorm statistics) does not move
    before = {k: v.clone() for k, v in m.state_dict().items()}
    ae.set_train_mode(m, frozen)
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
        _finetune("C", data, tmp_path / "c", CFG)
    with pytest.raises(UserError, match="from scratch"):
        _finetune(
            "A",
            data,
            tmp_path / "a",
            CFG,
            backbone=byol_run["run_dir"],
        )


@pytest.mark.slow
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
        _finetune(
            "E",
            data,
            run,
            CFG,
            backbone=byol_run["run_dir"],
            epochs=3,
        )
    monkeypatch.setattr(FT, "evaluate", real)
    first = ckpt.load(run / "last.pt")
    assert first["epoch"] == 1 and (run / "best.pt").is_file() and not (run / "run.json").exists()

    # a resume with different settings: one-line error, nothing touched
    files = {p.name: p.read_bytes() for p in run.iterdir()}
    with pytest.raises(UserError) as e:
        _finetune(
            "E",
            data,
            run,
            CFG,
            backbone=byol_run["run_dir"],
            epochs=4,
            resume=True,
        )
    assert "settings.json" in str(e.value) and "epochs" in str(e.value)
    assert "\n" not in str(e.value)
    assert {p.name: p.read_bytes() for p in run.iterdir()} == files

    calls["n"] = 0
    monkeypatch.setattr(
        FT, "evaluate", lambda *a, **k: calls.__setitem__("n", calls["n"] + 1) or real(*a, **k)
    )
    s = _finetune(
        "E",
        data,
        run,
        CFG,
        backbone=byol_run["run_dir"],
        epochs=3,
        resume=True,
    )
    assert calls["n"] == 2  # epochs 2 and 3 trained (and validated) after the restart
    assert [h["epoch"] for h in s["history"]] == [1, 2, 3]
    assert s["history"][0] == first["history"][0]
    backbone_params = sum(p.numel() for p in make_backbone(CFG.backbone).parameters())
    assert s["trainable_params"] == 512 * 65 + 65 and s["frozen_params"] == backbone_params
    best = ckpt.load(run / "best.pt")
    assert best["val_acc"] == s["best_val_acc"] and len(best["classes"]) == 65


@pytest.mark.slow
def test_resumed_finetuning_repeats_the_uninterrupted_one(data, tmp_path, byol_run, monkeypatch):
    kw = dict(backbone=byol_run["run_dir"], epochs=3)
    whole = _finetune("C", data, tmp_path / "whole", CFG, **kw)
    _stop_after_checkpoint(monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt):
        _finetune("C", data, tmp_path / "cut", CFG, **kw)
    monkeypatch.undo()
    epochs = _count_calls(monkeypatch, FT, "evaluate")
    again = _finetune("C", data, tmp_path / "cut", CFG, resume=True, **kw)
    monkeypatch.undo()
    assert epochs["n"] == 2  # epochs 2 and 3 only
    assert again["history"] == whole["history"]  # the same batches, draws and numbers
    a, b = (ckpt.load(tmp_path / r / "best.pt")["model"] for r in ("whole", "cut"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_finetuning_recipe_is_shared_and_unaugmented_unless_asked(data, tmp_path, byol_run):
    f = Path(byol_run["backbone"])
    got = {
        s: finetune_settings(s, data, None if s == "A" else f, CFG, "smoke")["augment"]
        for s in "ABCDE"
    }
    assert got == dict.fromkeys("ABCDE")  # the report's fine-tuning: no augmentation
    aug = replace(CFG, finetune_augment=True)
    assert finetune_settings("A", data, None, aug, "smoke")["augment"] == asdict(LIGHT)
    # a step budget becomes whole epochs: 65 images, batch 8 -> 8 steps an epoch
    s = _finetune("A", data, tmp_path / "A", replace(CFG, finetune_steps=12))
    assert s["settings"]["steps"] == 12 and s["epochs"] == 2 and len(s["history"]) == 2


def test_frozen_settings_use_the_head_learning_rate(tmp_path, r18_state):
    f = tmp_path / "b.pt"
    torch.save(r18_state, f)
    cfg = replace(CFG, finetune_lr=1e-3, finetune_head_lr=0.02)
    lr = {
        s: finetune_settings(s, tmp_path, None if s == "A" else f, cfg, "smoke")["lr"]
        for s in "ABCDE"
    }
    assert lr == {"A": 1e-3, "B": 1e-3, "C": 1e-3, "D": 0.02, "E": 0.02}
    # unset (the full profile, the report): one learning rate for every setting
    none = replace(cfg, finetune_head_lr=None)
    assert finetune_settings("E", tmp_path, f, none, "full")["lr"] == 1e-3


def test_probe_head_norm_standardises_features_and_trains_only_the_linear_layer(r18_state):
    m = ae.setting_classifier("E", "resnet18", 5, r18_state, head_norm=True)
    assert {n for n, p in m.named_parameters() if p.requires_grad} == {"fc.1.weight", "fc.1.bias"}
    ae.set_train_mode(m, frozen=True)
    feats = 7.0 * torch.randn(64, 512) + 3.0  # any scale and offset
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
        ae.setting_classifier("C", "resnet18", 5, r18_state, head_norm=True)


def test_head_norm_run_predicts_what_it_validated(data, tmp_path, byol_run):
    cfg = replace(CFG, probe_head_norm=True)
    s = _finetune(
        "D",
        data,
        tmp_path / "D",
        cfg,
        backbone=byol_run["run_dir"],
        epochs=2,
    )
    assert s["settings"]["head_norm"] is True
    assert (
        finetune_settings("B", data, Path(byol_run["backbone"]), cfg, "smoke")["head_norm"] is False
    )  # full fine-tuning: plain head
    best = ckpt.load(tmp_path / "D" / "best.pt")
    assert best["head_norm"] is True and "fc.0.running_var" in best["model"]
    r = predict(
        tmp_path / "D", data / "office" / "val.csv", data / "office" / "val", tmp_path / "pred.csv"
    )
    assert r["accuracy"] == pytest.approx(s["best_val_acc"])


@pytest.mark.parametrize("restats", [True, False])
def test_frozen_backbone_batchnorm_statistics(restats, data, tmp_path, byol_run):
    """D/E re-estimate the frozen backbone's BatchNorm statistics on the training images
    (AdaBN) when asked, and keep pre-training's otherwise; the weights never move."""
    cfg = replace(CFG, probe_bn_restats=restats)
    run = tmp_path / "E"
    s = _finetune("E", data, run, cfg, backbone=byol_run["run_dir"], epochs=1)
    assert s["settings"]["bn_restats"] is restats
    assert "bn_restats" not in finetune_settings("C", data, Path(byol_run["backbone"]), cfg, "x")
    pre = torch.load(byol_run["backbone"], weights_only=True)["backbone"]
    got = ckpt.load(run / "best.pt")["model"]
    stats = [k for k in pre if k.endswith("running_mean")]
    weights = [k for k in pre if k.endswith(".weight")]
    assert all(torch.equal(pre[k], got[k]) for k in weights)
    same = [torch.equal(pre[k], got[k]) for k in stats]
    assert not any(same) if restats else all(same)
