"""What a user asks of one SSL run: built once (by ``hw4 ssl``, a notebook, the study or the
budget curve) and carried down unchanged to :func:`.pretrain_run.pretrain_run` or
:func:`.finetune_run.finetune_run`, which own the run folder.

Every finished run also lands in the results store, as ``ssl/pretrain_<method>[_s<k>]`` and
``ssl/finetune_<X>[_s<k>]`` unless the request names another ``result``.
"""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass
from pathlib import Path

from ..results import write_result


@dataclass(frozen=True, kw_only=True)
class _RunRequest:
    """What every SSL run is asked: its data folder, its run folder ``out``, the profile and
    device, the budget in ``epochs`` (the profile's unless given), the seed, and how to treat a
    run already in ``out``: reused when finished with the same settings unless ``force``;
    ``resume`` continues an interrupted one; ``replace_stale`` treats ``out`` as a cache (the
    notebooks): a run made with other settings is started over and an interrupted one with the
    same settings resumed (:func:`hw4lib.runs.plan_run`). ``result`` names the stored summary
    instead of :attr:`result_name`'s default."""

    data: str | Path
    out: str | Path
    profile: str | None = None
    device: str = "auto"
    epochs: int | None = None
    seed: int = 0
    resume: bool = False
    force: bool = False
    replace_stale: bool = False
    result: str | None = None

    @property
    def name(self) -> str:
        """``pretrain_<method>`` or ``finetune_<setting>``."""
        raise NotImplementedError

    @property
    def result_name(self) -> str:
        """The name its summary is stored under in the results store."""
        return self.result or f"ssl/{self.name}" + ("" if self.seed == 0 else f"_s{self.seed}")


@dataclass(frozen=True)
class PretrainRequest(_RunRequest):
    """BYOL or supervised (``method``) pre-training on ``data/mini``. ``steps`` instead of
    ``epochs`` overrides the profile's budget; ``init`` (a ResNet state-dict file or
    ``"imagenet"``) starts from those weights instead of a random init; ``snapshots``: steps at
    which the backbone is also saved (budget curves)."""

    method: str
    _: KW_ONLY
    steps: int | None = None
    init: str | Path | None = None
    snapshots: tuple[int, ...] = ()

    @property
    def name(self) -> str:
        return f"pretrain_{self.method}"


@dataclass(frozen=True)
class FinetuneRequest(_RunRequest):
    """Fine-tuning ``setting`` A-E on ``data/office``; ``backbone`` is a pre-training run
    folder or a ResNet state-dict file (none for A)."""

    setting: str
    _: KW_ONLY
    backbone: str | Path | None = None

    @property
    def name(self) -> str:
        return f"finetune_{self.setting}"


def record(
    req: PretrainRequest | FinetuneRequest, summary: dict, profile: str, device: str
) -> None:
    """Store a run's ``summary`` under ``req.result_name``, with its manifest (the ``profile``
    and ``device`` it ran with)."""
    write_result(
        req.result_name,
        summary,
        profile=profile,
        data_source=str(Path(req.data)),
        device=device,
        seconds=summary.get("seconds") or 0.0,
        settings=summary.get("settings"),
    )
