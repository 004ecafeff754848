"""Hypothesis strategies for the language models' arguments, shared by the test modules
(each layer kind's strategies are in tests/layer_cases.py).

Dependent sizes are drawn together (``proj_size < hidden_size``, a tied embedding as wide
as the head's input) instead of being filtered.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

SMALL = st.integers(min_value=1, max_value=64)
#: sizes for the meta device, where nothing is allocated: large ones cost nothing
ANY = st.one_of(SMALL, st.integers(min_value=1, max_value=10**5))


@st.composite
def lstm_lm_args(
    draw: st.DrawFn, sizes: st.SearchStrategy[int] = ANY, cell: str = "lstm"
) -> dict[str, Any]:
    """Arguments of shapecalc.lstm_lm (or gru_lm, rnn_lm), every option combination."""
    hidden = draw(sizes)
    args: dict[str, Any] = {
        "vocab": draw(sizes),
        "hidden": hidden,
        "layers": draw(st.integers(min_value=1, max_value=7)),  # above 4: a block of layers
        "one_hot": draw(st.booleans()),
        "bias": draw(st.booleans()),
        "bidirectional": draw(st.booleans()),
        "proj_size": draw(st.one_of(st.just(0), st.integers(min_value=0, max_value=hidden - 1))),
        "dropout": draw(st.sampled_from([0.0, 0.2])),
    }
    if cell != "lstm":
        args["proj_size"] = 0
    if cell == "rnn":
        args["nonlinearity"] = draw(st.sampled_from(["tanh", "relu"]))
    if not args["one_hot"]:
        if draw(st.booleans()):
            h_out = args["proj_size"] or hidden
            args["tie_weights"] = True
            embed = (2 if args["bidirectional"] else 1) * h_out
            if embed != hidden or draw(st.booleans()):  # E defaults to H: leave it out
                args["embed_dim"] = embed
        elif draw(st.booleans()):
            args["embed_dim"] = draw(sizes)
    if cell != "lstm":
        del args["proj_size"]
    return args
