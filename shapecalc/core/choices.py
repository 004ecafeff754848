"""The words some options take, defined where every floor can read them without loading
the analyses: the optimizers whose memory is counted, the frameworks whose naming
shapecalc speaks and the layouts of a mixture of experts."""

from __future__ import annotations

__all__ = ["CACHE_CONVENTIONS", "CONVENTIONS", "EXPERT_LAYOUTS", "OPTIMIZER_STATES", "PORTABLE"]

#: optimizers whose training memory shapecalc counts: state tensors per trainable
#: parameter ("none" is inference; ``shapecalc.analysis.cost.OPTIMIZERS`` gives the rules)
OPTIMIZER_STATES: dict[str, int] = {
    "none": 0,
    "sgd": 0,
    "adam": 2,
    "adamw": 2,
    "adamw-8bit": 2,
    "paged-adamw-8bit": 2,
}
#: the frameworks whose tensor naming shapecalc speaks (``shapecalc.analysis.conventions``)
CONVENTIONS = ("pytorch", "keras", "onnx")
#: the architectures whose tensors have a Keras and an ONNX convention, checked against
#: Keras 3 and both ONNX exporters (``port`` and ``compare-conventions`` cover these)
PORTABLE = ("gru", "lstm", "mlp", "rnn")
#: how a mixture of experts stores its experts: as ``transformers`` 5 holds them in memory
#: (each expert's gate and up projections fused, all experts in one tensor), or as
#: checkpoint files store them (one module per expert, w1 = gate, w2 = down, w3 = up)
EXPERT_LAYOUTS = ("fused", "checkpoint")
#: how a latent-attention cache is counted: the compressed latent and the rotated key, as
#: transformers 5 and the serving engines (vLLM, SGLang) keep it, or every head's keys and
#: values made from it, as transformers 4 kept them
CACHE_CONVENTIONS = ("latent", "heads")
#: the serving engines whose own memory accounting ``fit --engine`` reproduces
#: (``shapecalc.analysis.engines``)
ENGINES = ("vllm", "llama.cpp", "transformers")
