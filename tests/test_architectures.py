"""Every architecture, from its one file: the command, solve, the docs page, the library
function, the JSON, and every name, shape and total against its hand-written torch twin
for configurations drawn from the declaration.

Adding an architecture = one file in shapecalc/architectures/ + one row in
ARCHITECTURE_COUNTS (tests/test_known_counts.py) + one twin in TWINS (tests/twins.py);
this module fails until all three are there.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import shapecalc
from shapecalc.adapters.strategies import configs
from shapecalc.architectures import commands, get
from shapecalc.core.declare import Architecture, arguments_of
from shapecalc.core.errors import InvalidArgumentError
from tests.test_cli import run
from tests.test_known_counts import ARCHITECTURE_COUNTS
from tests.twins import TWINS

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = commands()


def test_the_shipped_architectures_are_found() -> None:
    assert {"lstm", "gru", "rnn"} <= set(COMMANDS)
    with pytest.raises(InvalidArgumentError, match="no architecture 'lsmt'"):
        get("lsmt")


@pytest.mark.parametrize("command", COMMANDS)
def test_architecture_is_complete(command: str) -> None:
    cls = get(command)
    assert issubclass(cls, Architecture) and dataclasses.is_dataclass(cls)
    module = command.replace("-", "_")
    assert cls.owner().startswith(module), "the library function starts with the module's name"
    assert getattr(shapecalc, cls.owner()) is not None
    assert cls.example, f"{command}: give an example (docs, tests and --help run it)"
    assert ARCHITECTURE_COUNTS.get(command), f"{command}: add a row to ARCHITECTURE_COUNTS"
    assert command in TWINS, f"{command}: add its torch twin to tests/twins.py"
    page = ROOT / "docs" / "architectures" / f"{command}.md"
    assert page.exists(), f"{command}: run python scripts/gen_docs.py"
    for f, argument in arguments_of(cls):
        assert argument.help, f"{command}.{f.name}: give it a help text"
        if argument.kind == "size":
            assert argument.letter, f"{command}.{f.name}: give the size its letter"


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("fmt", ["table", "tree", "json", "markdown", "latex"])
def test_example_runs_in_every_format(command: str, fmt: str) -> None:
    cls = get(command)
    result = run([command, *cls.example.split(), "--format", fmt, "--all", "--explain"], 120)
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    if fmt == "json":
        report = json.loads(result.stdout)
        assert report["model"]["kind"] == cls.owner()
        assert set(report["model"]["arguments"]) == {f.name for f, _ in arguments_of(cls)}
        assert "cost" in report and report["explanation"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_field_is_an_option_and_solvable_sizes_are_for(command: str) -> None:
    cls = get(command)
    help_text = run([command, "--help"], 200).stdout
    for f, _ in arguments_of(cls):
        assert "--" + f.name.replace("_", "-") in help_text
    solve_help = run(["solve", command, "--help"], 200).stdout
    for f, argument in arguments_of(cls):
        if argument.kind == "size" and argument.solvable:
            assert f.name.replace("_", "-") in solve_help.split("--for [")[1].split("]")[0]


@pytest.mark.parametrize("command", COMMANDS)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_drawn_configurations_equal_the_torch_twin(command: str, data: st.DataObject) -> None:
    cls = get(command)
    config = data.draw(configs(cls), label="config")
    model = config.model()
    twin = TWINS[command](config)
    assert model.named_parameters() == [(n, tuple(p.shape)) for n, p in twin.named_parameters()]
    assert model.total == sum(p.numel() for p in twin.parameters())
    assert model.trainable == sum(p.numel() for p in twin.parameters() if p.requires_grad)
    # the template agrees with the numbers: every formula evaluates to its count
    sizes = {k: v for k, v in model.sizes.items() if isinstance(v, int)}
    for row in model.rows():
        formula = row.formula
        assert (formula if isinstance(formula, int) else formula.subs(sizes)) == row.count


@pytest.mark.parametrize("command", COMMANDS)
def test_symbols_then_numbers(command: str) -> None:
    cls = get(command)
    # the required sizes, and those needed with others (qwen-moe's k with experts)
    towers = ("hidden", "layers", "heads", "vision_hidden", "vision_layers", "vision_heads")
    needed = {
        "qwen-moe": ("experts_per_token",),
        "qwen3-next": ("experts_per_token",),
        "clip": towers,
        "siglip": towers,
    }.get(command, ())
    sizes = {
        f.name: argument.letter
        for f, argument in arguments_of(cls)
        if argument.kind == "size" and (f.default is dataclasses.MISSING or f.name in needed)
    }
    symbolic = cls(**sizes).model()
    assert symbolic.symbolic
    numbers = ARCHITECTURE_COUNTS[command][0][0]  # a valid configuration: heads divide hidden
    values = {letter: numbers[name] for name, letter in sizes.items()}
    expected = cls(**{name: numbers[name] for name in sizes}).model().total
    assert symbolic.evaluate(**values).total == expected


def test_explain_of_an_architecture_without_a_special_explainer_has_the_legend() -> None:
    from dataclasses import dataclass

    from shapecalc.analysis.explain import explain
    from shapecalc.core.declare import Built, size
    from shapecalc.core.tree import Sequential

    @dataclass(frozen=True)
    class Probe(Architecture):
        """A linear probe."""

        command = "probe"
        features: Any = size("F", "Input features.")
        classes: Any = size("C", "Classes.", 2)

        def build(self) -> Built:
            return Built(Sequential(shapecalc.Linear(self.features, self.classes)))

    sections = explain(Probe(768).model())
    assert sections[0].title == "The sizes"
    assert sections[0].lines == (
        "F = 768 (--features): Input features.",
        "C = 2 (--classes): Classes.",
    )
    assert sections[-1].title == "Where the total comes from"


@pytest.mark.parametrize("command", COMMANDS)
def test_every_size_as_a_name_is_an_answer_or_one_line(command: str) -> None:
    cls = get(command)
    args = [command]
    for f, argument in arguments_of(cls):
        if argument.kind == "size":
            args += ["--" + f.name.replace("_", "-"), argument.letter]
    result = run(args, 120)
    assert result.exit_code in (0, 2), result.output
    assert "Traceback" not in result.output
    if result.exit_code == 2:
        assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("Error: ")


def test_a_careless_architecture_still_answers_in_one_line() -> None:
    """A newcomer's file whose builder needs numbers (a loop over a layer count, a kernel
    size passed to a convolution) and says nothing about it: names are refused as the
    argument's error, and the formulas fall back to the counts."""
    from dataclasses import dataclass

    from shapecalc.core.declare import Built, size
    from shapecalc.core.tree import Sequential

    @dataclass(frozen=True)
    class Careless(Architecture):
        """Convolutions."""

        command = "careless"
        channels: Any = size("C", "Channels.")
        layers: Any = size("L", "Layers.", 2)
        kernel: Any = size("K", "Kernel size.", 3)

        def build(self) -> Built:
            convs = [
                shapecalc.Conv1d(self.channels, self.channels, self.kernel)
                for _ in range(self.layers)
            ]
            return Built(Sequential(*convs))

    numbers = Careless(8, 2, 3).model()
    assert numbers.total == 2 * (8 * 8 * 3 + 8)
    assert numbers.total_formula == numbers.total  # the letters cannot build: no formulas
    with pytest.raises(InvalidArgumentError, match="layers cannot be a size name"):
        Careless(8, "L", 3).model()
    # a convolution takes its kernel as a letter (the layer reference's general formula)
    assert str(Careless(8, 2, "K").model().total) == "128·K + 16"


@pytest.mark.parametrize("command", COMMANDS)
def test_solve_help_example_runs(command: str) -> None:
    """The example solve's --help gives meets its budget with the example's other sizes."""
    help_text = run(["solve", command, "--help"], 200).stdout
    example = help_text.split("Example:")[1].strip().splitlines()[0].split()
    assert example[:3] == ["shapecalc", "solve", command]
    result = run(example[1:], 120)
    assert result.exit_code == 0, result.output
