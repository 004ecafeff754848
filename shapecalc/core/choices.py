"""The words some options take, defined where every floor can read them without loading
the analyses: the optimizers whose memory is counted and the frameworks whose naming
shapecalc speaks."""

from __future__ import annotations

__all__ = ["CONVENTIONS", "OPTIMIZER_STATES"]

#: optimizers whose training memory shapecalc counts: state tensors per trainable
#: parameter ("none" is inference; ``shapecalc.analysis.cost.OPTIMIZERS`` gives the rules)
OPTIMIZER_STATES: dict[str, int] = {"none": 0, "sgd": 0, "adam": 2, "adamw": 2}
#: the frameworks whose tensor naming shapecalc speaks (``shapecalc.analysis.conventions``)
CONVENTIONS = ("pytorch", "keras", "onnx")
