"""The account of one GPU's memory that :mod:`shapecalc.analysis.fit` and the engines of
:mod:`shapecalc.analysis.engines` write: its lines, their total, the verdict."""

from __future__ import annotations

from typing import Any

from shapecalc.core.errors import InvalidArgumentError
from shapecalc.core.frozen import FrozenMethods, frozen

__all__ = ["Account", "Line", "fit_error"]


def fit_error(field_name: str, value: Any, message: str, rule: str) -> InvalidArgumentError:
    """An error naming the flag (``field_name``) the value came from."""
    return InvalidArgumentError(message, layer="fit", field=field_name, value=value, rule=rule)


@frozen
class Line(FrozenMethods):
    """One line of the account: what, its bytes (per GPU), and the rule."""

    label: str
    bytes: int
    rule: str
    #: held alongside the others (False: the larger of the activation lines is held once,
    #: the other is shown only)
    counted: bool = True
    #: in host memory, not on the GPU (llama.cpp's output buffer): shown, not held there
    host: bool = False


@frozen
class Account(FrozenMethods):
    """The memory of one GPU at ``batch`` sequences of ``seq_len`` positions on ``gpus``
    GPUs: its lines, their total, and the memory there is."""

    batch: int
    seq_len: int
    gpus: int
    lines: tuple[Line, ...]
    memory: int
    #: an engine's verdict where it has its own rule (vLLM: blocks for the batch), else None
    engine_fits: bool | None = None

    @property
    def total(self) -> int:
        return sum(line.bytes for line in self.lines if line.counted and not line.host)

    @property
    def free(self) -> int:
        return self.memory - self.total

    @property
    def fits(self) -> bool:
        if self.engine_fits is not None:
            return self.engine_fits and self.total <= self.memory
        return self.total <= self.memory

    def line(self, label: str) -> Line | None:
        return next((line for line in self.lines if line.label == label), None)
