"""The memory account at inference beside the training one: its lines and total, their
formulas (the largest of several formulas where one is at least every other whatever the
sizes, checked against the numbers at drawn sizes), the dtype a config says, the two
tables' titles, JSON, and the sweep's inference column."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shapecalc.analysis.cost import analyze
from shapecalc.architectures.gpt2 import gpt2
from shapecalc.architectures.llama import llama
from shapecalc.architectures.mlp import mlp
from shapecalc.core.dims import at_least, known, symbol
from tests.test_cli import run

B, T, H = symbol("B"), symbol("T"), symbol("H")

monomials = st.sampled_from([1, B, T, H, B * T, B * T * T, B * H, T * H, H * H])
polynomials = st.lists(st.tuples(st.integers(-5, 9), monomials), min_size=1, max_size=4).map(
    lambda terms: sum((c * m for c, m in terms), start=0)
)


@settings(max_examples=200, deadline=None)
@given(polynomials, polynomials, st.integers(1, 50), st.integers(1, 50), st.integers(1, 50))
def test_at_least_holds_wherever_it_says_so(a, b, bv, tv, hv) -> None:  # type: ignore[no-untyped-def]
    """``at_least(a, b)`` is never wrong: where it says a ≥ b, a ≥ b at any sizes ≥ 1."""
    if at_least(a, b):
        values = {"B": bv, "T": tv, "H": hv}
        va = a.subs(values) if hasattr(a, "subs") else a
        vb = b.subs(values) if hasattr(b, "subs") else b
        assert va >= vb, (a, b, values)


def test_at_least_tells_the_cases_it_should() -> None:
    assert at_least(B * T * 32000 + B * 32, B * 32032)  # B·T covers B
    assert not at_least(B * T * 10, B * 32000)  # only from T = 3,200
    assert at_least(3 * B * T, 3 * B * T)
    assert not at_least(T, T + 1)


def _lines(cost):  # type: ignore[no-untyped-def]
    return {(m.label, m.account): m.bytes for m in cost.memory}


@settings(max_examples=25, deadline=None)
@given(
    st.integers(1, 4),
    st.sampled_from([32, 64]),
    st.integers(1, 3),
    st.integers(1, 4),
    st.integers(1, 64),
    st.sampled_from(["none", "adam"]),
)
def test_inference_account_formulas_agree_with_numbers(
    layers: int, hidden: int, batch: int, heads_log: int, seq: int, training: str
) -> None:
    """Every inference line given as a formula in B and T equals the line counted with
    B and T numbers; the total is the weights, the state and the larger activation."""
    heads = 2 ** (heads_log - 1)
    model = llama(vocab=100, hidden=hidden, layers=layers, heads=heads, intermediate=2 * hidden)
    symbolic = analyze(model, batch="B", seq_len="T", training=training)
    numbers = analyze(model, batch=batch, seq_len=seq, training=training)
    got = _lines(numbers)
    for (label, account), value in _lines(symbolic).items():
        if account == "training":
            continue
        at = value.subs({"B": batch, "T": seq}) if hasattr(value, "subs") else value
        assert at == got[label, account], label
    acts = [got["activations, prefill", "inference"], got["activations, decode step", "inference"]]
    held = got["weights", "both"] + got["inference state", "inference"]
    assert got["inference total", "inference"] == held + max(acts)
    assert numbers.inference_bytes == held + max(acts)


def test_training_shows_both_accounts_and_inference_alone_without_an_optimizer() -> None:
    args = ["gpt2", "--layers", "2", "--hidden", "64", "--heads", "2", "--vocab", "100"]
    args += ["--context", "32", "--memory", "--batch", "2", "--seq-len", "16"]
    both = run(args, 100)
    assert both.exit_code == 0, both.output
    assert "Memory in training (adam, fp32)" in both.stdout
    assert "Memory at inference (fp32, B=2, T=16)" in both.stdout
    alone = run([*args, "--training", "none"], 100)
    assert "Memory in training" not in alone.stdout
    assert "inference total" in alone.stdout
    cost = analyze(gpt2(layers=2, hidden=64, heads=2, vocab=100, context=32), batch=2, seq_len=16)
    inference = [m for m in cost.memory if m.inference]
    assert [m.label for m in inference] == [
        "weights",
        "inference state",
        "activations, prefill",
        "activations, decode step",
        "inference total",
    ]
    # the training total leaves out the inference lines
    training = sum(m.bytes for m in cost.memory if m.training and "recomputed" not in m.label)
    assert cost.training_bytes == training


def test_mixed_precision_prices_weights_once_per_account() -> None:
    model = gpt2(layers=1, hidden=64, heads=2, vocab=100, context=32)
    cost = analyze(model, batch=1, seq_len=8, dtype="bf16", mixed_precision=True)
    weights = [m for m in cost.memory if m.label == "weights"]
    assert [m.account for m in weights] == ["training", "inference"]
    assert all(m.bytes == 2 * model.total for m in weights)
    assert cost.inference_bytes is not None
    assert cost.inference_bytes > 2 * model.total


def test_a_model_without_a_sequence_has_one_forward() -> None:
    model = mlp(inputs=784, hidden=512, layers=2, outputs=10)
    cost = analyze(model, batch="B", training="none")
    labels = [m.label for m in cost.memory]
    assert labels == ["weights", "activations, forward", "inference total"]
    total = cost.inference_bytes
    assert total is not None and known(total) is None  # a formula in B
    assert total.subs({"B": 7}) == analyze(model, batch=7, training="none").inference_bytes


def test_no_formula_when_none_is_the_largest() -> None:
    """A head over many tokens against a block at T: which is larger depends on T."""
    model = llama(vocab=32000, hidden=64, layers=1, heads=2, intermediate=128)
    cost = analyze(model, batch="B", seq_len="T", training="none")
    assert cost.inference_bytes is None
    assert not any(m.label == "inference total" for m in cost.memory)
    args = ["llama", "--vocab", "32000", "--hidden", "64", "--layers", "1", "--heads", "2"]
    result = run([*args, "--intermediate", "128", "--memory", "--training", "none"], 100)
    assert "no one formula is the largest" in result.stdout


def _config(tmp_path: Path, **extra: object) -> str:
    config = {
        "model_type": "llama",
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "vocab_size": 100,
        **extra,
    }
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return str(path)


@pytest.mark.parametrize(
    ("extra", "dtype"),
    [
        ({"torch_dtype": "bfloat16"}, "bf16"),
        ({"dtype": "float16"}, "fp16"),
        ({"torch_dtype": "float32"}, "fp32"),
        # "auto" is no config value: transformers 5's from_config fails on it
        # (getattr(torch, "auto")); it is refused, tests/test_trialfix.py
        ({}, "fp32"),
    ],
)
def test_hf_prices_the_dtype_its_config_says(
    tmp_path: Path, extra: dict[str, str], dtype: str
) -> None:
    path = _config(tmp_path, **extra)
    result = run(["hf", path, "--memory", "--format", "json", "--batch", "1", "--seq-len", "4"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["cost"]["dtype"] == dtype
    override = run(["hf", path, "--memory", "--format", "json", "--dtype", "fp32"])
    assert json.loads(override.stdout)["cost"]["dtype"] == "fp32"


def test_json_carries_each_lines_account(tmp_path: Path) -> None:
    path = _config(tmp_path, torch_dtype="bfloat16")
    result = run(["hf", path, "--memory", "--format", "json", "--batch", "2", "--seq-len", "8"])
    cost = json.loads(result.stdout)["cost"]
    accounts = {m["label"]: m["account"] for m in cost["memory"]}
    assert accounts["weights"] == "both"
    assert accounts["gradients"] == "training"
    assert accounts["inference total"] == "inference"
    total = next(m["bytes"] for m in cost["memory"] if m["label"] == "inference total")
    assert cost["inference_bytes"] == total


def test_sweep_has_an_inference_column(tmp_path: Path) -> None:
    path = _config(tmp_path, torch_dtype="bfloat16")
    args = ["sweep", "hf", path, "--seq-len", "16,32", "--show", "weights,inference"]
    result = run([*args, "--format", "json"], 120)
    assert result.exit_code == 0, result.output
    table = json.loads(result.stdout)
    model = llama(vocab=100, hidden=64, layers=2, heads=4, intermediate=128)
    for seq in (16, 32):
        cost = analyze(model, batch=1, seq_len=seq, dtype="bf16", training="none")
        assert cost.inference_bytes in [
            p["values"]["inference"] for p in table["points"] if p["sizes"]["seq_len"] == seq
        ]
