"""shapecalc: which matrices a network has, their exact PyTorch shapes, counts and formulas.

    >>> import shapecalc
    >>> shapecalc.lstm_lm(vocab=65, hidden=512, layers=2).total
    4269121

Importing shapecalc imports neither torch, rich, click nor sympy (an optional extra,
``pip install 'shapecalc[sympy]'``, for ``Expr.to_sympy()`` and ``shapecalc.symbols``),
and the names below are loaded on first use, so a command pays only for the parts it
runs. Every torch.nn layer kind shapecalc knows is here by its torch name
(``shapecalc.Conv2d``), and every architecture's library function by its name
(``shapecalc.lstm_lm``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: public name -> the module that defines it
_WHERE = {
    "gru_lm": "architectures.gru",
    "layer_model": "core.model",
    "lstm_lm": "architectures.lstm",
    "rnn_lm": "architectures.rnn",
    "Cost": "analysis.cost",
    "analyze": "analysis.cost",
    "Dim": "core.dims",
    "Expr": "core.dims",
    "symbol": "core.dims",
    "symbols": "core.dims",
    "InvalidArgumentError": "core.errors",
    "MissingDependencyError": "core.errors",
    "ShapeError": "core.errors",
    "ShapecalcError": "core.errors",
    "TieError": "core.errors",
    "DTYPE_BYTES": "core.units",
    "Layer": "core.model",
    "Model": "core.model",
    "Row": "core.model",
    "Candidate": "analysis.sizing",
    "Solution": "analysis.sizing",
    "parse_budget": "analysis.sizing",
    "solve": "analysis.sizing",
    "port": "analysis.port",
    "sweep": "analysis.sweep",
    "PortMap": "analysis.port",
    # the report every command prints, as one library call
    "Report": "report",
    "build_report": "report.pipeline",
    "LAYER_KINDS": "layers",
    "build": "adapters.torch_bridge",
    "from_module": "adapters.torch_bridge",
    "compare": "adapters.torch_bridge",
    "assert_matches": "adapters.torch_bridge",
    "MismatchError": "adapters.torch_bridge",
    "read_checkpoint": "adapters.checkpoint",
    "from_hf_config": "adapters.hf_config",
    "LayerSpec": "core.spec",
    "Param": "core.spec",
    # composing models: the tree, its data flow, and declared architectures
    "Block": "core.tree",
    "Leaf": "core.tree",
    "ModuleList": "core.tree",
    "Repeat": "core.tree",
    "Sequential": "core.tree",
    "chain": "core.flow",
    "each": "core.flow",
    "multiply": "core.flow",
    "parallel": "core.flow",
    "Positions": "core.flow",
    "residual": "core.flow",
    "summed": "core.flow",
    "Architecture": "core.declare",
    "Built": "core.declare",
    "choice": "core.declare",
    "flag": "core.declare",
    "number": "core.declare",
    "size": "core.declare",
    # steps of a transformer's forward, and the layers transformers has and torch.nn lacks
    "ScaledDotProductAttention": "layers.functional",
    "Rotary": "layers.functional",
    "SplitHeads": "layers.functional",
    "Chunk": "layers.functional",
    "Pick": "layers.functional",
    "Select": "layers.functional",
    "Conv1D": "layers.transformers",
    "Experts": "layers.transformers",
    "TopkRouter": "layers.transformers",
    "Bias": "layers.transformers",
    # a module's own tensors, tensor functions, and torchvision's layers torch.nn lacks
    "Parameter": "core.own",
    "Buffer": "core.own",
    "Cat": "layers.tensors",
    "Expand": "layers.tensors",
    "Permute": "layers.tensors",
    "Reshape": "layers.tensors",
    "Transpose": "layers.tensors",
    "LayerNorm2d": "layers.vision",
    "StochasticDepth": "layers.vision",
    "ShiftedWindowAttention": "layers.vision",
    "ShiftedWindowAttentionV2": "layers.vision",
    "PatchMerging": "layers.vision",
    "PatchMergingV2": "layers.vision",
    "QuickGELU": "layers.vision",
    "Tile": "layers.tensors",
    "Split": "layers.tensors",
    "Unflatten": "layers.tensors",
    "Mean": "layers.tensors",
    "MatMul": "layers.tensors",
    "Contiguous": "layers.tensors",
    "register_module": "adapters.torch_bridge",
    "register_own_step": "adapters.torch_bridge",
    # the transformer architectures' library functions
    "gpt2": "architectures.gpt2",
    "llama": "architectures.llama",
    "gpt_neox": "architectures.gpt_neox",
    "bert": "architectures.bert",
    # torchvision's classification models by name
    "torchvision": "architectures.vision",
}

__all__ = [
    "DTYPE_BYTES",
    "LAYER_KINDS",
    "LSTM",
    "Architecture",
    "Bias",
    "Block",
    "Buffer",
    "Built",
    "Candidate",
    "Cat",
    "Chunk",
    "Contiguous",
    "Conv1D",
    "Cost",
    "Dim",
    "Embedding",
    "Expand",
    "Experts",
    "Expr",
    "InvalidArgumentError",
    "Layer",
    "LayerNorm2d",
    "LayerSpec",
    "Leaf",
    "Linear",
    "MatMul",
    "Mean",
    "MismatchError",
    "MissingDependencyError",
    "Model",
    "ModuleList",
    "Param",
    "Parameter",
    "PatchMerging",
    "PatchMergingV2",
    "Permute",
    "Pick",
    "PortMap",
    "Positions",
    "QuickGELU",
    "Repeat",
    "Report",
    "Reshape",
    "Rotary",
    "Row",
    "ScaledDotProductAttention",
    "Select",
    "Sequential",
    "ShapeError",
    "ShapecalcError",
    "ShiftedWindowAttention",
    "ShiftedWindowAttentionV2",
    "Solution",
    "Split",
    "SplitHeads",
    "StochasticDepth",
    "TieError",
    "Tile",
    "TopkRouter",
    "Transpose",
    "Unflatten",
    "__version__",
    "analyze",
    "assert_matches",
    "bert",
    "build",
    "build_report",
    "chain",
    "choice",
    "cohere",
    "compare",
    "deepseek",
    "each",
    "falcon",
    "flag",
    "from_hf_config",
    "from_module",
    "glm4_moe",
    "gpt2",
    "gpt_neox",
    "gpt_oss",
    "granite",
    "gru_lm",
    "layer_model",
    "llama",
    "lstm_lm",
    "multiply",
    "number",
    "olmo2",
    "parallel",
    "parse_budget",
    "phi",
    "port",
    "qwen_moe",
    "read_checkpoint",
    "register_module",
    "register_own_step",
    "residual",
    "rnn_lm",
    "size",
    "solve",
    "starcoder2",
    "summed",
    "sweep",
    "symbol",
    "symbols",
    "torchvision",
]

#: ``from shapecalc import *`` takes every layer kind too, by its torch name: ``__all__``
#: is made when asked (by ``__getattr__`` below), so that importing shapecalc loads no
#: layer family; the list above is what it adds them to
_PUBLIC = __all__
del __all__


#: the subpackages, loaded on first use too: ``import shapecalc`` then ``shapecalc.report``
_SUBPACKAGES = ("adapters", "analysis", "architectures", "cli", "core", "layers", "report")


def __getattr__(name: str) -> Any:
    if name == "__all__":  # every public name and every layer kind by its torch name
        layers = importlib.import_module("shapecalc.layers")
        return sorted({*_PUBLIC, *layers.LAYER_KINDS})
    if name in _SUBPACKAGES:
        return importlib.import_module(f"shapecalc.{name}")
    if name in _WHERE:
        value = getattr(importlib.import_module(f"shapecalc.{_WHERE[name]}"), name)
        globals()[name] = value
        return value
    if name.startswith("_"):
        raise AttributeError(f"module 'shapecalc' has no attribute {name!r}")
    if not name[:1].isupper():  # an architecture's library function: shapecalc.lstm_lm
        found = importlib.import_module("shapecalc.architectures").function(name)
        if found is None:
            raise AttributeError(f"module 'shapecalc' has no attribute {name!r}")
        return found
    layers = importlib.import_module("shapecalc.layers")
    if name in layers.LAYER_KINDS:  # layer kinds: shapecalc.LSTM, shapecalc.Conv2d, ...
        return layers.LAYER_KINDS[name]
    raise AttributeError(f"module 'shapecalc' has no attribute {name!r}")


def __dir__() -> list[str]:
    layers = importlib.import_module("shapecalc.layers")
    made = importlib.import_module("shapecalc.architectures").functions()
    return sorted({*_PUBLIC, *layers.LAYER_KINDS, *made})


if TYPE_CHECKING:  # the static view of the lazy names above
    from shapecalc.adapters.checkpoint import read_checkpoint
    from shapecalc.adapters.hf_config import from_hf_config
    from shapecalc.adapters.torch_bridge import (
        MismatchError,
        assert_matches,
        build,
        compare,
        from_module,
        register_module,
        register_own_step,
    )
    from shapecalc.analysis.cost import Cost, analyze
    from shapecalc.analysis.sizing import Candidate, Solution, parse_budget, solve
    from shapecalc.architectures.bert import bert
    from shapecalc.architectures.cohere import cohere
    from shapecalc.architectures.deepseek import deepseek
    from shapecalc.architectures.falcon import falcon
    from shapecalc.architectures.glm4_moe import glm4_moe
    from shapecalc.architectures.gpt2 import gpt2
    from shapecalc.architectures.gpt_neox import gpt_neox
    from shapecalc.architectures.gpt_oss import gpt_oss
    from shapecalc.architectures.granite import granite
    from shapecalc.architectures.gru import gru_lm
    from shapecalc.architectures.llama import llama
    from shapecalc.architectures.lstm import lstm_lm
    from shapecalc.architectures.olmo2 import olmo2
    from shapecalc.architectures.phi import phi
    from shapecalc.architectures.qwen_moe import qwen_moe
    from shapecalc.architectures.rnn import rnn_lm
    from shapecalc.architectures.starcoder2 import starcoder2
    from shapecalc.architectures.vision import torchvision
    from shapecalc.core.declare import Architecture, Built, choice, flag, number, size
    from shapecalc.core.dims import Dim, Expr, symbol, symbols
    from shapecalc.core.errors import (
        InvalidArgumentError,
        MissingDependencyError,
        ShapecalcError,
        ShapeError,
        TieError,
    )
    from shapecalc.core.flow import (
        Positions,
        chain,
        each,
        multiply,
        parallel,
        residual,
        summed,
    )
    from shapecalc.core.model import Layer, Model, Row, layer_model
    from shapecalc.core.own import Buffer, Parameter
    from shapecalc.core.spec import LayerSpec, Param
    from shapecalc.core.tree import Block, Leaf, ModuleList, Repeat, Sequential
    from shapecalc.core.units import DTYPE_BYTES
    from shapecalc.layers import LAYER_KINDS
    from shapecalc.layers.embedding import Embedding
    from shapecalc.layers.functional import (
        Chunk,
        Pick,
        Rotary,
        ScaledDotProductAttention,
        Select,
        SplitHeads,
    )
    from shapecalc.layers.linear import Linear
    from shapecalc.layers.recurrent import LSTM
    from shapecalc.layers.tensors import (
        Cat,
        Contiguous,
        Expand,
        MatMul,
        Mean,
        Permute,
        Reshape,
        Split,
        Tile,
        Transpose,
        Unflatten,
    )
    from shapecalc.layers.transformers import Bias, Conv1D, Experts, TopkRouter
    from shapecalc.layers.vision import (
        LayerNorm2d,
        PatchMerging,
        PatchMergingV2,
        QuickGELU,
        ShiftedWindowAttention,
        ShiftedWindowAttentionV2,
        StochasticDepth,
    )
    from shapecalc.report import Report
    from shapecalc.report.pipeline import build_report
