"""Totals derived by hand (the arithmetic is written out) or published, one row each."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import shapecalc
from shapecalc import LSTM, Embedding, Linear


def lstm_layer(d_in: int, h: int, *, bias: bool = True, proj: int = 0) -> int:
    """One LSTM layer, one direction, written out from the cell equations."""
    h_out = proj or h
    return 4 * h * d_in + 4 * h * h_out + (2 * 4 * h if bias else 0) + proj * h


HEADLINE = 65 * 512 + lstm_layer(512, 512) + lstm_layer(512, 512) + (512 * 65 + 65)

KNOWN: list[tuple[str, Callable[[], Any], int]] = [
    # the question's model: 2-layer LSTM, 512 hidden, 65 characters (tinyshakespeare)
    ("headline lstm_lm(65, 512, 2)", lambda: shapecalc.lstm_lm(65, 512, 2).total, 4_269_121),
    ("headline, term by term", lambda: HEADLINE, 4_269_121),
    ("Embedding(20, 300)", lambda: Embedding(20, 300).total(), 6_000),
    ("LSTM(300, 512, num_layers=2)", lambda: LSTM(300, 512, num_layers=2).total(), 3_768_320),
    ("Linear(512, 20)", lambda: Linear(512, 20).total(), 10_260),
    (
        "Embedding(20, 300) + LSTM(300, 512, 2) + Linear(512, 20)",
        lambda: shapecalc.lstm_lm(vocab=20, hidden=512, layers=2, embed_dim=300).total,
        6_000 + 3_768_320 + 10_260,
    ),
    # char-rnn as first written: one-hot input of size V, no embedding
    (
        "one-hot char-rnn lstm_lm(65, 512, 2, one_hot)",
        lambda: shapecalc.lstm_lm(65, 512, 2, one_hot=True).total,
        lstm_layer(65, 512) + lstm_layer(512, 512) + 512 * 65 + 65,
    ),
    (
        "one-hot char-rnn, number",
        lambda: shapecalc.lstm_lm(65, 512, 2, one_hot=True).total,
        3_320_385,
    ),
    ("LSTM(10, 20, bidirectional)", lambda: LSTM(10, 20, bidirectional=True).total(), 5_120),
    ("LSTM(10, 20, proj_size=5)", lambda: LSTM(10, 20, proj_size=5).total(), 1_460),
    (
        "LSTM(10, 20, 2, bidirectional, proj_size=5)",
        lambda: LSTM(10, 20, num_layers=2, bidirectional=True, proj_size=5).total(),
        2 * lstm_layer(10, 20, proj=5) + 2 * lstm_layer(2 * 5, 20, proj=5),
    ),
    ("LSTM(10, 20, bias=False)", lambda: LSTM(10, 20, bias=False).total(), 4 * 20 * 30),
    (
        "headline without biases",
        lambda: shapecalc.lstm_lm(65, 512, 2, bias=False).total,
        4_269_121 - 2 * 2 * 2048 - 65,
    ),
    (
        "headline with tied weights: the head matrix is the embedding",
        lambda: shapecalc.lstm_lm(65, 512, 2, tie_weights=True).total,
        4_269_121 - 65 * 512,
    ),
    # pytorch/examples word_language_model defaults on wikitext-2 (33,278 tokens)
    (
        "word_language_model LSTM 200/200/2",
        lambda: shapecalc.lstm_lm(33_278, 200, 2).total,
        33_278 * 200 + 2 * lstm_layer(200, 200) + 200 * 33_278 + 33_278,
    ),
    ("word_language_model, number", lambda: shapecalc.lstm_lm(33_278, 200, 2).total, 13_987_678),
]


@pytest.mark.parametrize(("what", "compute", "expected"), KNOWN, ids=[k[0] for k in KNOWN])
def test_known_total(what: str, compute: Callable[[], Any], expected: int) -> None:
    assert compute() == expected


def test_headline_rows_and_subtotals() -> None:
    model = shapecalc.lstm_lm(vocab=65, hidden=512, layers=2)
    rows = model.rows()
    assert [(r.name, r.shape, r.count) for r in rows] == [
        ("embedding.weight", (65, 512), 33_280),
        ("lstm.weight_ih_l0", (2048, 512), 1_048_576),
        ("lstm.weight_hh_l0", (2048, 512), 1_048_576),
        ("lstm.bias_ih_l0", (2048,), 2_048),
        ("lstm.bias_hh_l0", (2048,), 2_048),
        ("lstm.weight_ih_l1", (2048, 512), 1_048_576),
        ("lstm.weight_hh_l1", (2048, 512), 1_048_576),
        ("lstm.bias_ih_l1", (2048,), 2_048),
        ("lstm.bias_hh_l1", (2048,), 2_048),
        ("head.weight", (65, 512), 33_280),
        ("head.bias", (65,), 65),
    ]
    assert [model.layer_total(n) for n in ("embedding", "lstm", "head")] == [
        33_280,
        4_202_496,
        33_345,
    ]
    assert sum(r.counted for r in rows) == model.total == model.trainable == 4_269_121
    assert model.bytes("fp32") == 17_076_484
    assert model.bytes("bf16") == 8_538_242


def test_tied_row_is_shown_but_counted_once() -> None:
    model = shapecalc.lstm_lm(vocab=65, hidden=512, layers=2, tie_weights=True)
    head = [r for r in model.rows() if r.name == "head.weight"]
    assert head and head[0].tied_to == "embedding.weight"
    assert head[0].count == 33_280 and head[0].counted == 0
    assert "head.weight" not in dict(model.named_parameters())
    assert sum(r.counted for r in model.rows()) == model.total


def test_huge_sizes_stay_exact() -> None:
    h, v = 10**15, 10**15 + 7
    model = shapecalc.lstm_lm(vocab=v, hidden=h, layers=3)
    expected = v * h + lstm_layer(h, h) * 3 + h * v + v
    assert model.total == expected
    assert isinstance(model.total, int)
    assert LSTM(h, h).total() == 4 * (h * h + h * h + 2 * h)
