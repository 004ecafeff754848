"""What the LSTM, GRU and RNN language models share: their arguments and their tree.

The model of the question shapecalc started from, "a 2-layer LSTM with 512 hidden nodes"
trained on characters (Karpathy's char-rnn): a token embedding (V -> E), an L-layer
recurrent network of hidden size H, and a head back to V scores. ``lstm.py``, ``gru.py``
and ``rnn.py`` declare one command each with these fields.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar

from shapecalc.core.declare import Architecture, Built, flag, number, size
from shapecalc.core.dims import Dim, dim_str, shape_str
from shapecalc.core.errors import InvalidArgumentError, ShapecalcError, TieError
from shapecalc.core.tree import Block, Leaf

# from the modules of these kinds alone (not their families): an LSTM model loads no GRU
from shapecalc.layers._embedding import Embedding
from shapecalc.layers._linear import Linear
from shapecalc.layers._lstm import RecurrentSpec

__all__ = ["RecurrentLanguageModel"]

#: recurrent constructor argument -> the language model argument it comes from
_ARGUMENT = {
    "hidden_size": "hidden",
    "num_layers": "layers",
    "proj_size": "proj_size",
    "dropout": "dropout",
    "nonlinearity": "nonlinearity",
}


# -- the fields every recurrent language model has (each file lists them in its order) ----
def vocab() -> Any:
    return size("V", "Vocabulary size: characters or tokens in and out.")


def hidden() -> Any:
    return size("H", "Hidden size: the length of h_t (the 'hidden nodes').")


def layers(cell: str) -> Any:
    return size("L", f"Number of stacked {cell} layers.", 1, symbolic=False)


def embed_dim() -> Any:
    return size("E", "Embedding size.", None, unset=None, default_text="H")


def one_hot(cell: str) -> Any:
    return flag(f"No embedding: the {cell} reads one-hot vectors of size V (char-rnn).")


def bias(cell: str) -> Any:
    return flag(f"Biases in the {cell} and in the head (--no-bias: none).", True)


def bidirectional(cell: str) -> Any:
    return flag(f"A backward {cell} beside the forward one.")


def tie_weights() -> Any:
    return flag("The head shares the embedding matrix (needs E == the head's input size).")


def dropout(cell: str) -> Any:
    return number(
        f"Dropout between {cell} layers; it adds no parameters.", 0.0, low=0, high=1, open_high=True
    )


def batch_first() -> Any:
    return flag("Inputs (B, T) as with batch_first=True, or (T, B).", True)


class RecurrentLanguageModel(Architecture):
    """Embedding (V -> E), an L-layer recurrent network (H), a head (-> V)."""

    #: the recurrent layer kind
    cell: ClassVar[type[RecurrentSpec]]
    size_order: ClassVar[tuple[str, ...]] = ("vocab", "embed_dim", "hidden", "proj_size", "layers")

    vocab: Dim
    hidden: Dim
    layers: Dim
    embed_dim: Dim | None
    one_hot: bool
    bias: bool
    bidirectional: bool
    tie_weights: bool
    dropout: float
    batch_first: bool

    @property
    def kind(self) -> str:
        return self.cell.kind

    def explain_number(self, name: str, value: Any) -> str:
        return " (1 would zero every activation between layers)" if value == 1 else ""

    def check(self) -> None:
        if self.one_hot and self.embed_dim is not None:
            raise InvalidArgumentError(
                "embed_dim cannot be set with one_hot: a one-hot input has no embedding layer "
                "(its size is the vocabulary)",
                layer=self.owner(),
                field="embed_dim",
                value=self.embed_dim,
                rule="embed_dim needs an embedding layer",
            )

    @classmethod
    def consistent(cls, arguments: dict[str, Any]) -> dict[str, Any]:
        """No embedding size with a one-hot input (nor a tie); a tied embedding as wide as
        the head's input."""
        out = dict(arguments)
        if out["one_hot"]:
            out["embed_dim"], out["tie_weights"] = None, False
        elif out["tie_weights"]:
            h_out = out.get("proj_size") or out["hidden"]
            width = (2 if out["bidirectional"] else 1) * h_out
            out["embed_dim"] = None if width == out["hidden"] else width
        return out

    def _cell_arguments(self) -> dict[str, Any]:
        """The recurrent layer's own arguments beyond the shared ones (proj_size,
        nonlinearity), by the layer's names."""
        shared = {"vocab", "hidden", "layers", "embed_dim", "one_hot", "bias", "bidirectional"}
        shared |= {"tie_weights", "dropout", "batch_first"}
        return {k: v for k, v in self.arguments().items() if k not in shared}

    def template(self) -> RecurrentLanguageModel:
        out = super().template()
        if self.tie_weights:
            # tying forces E == D·H_out; the formula says so instead of keeping a separate E
            spec = out._recurrent()
            h_out = spec.num_directions * spec.output_hidden
            out = dataclasses.replace(out, embed_dim=h_out)  # type: ignore[type-var]
        return out

    def _recurrent(self) -> RecurrentSpec:
        embed = self.hidden if self.embed_dim is None else self.embed_dim
        make: Callable[..., RecurrentSpec] = self.cell
        try:
            return make(
                input_size=self.vocab if self.one_hot else embed,
                hidden_size=self.hidden,
                num_layers=self.layers,
                bias=self.bias,
                batch_first=self.batch_first,
                dropout=self.dropout,
                bidirectional=self.bidirectional,
                **self._cell_arguments(),
            )
        except ShapecalcError as err:
            raise err.renamed(_ARGUMENT) from None

    def build(self) -> Built:
        kind, vocab, hidden, n = self.kind, self.vocab, self.hidden, self.layers
        embed = hidden if self.embed_dim is None else self.embed_dim
        rnn = self._recurrent()
        head_in = rnn.num_directions * rnn.output_hidden
        parts: list[tuple[str, Leaf]] = []
        if not self.one_hot:
            what = f"token embedding: each of {dim_str(vocab)} tokens -> a {dim_str(embed)}-vector"
            parts.append(("embedding", Leaf(Embedding(vocab, embed), what)))
        what = (
            f"{dim_str(n)}-layer {kind}, hidden size {dim_str(hidden)}"
            + (", bidirectional" if self.bidirectional else "")
            + (f", projected to {dim_str(rnn.output_hidden)}" if rnn.projects else "")
        )
        parts.append((kind.lower(), Leaf(rnn, what)))
        what = f"output head: h_t ({dim_str(head_in)}) -> {dim_str(vocab)} scores"
        parts.append(("head", Leaf(Linear(head_in, vocab, bias=self.bias), what)))
        ties: dict[str, str] = {}
        notes: list[str] = []
        if self.tie_weights:
            self._check_tie(embed, head_in, rnn.projects)
            ties["head.weight"] = "embedding.weight"
            if embed != head_in:
                notes.append(
                    f"tie_weights holds only where {dim_str(embed)} = {dim_str(head_in)} "
                    "(embed_dim equals the head's input size); checked when evaluated"
                )
        notes += rnn.deferred_rules()
        if self.dropout > 0 and n == 1:
            notes.append(
                f"dropout acts between {kind} layers only: with 1 layer it does nothing "
                "(PyTorch warns about this)"
            )
        tokens = ("B", "T") if self.batch_first else ("T", "B")
        return Built(
            Block("Module", tuple(parts)),
            ties=ties,
            notes=tuple(notes),
            input_layout=((*tokens, "V"),) if self.one_hot else (tokens,),
            name=f"{kind} language model",
            head="head",
        )

    def _check_tie(self, embed: Dim, head_in: Dim, projects: bool) -> None:
        if self.one_hot:
            raise TieError(
                "tie_weights needs an embedding to share, and one_hot has none",
                layer=self.owner(),
                field="tie_weights",
                value=True,
                rule="tie_weights needs an embedding layer",
            )
        if embed != head_in and isinstance(embed, int) and isinstance(head_in, int):
            source = "2 directions × " if self.bidirectional else ""
            source += "proj_size" if projects else "hidden"
            vocab = self.vocab
            raise TieError(
                f"tie_weights: the head weight {shape_str((vocab, head_in))} cannot share the "
                f"embedding weight {shape_str((vocab, embed))}: their shapes differ",
                layer=self.owner(),
                field="tie_weights",
                value=True,
                rule="tying needs embed_dim == the head's input size",
                fix=f"set embed_dim to {dim_str(head_in)} ({source}) or do not tie",
            )
