"""Library errors: ShapecalcError subclasses carrying layer, field, value and rule."""

from __future__ import annotations

from typing import Any

import pytest

import shapecalc
from shapecalc import LSTM, Embedding, InvalidArgumentError, Linear, ShapecalcError, TieError


def test_root_is_a_value_error() -> None:
    assert issubclass(ShapecalcError, ValueError)
    assert issubclass(InvalidArgumentError, ShapecalcError)
    assert issubclass(TieError, ShapecalcError)


def test_proj_size_message_and_attributes() -> None:
    with pytest.raises(InvalidArgumentError) as info:
        LSTM(input_size=10, hidden_size=512, proj_size=600)
    err = info.value
    assert str(err) == (
        "LSTM(hidden_size=512, proj_size=600): proj_size must be smaller than hidden_size "
        "(600 >= 512)"
    )
    assert (err.layer, err.field, err.value) == (
        "LSTM(hidden_size=512, proj_size=600)",
        "proj_size",
        600,
    )
    assert err.rule == "proj_size must be smaller than hidden_size"


@pytest.mark.parametrize(
    ("make", "field", "message"),
    [
        (
            lambda: LSTM(0, 5),
            "input_size",
            r"LSTM\(input_size=0\): input_size must be an "
            r"integer >= 1, got 0",
        ),
        (lambda: LSTM(5, 5, num_layers=0), "num_layers", "num_layers must be an integer >= 1"),
        (lambda: LSTM(5, 5, dropout=1.5), "dropout", r"dropout must be a number in \[0, 1\]"),
        (lambda: LSTM(5, 5, dropout=True), "dropout", "got True"),
        (lambda: LSTM(5, 5, bias=1), "bias", r"bias must be True or False \(got 1\)"),
        (lambda: LSTM(5, 5, bidirectional="yes"), "bidirectional", "True or False"),
        (lambda: LSTM(5.0, 5), "input_size", r"got 5.0 \(float\)"),
        (lambda: Linear(-1, 3), "in_features", "in_features must be an integer >= 0, got -1"),
        (
            lambda: Embedding(10, 3, padding_idx=10),
            "padding_idx",
            r"padding_idx must be within num_embeddings \(10 is outside \[-10, 10\)\)",
        ),
        (lambda: Embedding(10, 3, padding_idx=1.5), "padding_idx", "integer or None"),
        (lambda: shapecalc.lstm_lm(65, 0), "hidden", "lstm_lm: hidden must be an integer >= 1"),
        (
            lambda: shapecalc.lstm_lm(65, 512, proj_size=512),
            "proj_size",
            "proj_size must be smaller than hidden_size",
        ),
        (
            lambda: shapecalc.lstm_lm(65, 512, layers=2, dropout=1.0),
            "dropout",
            r"in \[0, 1\), got 1.0 \(1 would zero every activation between layers\)",
        ),
        (lambda: shapecalc.lstm_lm(65, 512, one_hot=1), "one_hot", "one_hot must be True or"),
        (
            lambda: shapecalc.lstm_lm(65, 512, embed_dim=300, tie_weights=True),
            "tie_weights",
            r"the head weight \(65, 512\) cannot share the embedding weight \(65, 300\).*"
            r"set embed_dim to 512 \(hidden\) or do not tie",
        ),
    ],
)
def test_messages_name_field_value_and_rule(make: Any, field: str, message: str) -> None:
    with pytest.raises(ShapecalcError, match=message) as info:
        make()
    assert info.value.field == field
    assert "\n" not in str(info.value)


def test_symbolic_rules_are_kept_and_checked_when_evaluated() -> None:
    model = shapecalc.lstm_lm(vocab="V", hidden="H", proj_size="P")
    assert any("P < H" in note for note in model.notes)
    with pytest.raises(InvalidArgumentError, match="proj_size must be smaller than hidden_size"):
        model.evaluate(V=65, H=128, P=128)
    assert model.evaluate(V=65, H=128, P=64).total == shapecalc.lstm_lm(65, 128, proj_size=64).total


def test_dropout_with_one_layer_is_a_note_not_an_error() -> None:
    model = shapecalc.lstm_lm(65, 512, layers=1, dropout=0.5)
    assert any("dropout acts between LSTM layers only" in note for note in model.notes)


def test_divisibility_rules_of_symbolic_sizes_are_reported_then_checked() -> None:
    attention = shapecalc.layer_model(shapecalc.LAYER_KINDS["MultiheadAttention"]("E", 8))
    assert attention.notes == (
        "embed_dim must be divisible by num_heads: E % 8 = 0; checked when evaluated",
    )
    with pytest.raises(InvalidArgumentError, match=r"100 % 8 = 4"):
        attention.evaluate(E=100)
    assert attention.evaluate(E=512).total == 4 * 512 * 512 + 4 * 512
    encoder = shapecalc.layer_model(shapecalc.LAYER_KINDS["TransformerEncoderLayer"]("D", 12))
    assert "d_model must be divisible by nhead: D % 12 = 0" in encoder.notes[0]
    groups = shapecalc.layer_model(shapecalc.LAYER_KINDS["GroupNorm"](32, "C"))
    assert "num_channels must be divisible by num_groups: C % 32 = 0" in groups.notes[0]
    with pytest.raises(InvalidArgumentError, match="num_channels must be divisible"):
        groups.evaluate(C=100)
