"""A sweep against an accelerator: at every point of a sweep the answers of
:class:`~shapecalc.analysis.fit.Fit` (the memory one GPU holds, does it fit, the largest
context at the point's batch, the most sequences at its context, the fewest GPUs, the
bounds on speed), and for each swept model the fit frontier: the largest context at
batches 1, 2, 4, ...

Every number is :class:`~shapecalc.analysis.fit.Fit`'s own, asked with the point's model
(built whole at its sizes, its weights stored as asked), batch and context: what
``shapecalc fit`` answers for the same model and options. One :class:`Fit` serves every
point of one model (its costs kept between batches and contexts).

    >>> from shapecalc.analysis.hardware import accelerator
    >>> from shapecalc.analysis.sweep import sweep
    >>> sizes = dict(vocab=32000, layers=32, heads=32, intermediate=11008)
    >>> table = sweep("llama", sizes, {"hidden": [2048, 4096]}, show=["params", "fits",
    ...     "max_context"], dtype="bf16", seq_len=4096, fit=FitSetting(accelerator("rtx-4090")))
    >>> [p.fit for p in table.points]
    [(True, 60467), (True, 20517)]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shapecalc.core.frozen import FrozenMethods, frozen

if TYPE_CHECKING:
    from shapecalc.analysis.engines import Engine
    from shapecalc.analysis.fit import Fit
    from shapecalc.analysis.hardware import Accelerator
    from shapecalc.core.model import Model

__all__ = [
    "FIT_COLUMNS",
    "FIT_RULES",
    "FRONTIER_BATCHES",
    "FitSetting",
    "Frontier",
    "SweepFit",
    "fit_answers",
]

#: key -> (title, unit, short title): the answers a sweep against hardware can show
FIT_COLUMNS: dict[str, tuple[str, str, str]] = {
    "gpu_memory": ("memory per GPU", "bytes", "per GPU"),
    "fits": ("fits", "verdict", "fits"),
    "max_context": ("largest context", "positions", "max T"),
    "max_batch": ("most sequences", "sequences", "max B"),
    "min_gpus": ("fewest GPUs", "gpus", "GPUs"),
    "decode": ("decode tokens/s at most", "rate", "decode/s"),
    "prefill": ("prefill tokens/s at most", "rate", "prefill/s"),
}
#: what each answer is, for the legends
FIT_RULES = {
    "gpu_memory": "the memory one GPU holds at the row's B and T (fit's total)",
    "fits": (
        "whether it fits in the GPU's memory at the row's B and T (under an engine, by the "
        "engine's rule; never past the model's own context)"
    ),
    "max_context": "the largest context that fits at the row's B (none: not one position)",
    "max_batch": "the most sequences that fit at the row's T (none: not one, or T past the "
    "model's context)",
    "min_gpus": "the fewest GPUs, tensor parallel, it fits on at B and T (> 64: not on 64, "
    "or T past the model's context)",
    "decode": "decode tokens per second at most at B and T (-: no bandwidth given)",
    "prefill": "prefill tokens per second at most at B and T (-: no peak given)",
}
#: what a sweep against hardware shows unless --show says
DEFAULT_FIT_SHOW = (
    "params",
    "weights",
    "gpu_memory",
    "fits",
    "max_context",
    "max_batch",
    "min_gpus",
)
#: the batches of the frontier, as ``shapecalc fit --frontier`` asks them
FRONTIER_BATCHES = tuple(2**k for k in range(11))


@frozen
class FitSetting(FrozenMethods):
    """The accelerator and how the model runs on it, as ``shapecalc fit``'s options say
    (the dtype, batch and context come from the sweep's own settings and points)."""

    hardware: Accelerator
    gpus: int = 1
    engine: Engine | None = None
    #: bytes known to be taken on each GPU (--reserve-gb)
    reserve: int = 0
    compute: str | None = None
    efficiency: tuple[float, float] = (1.0, 1.0)
    #: a config's max_position_embeddings, where the model's arguments hold none
    max_context: int | None = None
    #: the config field that names it
    context_field: str = "max_position_embeddings"

    def fit(self, model: Model, *, dtype: str, cache: str, batch: int, seq_len: int) -> Fit:
        """The :class:`~shapecalc.analysis.fit.Fit` of ``model`` under this setting."""
        from shapecalc.analysis.fit import Fit

        return Fit(
            model,
            self.hardware,
            dtype=dtype,
            batch=batch,
            seq_len=seq_len,
            gpus=self.gpus,
            engine=self.engine,
            reserve=self.reserve,
            compute=self.compute,
            efficiency=self.efficiency,
            max_context=self.max_context,
            context_field=self.context_field,
            cache=cache,
        )

    def describe(self) -> str:
        """``2 × NVIDIA H100 SXM5 80 GB (80.0 GB each, vllm)``."""
        from shapecalc.core.units import human_bytes

        on = f"{self.gpus} × {self.hardware.title}" if self.gpus > 1 else self.hardware.title
        engine = f", {self.engine.name}" if self.engine is not None else ""
        return f"{on} ({human_bytes(self.hardware.memory)} each{engine})"


@frozen
class Frontier(FrozenMethods):
    """One swept model's fit frontier: its swept sizes (by axis name, the weights format
    among them where it varies) and the largest context at each batch (None: not one
    position fits)."""

    sizes: tuple[tuple[str, Any], ...]
    contexts: tuple[tuple[int, int | None], ...]

    @property
    def label(self) -> str:
        """``hidden=2048, layers=8`` (``the model`` when no size of the model is swept)."""
        return ", ".join(f"{k}={v}" for k, v in self.sizes) or "the model"


@frozen
class SweepFit(FrozenMethods):
    """What a sweep against hardware adds: the setting, the dtype it was asked in, the
    answers' keys (in the order shown) and each swept model's frontier."""

    setting: FitSetting
    dtype: str
    keys: tuple[str, ...]
    frontiers: tuple[Frontier, ...] = ()

    def title(self, key: str) -> str:
        return FIT_COLUMNS[key][0]

    def short(self, key: str) -> str:
        return FIT_COLUMNS[key][2]


def fit_answers(
    fit: Fit, keys: tuple[str, ...], batch: int, seq_len: int
) -> tuple[int | float | bool | None, ...]:
    """The answers ``keys`` of ``fit`` at ``batch`` × ``seq_len`` (on the setting's GPUs)."""
    out: list[int | float | bool | None] = []
    speed = None
    for key in keys:
        if key == "gpu_memory":
            out.append(fit.account(batch, seq_len).total)
        elif key == "fits":
            out.append(fit.fits(batch, seq_len))
        elif key == "max_context":
            out.append(fit.largest_context(batch))
        elif key == "max_batch":
            out.append(fit.most_sequences(seq_len))
        elif key == "min_gpus":
            out.append(fit.fewest_gpus(batch, seq_len)[0])
        else:
            speed = speed or fit.speed(batch, seq_len)
            out.append(speed.decode_tokens_per_s if key == "decode" else speed.prefill_tokens_per_s)
    return tuple(out)
