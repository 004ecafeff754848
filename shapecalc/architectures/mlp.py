"""``shapecalc mlp``: a multilayer perceptron, the plainest answer to "what are the nodes?".

This file is the worked example of docs/howto/add-an-architecture.md: one frozen dataclass
whose fields are the arguments, and the function that builds the tree.
"""

from __future__ import annotations

from typing import Any, ClassVar

from shapecalc.core.declare import Architecture, Built, choice, flag, number, size
from shapecalc.core.dims import dim_str
from shapecalc.core.errors import InvalidArgumentError
from shapecalc.core.frozen import frozen
from shapecalc.core.tree import Leaf, Sequential
from shapecalc.layers.activation import GELU, ReLU, Sigmoid, SiLU, Tanh
from shapecalc.layers.linear import Dropout, Linear

__all__ = ["MLP", "mlp"]

#: the activation choices, as torch.nn layers
ACTIVATIONS = {"relu": ReLU, "gelu": GELU, "tanh": Tanh, "sigmoid": Sigmoid, "silu": SiLU}


#: the most hidden layers an MLP lists (each is a numbered module of its own)
MAX_LAYERS = 1024


@frozen(kw_only=True)
class MLP(Architecture):
    """A multilayer perceptron: L hidden layers of H units between I inputs and O outputs.

    The H "hidden nodes" of a layer are the outputs of its weight matrix: hidden layer 1
    maps I inputs to H units (an H × I matrix and H biases), each later hidden layer H to
    H, and the output layer H to O. Written as torch users write it, an ``nn.Sequential``
    of Linear, activation (and dropout) layers, so the tensors are ``0.weight``,
    ``0.bias``, ``2.weight``, ...

        >>> m = mlp(inputs=784, hidden=512, layers=2, outputs=10)
        >>> m.total
        669706
        >>> print(m.total_formula)
        H² + H·I + H·O + 2·H + O
    """

    command: ClassVar[str] = "mlp"
    function: ClassVar[str] = "mlp"
    title: ClassVar[str] = "MLP"
    example: ClassVar[str] = "--inputs 784 --hidden 512 --layers 2 --outputs 10"
    sequence: ClassVar[bool] = False

    inputs: Any = size("I", "Input features: the length of each input vector (784: 28 × 28).")
    hidden: Any = size("H", "Hidden size: the units ('nodes') of each hidden layer.")
    layers: Any = size("L", "Hidden layers.", 1, names=False)
    outputs: Any = size("O", "Outputs: the classes or targets.")
    activation: str = choice(tuple(ACTIVATIONS), "The activation after each hidden layer.", "relu")
    bias: bool = flag("Biases in every layer (--no-bias: none).", True)
    dropout: float = number(
        "Dropout after each activation; it adds no parameters.", 0.0, low=0, high=1, open_high=True
    )

    def check(self) -> None:
        if isinstance(self.layers, int) and self.layers > MAX_LAYERS:
            rule = f"an MLP lists each layer by name: at most {MAX_LAYERS:,} hidden layers"
            raise InvalidArgumentError(
                f"{rule} (got {self.layers:,})",
                layer=self.owner(),
                field="layers",
                value=self.layers,
                rule=rule,
            )

    def build(self) -> Built:
        hidden, steps = self.hidden, []
        width = self.inputs
        for i in range(self.layers):
            what = f"hidden layer {i + 1}: {dim_str(width)} -> {dim_str(hidden)} units"
            steps += [
                Leaf(Linear(width, hidden, bias=self.bias), what),
                ACTIVATIONS[self.activation](),
            ]
            if self.dropout:
                steps.append(Dropout(self.dropout))
            width = hidden
        what = f"output layer: {dim_str(width)} -> {dim_str(self.outputs)}"
        steps.append(Leaf(Linear(width, self.outputs, bias=self.bias), what))
        return Built(Sequential(*steps), input_layout=(("B", "I"),))


mlp = MLP.function_for()
