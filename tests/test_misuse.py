"""Every public function and class of the library, given what it does not take: it raises
ShapecalcError (a ValueError naming the field and the rule) or a TypeError naming what it
expects; never an AttributeError, KeyError or OverflowError from deep inside, never a
hang. Values are taken from a family of wrong kinds: None, bools, negative and huge
integers, nan and inf, strings, containers, objects."""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable
from typing import Any

import pytest

import shapecalc as sc

BAD: list[Any] = [
    None,
    True,
    -1,
    0,
    10**30,
    2**63,
    10**5000,
    float("nan"),
    float("inf"),
    "x",
    "",
    "x" * 100_000,
    [],
    {},
    object(),
    b"x",
    (1, 2),
]
#: array-likes where a number goes (compared as numbers, they fail inside their library):
#: given to every field of every layer kind and architecture, and to analyze
ARRAYS: list[Any] = []
try:
    import numpy as np

    ARRAYS += [np.int64(3), np.float64(0.5), np.array([4, 4]), np.array(2), (np.int64(2), 1)]
except ImportError:  # pragma: no cover - numpy comes with torch
    pass
try:
    import torch as _torch

    ARRAYS += [_torch.tensor([4, 4]), _torch.tensor(0.5)]
except ImportError:  # pragma: no cover
    pass


def label(value: Any) -> str:
    """A bad value, shown short (an integer of thousands of digits by its length)."""
    if isinstance(value, int) and value.bit_length() > 200:
        return f"<an integer of {value.bit_length()} bits>"
    return repr(value)[:30]


def outcome(function: Callable[..., Any], *args: Any, **kwargs: Any) -> str | None:
    """None when the call returns or refuses as it should; else what went wrong."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            function(*args, **kwargs)
        except sc.ShapecalcError as err:
            text = str(err)
            if "\n" in text or len(text) > 600:
                return f"a message of {len(text)} characters over {text.count(chr(10)) + 1} lines"
            return None
        except TypeError as err:
            return None if str(err) else "a TypeError without a message"
        except Exception as err:
            return f"{type(err).__name__}: {str(err)[:120]}"
    return None


def public() -> list[tuple[str, Any]]:
    names = sorted({*sc.__all__, *sc.LAYER_KINDS} - {"__version__"})
    return [(name, getattr(sc, name)) for name in names if callable(getattr(sc, name))]


@pytest.mark.parametrize(("name", "function"), public())
def test_first_argument_of_every_public_callable(name: str, function: Any) -> None:
    failures = [(label(bad), why) for bad in BAD if (why := outcome(function, bad))]
    assert not failures, (name, failures[:3])


@pytest.mark.parametrize("kind", sorted(sc.LAYER_KINDS))
def test_every_field_of_every_layer_kind(kind: str) -> None:
    cls = sc.LAYER_KINDS[kind]
    example = dict(cls.example)
    fields = [f.name for f in dataclasses.fields(cls)]  # every argument, not the example's
    failures = [
        (field, label(bad), why)
        for field in fields
        for bad in [*BAD, *ARRAYS]
        if (why := outcome(cls, **{**example, field: bad}))
    ]
    assert not failures, failures[:3]


@pytest.mark.parametrize("function", ["lstm_lm", "gru_lm", "rnn_lm", "gpt2", "llama", "bert"])
def test_every_field_of_every_architecture(function: str) -> None:
    make = getattr(sc, function)
    fields = [f.name for f in dataclasses.fields(make.architecture)]
    base = {"vocab": 10, "hidden": 8, "layers": 1, "heads": 2}
    base = {k: v for k, v in base.items() if k in fields}
    failures = [
        (field, label(bad), why)
        for field in fields
        for bad in [*BAD, *ARRAYS]
        if (why := outcome(make, **{**base, field: bad}))
    ]
    assert not failures, failures[:3]


def _nested(torch: Any, depth: int) -> Any:
    """A Linear inside ``depth`` Sequentials, one in the other."""
    module = torch.nn.Linear(2, 2)
    for _ in range(depth):
        outer = torch.nn.Sequential()
        outer.add_module("a", module)
        module = outer
    return module


def _holding(torch: Any, value: Any) -> Any:
    """A Linear whose ``_parameters`` holds ``value`` as its weight (a tensor is fine)."""
    module = torch.nn.Linear(2, 2)
    module._parameters["weight"] = value
    return module


def calls() -> dict[str, Callable[[Any], Any]]:
    torch = pytest.importorskip("torch")
    model = sc.lstm_lm(10, 8, 1)
    lin = sc.Linear(2, 2)
    return {
        "compare(model, x)": lambda b: sc.compare(model, b),
        "assert_matches(model, x)": lambda b: sc.assert_matches(model, b),
        "solve(lstm_lm, x)": lambda b: sc.solve(sc.lstm_lm, b, vocab=10),
        "solve(free=x)": lambda b: sc.solve(sc.lstm_lm, "1M", free=b, vocab=10),
        "solve(multiple_of=x)": lambda b: sc.solve(sc.lstm_lm, "1M", multiple_of=b, vocab=10),
        "solve(convention=x)": lambda b: sc.solve(sc.lstm_lm, "1M", convention=b, vocab=10),
        "solve(vocab=x)": lambda b: sc.solve(sc.lstm_lm, "1M", vocab=b),
        "solve(x, 1M)": lambda b: sc.solve(lambda **k: b, "1M"),
        "analyze(model, x)": lambda b: sc.analyze(model, b),
        "analyze(batch=x)": lambda b: sc.analyze(model, batch=b),
        "analyze(seq_len=x)": lambda b: sc.analyze(model, seq_len=b),
        "analyze(dtype=x)": lambda b: sc.analyze(model, dtype=b),
        "analyze(training=x)": lambda b: sc.analyze(model, training=b),
        "analyze(mixed_precision=x)": lambda b: sc.analyze(model, mixed_precision=b),
        "build(model, device=x)": lambda b: sc.build(model, device=b),
        "Model(name, x)": lambda b: sc.Model("m", b),
        "Model(x, lin)": lambda b: sc.Model(b, lin),
        "Model(ties=x)": lambda b: sc.Model("m", lin, ties=b),
        "Model(sizes=x)": lambda b: sc.Model("m", lin, sizes=b),
        "Model(group_depth=x)": lambda b: sc.Model("m", lin, group_depth=b),
        "Block(kind, x)": lambda b: sc.Block("k", b),
        "Block(x, children)": lambda b: sc.Block(b, {"a": lin}),
        "Block(flow=x)": lambda b: sc.Block("k", {"a": lin}, flow=b),
        "Repeat(lin, x)": lambda b: sc.Repeat(lin, b),
        "ModuleList(lin, x)": lambda b: sc.ModuleList(lin, b),
        "model.evaluate(H=x)": lambda b: sc.lstm_lm("V", "H", 1).evaluate(H=b),
        "model.bytes(x)": lambda b: model.bytes(b),
        "model.subtotal(x)": lambda b: model.subtotal(b),
        "model.layer(x)": lambda b: model.layer(b),
        "symbol * x": lambda b: sc.symbol("H") * b,
        "symbol ** x": lambda b: sc.symbol("H") ** b,
        "expr.subs(H=x)": lambda b: (sc.symbol("H") + 1).subs({"H": b}),
        "from_module(module, name=x)": lambda b: sc.from_module(torch.nn.Linear(2, 2), name=b),
        "from_hf_config(config, class_name=x)": lambda b: sc.from_hf_config(
            {"model_type": "gpt2"}, class_name=b
        ),
        "from_hf_config(config, allow=x)": lambda b: sc.from_hf_config(
            {"model_type": "gpt2"}, allow=b
        ),
        "parse_budget(1M, field=x)": lambda b: sc.parse_budget("1M", field=b),
        "from_module(nested 2,000 deep)": lambda b: sc.from_module(_nested(torch, 2000)),
        "compare(model, nested 2,000 deep)": lambda b: sc.compare(model, _nested(torch, 2000)),
        "assert_matches(model, nested)": lambda b: sc.assert_matches(model, _nested(torch, 2000)),
        "from_module(_parameters holds x)": lambda b: sc.from_module(_holding(torch, b)),
        "compare(model, _parameters holds x)": lambda b: sc.compare(model, _holding(torch, b)),
        "named_parameters of a huge stack": lambda b: sc.layer_model(
            sc.LSTM(3, 4, num_layers=2**63 - 1)
        ).named_parameters(),
    }


@pytest.mark.parametrize("name", sorted(calls()))
def test_every_other_argument(name: str) -> None:
    call = calls()[name]
    values = [*BAD, *ARRAYS] if name.startswith(("analyze", "model.bytes")) else BAD
    failures = [(label(bad), why) for bad in values if (why := outcome(call, bad))]
    assert not failures, failures[:3]
