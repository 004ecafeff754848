"""Solving for a parameter budget: brackets, budgets, errors, and the command."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

import shapecalc
from shapecalc import InvalidArgumentError, parse_budget, solve
from tests.test_cli import run

FREE = ["hidden", "layers", "vocab", "embed_dim"]


@st.composite
def solve_cases(draw: st.DrawFn) -> tuple[str, int, int, dict[str, Any]]:
    free = draw(st.sampled_from(FREE))
    # the check builds the two models layer by layer: keep a free layer count in thousands
    by_layers = free == "layers"
    fixed: dict[str, Any] = {
        "vocab": draw(st.integers(1, 300)),
        "hidden": draw(st.integers(16 if by_layers else 1, 300)),
        "layers": draw(st.integers(1, 6)),
        "bias": draw(st.booleans()),
        "bidirectional": draw(st.booleans()),
    }
    if free == "embed_dim" or draw(st.booleans()):
        fixed["embed_dim"] = draw(st.integers(1, 300))
    elif draw(st.booleans()):
        fixed["one_hot"] = True
    if free != "hidden" and draw(st.booleans()):
        fixed["proj_size"] = draw(st.integers(0, fixed["hidden"] - 1))
    fixed.pop(free, None)
    step = draw(st.sampled_from([1, 1, 8, 64]))
    digits = draw(st.sampled_from(range(3, 8 if by_layers else 14)))  # spread over magnitudes
    return free, step, draw(st.integers(10 ** (digits - 1), 10**digits)), fixed


def total(free: str, size: int, fixed: dict[str, Any]) -> int:
    value = shapecalc.lstm_lm(**fixed, **{free: size}).total
    assert isinstance(value, int)
    return value


@given(case=solve_cases())
def test_solution_brackets_the_target(case: tuple[str, int, int, dict[str, Any]]) -> None:
    free, step, target, fixed = case
    try:
        solution = solve(shapecalc.lstm_lm, target, free, multiple_of=step, **fixed)
    except InvalidArgumentError as err:
        # only refused when even the smallest size is over budget
        assert err.field == "target", err
        assert total(free, step, fixed) > target
        event("budget below the smallest model")
        return
    event(f"solved for {free}")
    below, above = solution.below, solution.above
    assert below.size % step == 0 and above.size == below.size + step
    # the counts are those of models built independently, and they bracket the target
    assert below.total == total(free, below.size, fixed) <= target
    assert target < above.total == total(free, above.size, fixed)
    assert below.distance == below.total - target and above.distance > 0


def test_solve_with_proj_size_starts_above_it() -> None:
    solution = solve(shapecalc.lstm_lm, 10_000, "hidden", layers=1, vocab=3, proj_size=20)
    assert solution.below.size >= 21 and solution.below.total <= 10_000
    with pytest.raises(InvalidArgumentError, match="the smallest model, hidden=21"):
        solve(shapecalc.lstm_lm, 10, "hidden", layers=1, vocab=3, proj_size=20)


def test_headline_budget() -> None:
    solution = solve(shapecalc.lstm_lm, "4,269,121", "hidden", layers=2, vocab=65)
    assert solution.below.size == 512 and solution.below.distance == 0
    assert solution.above.size == 513
    assert str(solution.formula) == "16·H² + 146·H + 65"
    assert solution.closest is solution.below


def test_too_small_budget_says_the_smallest_count() -> None:
    smallest = shapecalc.lstm_lm(vocab=65, hidden=1, layers=2).total
    with pytest.raises(InvalidArgumentError) as info:
        solve(shapecalc.lstm_lm, 100, "hidden", layers=2, vocab=65)
    assert f"the smallest model, hidden=1, has {smallest:,}" in str(info.value)


def test_free_size_must_not_be_fixed() -> None:
    with pytest.raises(InvalidArgumentError, match="hidden is the size being solved for"):
        solve(shapecalc.lstm_lm, "1M", "hidden", hidden=5, vocab=3)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("10M", 10_000_000),
        ("10m", 10_000_000),
        ("3.5e6", 3_500_000),
        ("1.2B", 1_200_000_000),
        ("1.2G", 1_200_000_000),
        ("350k", 350_000),
        ("350K", 350_000),
        ("4,269,121", 4_269_121),
        ("4269121", 4_269_121),
        ("1.5T", 1_500_000_000_000),
        (" 7 ", 7),
        ("2.5 M", 2_500_000),
        ("1e24", 10**24),
        (12345, 12345),
    ],
)
def test_budget_accepted(text: Any, value: int) -> None:
    assert parse_budget(text) == value


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("10X", "'10X' is not a parameter budget; write it as 10M, 3.5e6, 1.2B, 350k"),
        ("", "'' is not a parameter budget"),
        ("-5M", "'-5M' is not a parameter budget"),
        ("ten", "'ten' is not a parameter budget"),
        ("1,00,000", "'1,00,000' is not a parameter budget"),
        ("4,269121", "not a parameter budget"),
        ("1.2345k", r"'1.2345k' is 1234.5 parameters, not a whole number"),
        ("0.5", "0.5 parameters, not a whole number"),
        ("0", "a budget must be between 1 and 10\\*\\*24 parameters, got 0"),
        ("2e24", "between 1 and 10\\*\\*24"),
        ("nan", "not a parameter budget"),
        ("inf", "not a parameter budget"),
        ("10MM", "not a parameter budget"),
        (True, "is not a parameter budget"),
    ],
)
def test_budget_refused(text: Any, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        parse_budget(text)


def test_solve_command_table_and_json() -> None:
    result = run(["solve", "lstm", "--params", "10M", "--layers", "2", "--vocab", "65"])
    assert result.exit_code == 0, result.output
    assert "hidden for a budget of 10,000,000 parameters (V=65, L=2)" in result.stdout
    assert "786" in result.stdout and "9,999,557" in result.stdout
    assert "787" in result.stdout and "10,024,871" in result.stdout
    assert "16·H² + 146·H + 65" in result.stdout
    result = run(
        [
            "solve",
            "lstm",
            "--params",
            "10M",
            "--layers",
            "2",
            "--vocab",
            "65",
            "--multiple-of",
            "64",
            "--format",
            "json",
        ]
    )
    report = json.loads(result.stdout)
    assert report["below"] == {"size": 768, "total": 9_549_377, "distance": -450_623}
    assert report["above"] == {"size": 832, "total": 11_197_121, "distance": 1_197_121}
    assert report["fixed"]["vocab"] == 65 and report["formula"] == "16*H**2 + 146*H + 65"


def test_solve_command_for_other_sizes() -> None:
    for free, flags in [
        ("layers", ["--hidden", "512", "--vocab", "65"]),
        ("vocab", ["--hidden", "512", "--layers", "2"]),
        ("embed-dim", ["--hidden", "512", "--layers", "2", "--vocab", "65"]),
    ]:
        result = run(
            ["solve", "lstm", "--params", "50M", "--for", free, *flags, "--format", "json"]
        )
        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout)
        assert report["below"]["total"] <= 50_000_000 < report["above"]["total"]


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--params", "10X", "--vocab", "65"], ["'--params'", "'10X' is not a parameter budget"]),
        (["--params", "100", "--vocab", "65"], ["'--params'", "the smallest model, hidden=1"]),
        (
            ["--params", "1M", "--vocab", "65", "--hidden", "5"],
            ["'--hidden'", "this is the size --for hidden solves; leave it out"],
        ),
        (["--params", "1M"], ["Missing option '--vocab'"]),
        (["--params", "1M", "--for", "vocab"], ["Missing option '--hidden'"]),
        (
            ["--params", "1M", "--vocab", "65", "--multiple-of", "0"],
            ["'--multiple-of'", "multiple_of must be an integer >= 1, got 0"],
        ),
        (["--params", "1M", "--vocab", "65", "--layers", "0"], ["'--layers'"]),
        (["--params", "1M", "--vocab", "65", "--for", "width"], ["'--for'"]),
        (["--vocab", "65"], ["Missing option '--params'"]),
    ],
)
def test_solve_bad_input(args: list[str], fragments: list[str]) -> None:
    result = run(["solve", "lstm", *args])
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ")
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
