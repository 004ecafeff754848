"""Sweeps: every point is the single model at those sizes; the charts draw the table's
numbers; bad lists and ranges get one line."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shapecalc.adapters.strategies import configs
from shapecalc.analysis.cost import analyze
from shapecalc.analysis.sweep import COLUMNS, parse_values, sweep
from shapecalc.architectures import commands, get
from shapecalc.core.declare import arguments_of
from shapecalc.core.errors import InvalidArgumentError, ShapecalcError
from shapecalc.report.plot import sweep_charts
from tests.test_cli import run

ALL = tuple(COLUMNS)


def single(
    cls: Any, arguments: dict[str, Any], batch: int, seq_len: int, per_token: bool = True
) -> dict[str, int]:
    """What the model command says at one point: total, memory lines, and the FLOPs per
    token or per forward, as the sweep's column says."""
    model = cls(**arguments).model()
    cost = analyze(model, batch=batch, seq_len=seq_len)
    lines = {line.label: line.bytes for line in cost.memory}
    per = cost.per_token(cost.forward_flops)
    if per_token:
        assert per is not None  # a column per token divides at every point
    return {
        "params": model.total,
        "active": model.active,
        "weights": lines["weights"],
        "training": cost.training_bytes,
        "flops": per if per_token else cost.forward_flops,
        "activations": cost.activation_bytes,
        "state": lines.get("inference state", 0),
        "inference": cost.inference_bytes,
    }


@st.composite
def sweeps(draw: st.DrawFn) -> tuple[Any, dict[str, Any], dict[str, tuple[int, ...]]]:
    cls = get(draw(st.sampled_from(commands())))
    config = draw(configs(cls, st.integers(1, 24)))
    arguments = config.arguments()
    sizes = [f.name for f, a in arguments_of(cls) if a.kind == "size" and arguments[f.name]]
    chosen = draw(st.lists(st.sampled_from(sizes), min_size=1, max_size=2, unique=True))
    varying: dict[str, tuple[int, ...]] = {}
    for name in chosen:
        value = arguments.pop(name)
        step = cls.multiple_for(name, {**arguments, name: value})
        more = draw(st.integers(1, 3))
        varying[name] = (value, value + more * step)
    if cls.sequence and draw(st.booleans()):
        varying["seq_len"] = (1, draw(st.integers(2, 9)))
    fixed = {k: v for k, v in arguments.items() if v is not None}
    return cls, fixed, varying


@settings(deadline=None, max_examples=60)
@given(case=sweeps(), batch=st.integers(1, 3))
def test_every_point_is_the_single_model(
    case: tuple[Any, dict[str, Any], dict[str, tuple[int, ...]]], batch: int
) -> None:
    cls, fixed, varying = case
    try:
        table = sweep(cls, fixed, varying, show=ALL, batch=batch, seq_len=4)
    except ShapecalcError:
        # a point breaks the architecture's rules: the single model says so too
        names = list(varying)
        bad = False
        for values in _grid(varying):
            point = dict(zip(names, values, strict=True))
            arguments = {**fixed, **{k: v for k, v in point.items() if k != "seq_len"}}
            try:
                cls(**arguments).model()
                analyze(cls(**arguments).model(), batch=batch, seq_len=point.get("seq_len", 4))
            except ShapecalcError:
                bad = True
        assert bad
        return
    names = [a.name for a in table.axes]
    assert len(table.points) == len(_grid(varying))
    for point in table.points:
        at = dict(zip(names, point.sizes, strict=True))
        seq_len = at.pop("seq_len", 4)
        per_token = table.columns[ALL.index("flops")].title == "FLOPs per token"
        expected = single(cls, {**fixed, **at}, batch, seq_len, per_token)
        assert dict(zip(ALL, point.values, strict=True)) == expected, at


def _grid(varying: dict[str, tuple[int, ...]]) -> list[tuple[int, ...]]:
    import itertools

    return list(itertools.product(*(dict.fromkeys(v) for v in varying.values())))


def test_the_seed_models_sweep_and_its_formulas() -> None:
    table = sweep(get("lstm"), {"vocab": 65}, {"hidden": "128,256,512,1024", "layers": "1..4"})
    assert len(table.points) == 16
    assert table.column("params")[table.points.index(_at(table, 512, 2))] == 4_269_121
    assert str(table.columns[0].formula) == "8·L·H² + 8·L·H + 130·H + 65"


def _at(table: Any, *sizes: int) -> Any:
    return next(p for p in table.points if p.sizes == sizes)


def test_the_cli_matches_the_model_command() -> None:
    swept = run(["sweep", "gpt2", "--vocab", "50257", "--heads", "12", "--layers", "2",
                 "--hidden", "384,768", "--seq-len", "128", "--batch", "2",
                 "--show", ",".join(ALL), "--format", "json"])  # fmt: skip
    assert swept.exit_code == 0, swept.output
    data = json.loads(swept.stdout)
    for point in data["points"]:
        hidden = point["sizes"]["hidden"]
        one = run(["gpt2", "--vocab", "50257", "--heads", "12", "--layers", "2",
                   "--hidden", str(hidden), "--all", "--seq-len", "128", "--batch", "2",
                   "--format", "json"])  # fmt: skip
        report = json.loads(one.stdout)
        lines = {m["label"]: m["bytes"] for m in report["cost"]["memory"]}
        assert point["values"] == {
            "params": report["total"],
            "active": report["active"],
            "weights": lines["weights"],
            "training": report["cost"]["training_bytes"],
            "flops": report["cost"]["forward_flops_per_token"],
            "activations": report["cost"]["activation_bytes"],
            "state": lines["inference state"],
            "inference": report["cost"]["inference_bytes"],
        }


@pytest.mark.parametrize("fmt", ["table", "markdown", "csv", "json"])
def test_formats(fmt: str) -> None:
    args = ["sweep", "lstm", "--hidden", "128,256", "--layers", "1..2", "--vocab", "65"]
    result = run([*args, "--format", fmt], 120)
    assert result.exit_code == 0, result.output
    if fmt == "csv":
        rows = list(csv.reader(io.StringIO(result.stdout)))
        assert rows[0] == ["hidden", "layers", "params", "weights", "training", "flops"]
        assert len(rows) == 5 and all(cell.isdigit() for cell in rows[1])
    elif fmt == "json":
        data = json.loads(result.stdout)
        assert data["columns"][0]["formula"] == "8*L*H**2 + 8*L*H + 130*H + 65"
    else:
        assert "8·L·H² + 8·L·H + 130·H + 65" in result.stdout


def test_sweep_schema() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(
        (Path(__file__).parent.parent / "docs" / "schema" / "sweep.schema.json").read_text()
    )
    for args in (
        ["lstm", "--hidden", "128,256", "--layers", "1..2", "--vocab", "65"],
        [
            "llama",
            "--vocab",
            "100",
            "--heads",
            "4",
            "--hidden",
            "64",
            "--layers",
            "2",
            "--seq-len",
            "8,16",
        ],
        ["mlp", "--inputs", "8", "--outputs", "2", "--hidden", "4,8", "--layers", "1..3"],
    ):
        result = run(["sweep", *args, "--format", "json"])
        assert result.exit_code == 0, result.output
        jsonschema.Draft202012Validator(schema).validate(json.loads(result.stdout))


# -- the pictures: the data handed to the drawing ------------------------------------------
def test_charts_are_the_tables_numbers() -> None:
    table = sweep(get("lstm"), {"vocab": 65}, {"hidden": "128,256,512", "layers": "1..3"},
                  budget=1_000_000)  # fmt: skip
    charts = sweep_charts(table)
    assert [c.y_label for c in charts] == [c.title for c in table.columns]
    params = charts[0]
    assert params.xs == (128, 256, 512) and params.budget == 1_000_000
    assert [s.label for s in params.series] == ["L=1", "L=2", "L=3"]
    for series, layers in zip(params.series, (1, 2, 3), strict=True):
        expected = tuple(_at(table, h, layers).values[0] for h in (128, 256, 512))
        assert series.ys == expected
    assert charts[1].budget is None  # the budget is a parameter count


def test_one_swept_size_puts_one_unit_in_one_chart() -> None:
    table = sweep(get("llama"), {"vocab": 32000, "heads": 32, "layers": 32, "hidden": 4096},
                  {"seq_len": "1024,8192,65536"}, show=("weights", "state"))  # fmt: skip
    (chart,) = sweep_charts(table)
    assert [s.label for s in chart.series] == [c.title for c in table.columns]
    weights, cache = (s.ys for s in chart.series)
    assert len(set(weights)) == 1 and cache[0] < weights[0] < cache[-1]  # they cross
    assert chart.log_x and chart.log_y  # 1k to 64k, and bytes over decades


def test_log_scales_only_over_decades() -> None:
    table = sweep(get("lstm"), {"vocab": 65}, {"hidden": "256,512"})
    assert not any(c.log_x or c.log_y for c in sweep_charts(table))


def test_plot_without_a_terminal_is_80_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from shapecalc.cli.app import cli

    monkeypatch.delenv("COLUMNS", raising=False)
    args = ["sweep", "lstm", "--hidden", "128,256,512", "--vocab", "65", "--plot"]
    result = CliRunner().invoke(cli, args, prog_name="shapecalc")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if "┌" in line)
    assert max(len(line) for line in lines[start:]) == 80


def test_plot_file_writes_an_svg(tmp_path: Any) -> None:
    pytest.importorskip("matplotlib")
    out = tmp_path / "sweep.svg"
    args = ["sweep", "lstm", "--hidden", "128,256", "--layers", "1..2", "--vocab", "65"]
    result = run([*args, "--plot-file", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text().lstrip().startswith("<?xml") and "<svg" in out.read_text()
    bad = run([*args, "--plot-file", str(tmp_path / "sweep.jpg")])
    assert bad.exit_code == 2 and "'--plot-file'" in bad.output and ".svg or .png" in bad.output


def test_plot_file_without_matplotlib_says_how_to_install_it(tmp_path: Any) -> None:
    code = (
        "import sys; sys.modules['matplotlib'] = None\n"
        "from shapecalc.cli import main\n"
        "sys.argv = ['shapecalc', 'sweep', 'lstm', '--hidden', '8,16', '--vocab', '5',"
        f" '--plot-file', {str(tmp_path / 'a.svg')!r}]\n"
        "main()\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 2, result.stderr
    assert "pip install 'shapecalc[plot]'" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


# -- bad input --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--hidden", "512..128", "--vocab", "65"], "a range that runs upward"),
        (["--hidden", "512", "--layers", "0..3", "--vocab", "65"], "layers"),
        (["--hidden", "128,abc", "--vocab", "65"], "'abc'"),
        (["--hidden", "128..512:0", "--vocab", "65"], "step"),
        (["--hidden", "128,256", "--vocab", "V"], "'V'"),
        (["--hidden", "128", "--vocab", "65"], "nothing to sweep"),
        (["--hidden", "128,256"], "--vocab"),
        (["--hidden", "128,256", "--vocab", "65", "--show", "params,speed"], "speed"),
        (["--hidden", "128,256", "--vocab", "65", "--batch", "0,2"], "batch"),
        (["--hidden", "128,256", "--vocab", "65", "--params", "ten"], "'--params'"),
        (["--hidden", "1..2000000", "--vocab", "65"], "at most"),
    ],
)
def test_bad_ranges_get_one_line(args: list[str], fragment: str) -> None:
    result = run(["sweep", "lstm", *args])
    assert result.exit_code == 2, result.output
    assert fragment in result.output, result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_parse_values() -> None:
    assert parse_values("1..4,8", field="layers") == (1, 2, 3, 4, 8)
    with pytest.raises(InvalidArgumentError, match="8192"):
        parse_values("8k", field="seq_len")
    assert parse_values(" 64 .. 256 : 64 ", field="hidden") == (64, 128, 192, 256)
    with pytest.raises(InvalidArgumentError, match="hidden must be"):
        parse_values("", field="hidden")


def test_a_grid_bigger_than_allowed_is_refused_before_any_work() -> None:
    with pytest.raises(InvalidArgumentError, match="a grid of at most"):
        sweep(get("lstm"), {"vocab": 65}, {"hidden": "1..2000", "layers": "1..1000"})


def test_a_size_the_layers_need_as_a_number_is_built_point_by_point() -> None:
    table = sweep(get("mlp"), {"inputs": 8, "outputs": 2}, {"hidden": "4,8", "layers": "1..3"})
    for point in table.points:
        hidden, layers = point.sizes
        model = get("mlp")(inputs=8, outputs=2, hidden=hidden, layers=layers).model()
        assert point.values[0] == model.total


# -- a Hugging Face config --------------------------------------------------------------------
@pytest.fixture
def llama_config(tmp_path: Any) -> str:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
    from docs_facts import LLAMA_31_8B

    path = tmp_path / "config.json"
    path.write_text(json.dumps(LLAMA_31_8B))
    return str(path)


def test_hf_config_over_the_context(llama_config: str) -> None:
    result = run(["sweep", "hf", llama_config, "--seq-len", "8192,131072", "--dtype", "bf16",
                  "--show", "weights,state", "--training", "none", "--format", "json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["model"].startswith("LlamaForCausalLM")
    for point in data["points"]:
        one = run(["hf", llama_config, "--memory", "--seq-len", str(point["sizes"]["seq_len"]),
                   "--batch", "1", "--training", "none", "--dtype", "bf16",
                   "--format", "json"])  # fmt: skip
        lines = {m["label"]: m["bytes"] for m in json.loads(one.stdout)["cost"]["memory"]}
        assert point["values"] == {
            "weights": lines["weights"],
            "state": lines["inference state"],
        }


def test_hf_vary_by_either_name(llama_config: str) -> None:
    ours = run(["sweep", "hf", llama_config, "--vary", "layers=16,32", "--format", "csv"])
    theirs = run(["sweep", "hf", llama_config, "--vary", "num_hidden_layers=16,32",
                  "--format", "csv"])  # fmt: skip
    assert ours.exit_code == 0, ours.output
    assert ours.stdout == theirs.stdout
    rows = list(csv.reader(io.StringIO(ours.stdout)))
    assert rows[2][:2] == ["32", "8030261248"]  # Llama 3.1 8B's 8,030,261,248


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ([], "nothing to sweep"),
        (["--vary", "depth=3"], "--vary takes SIZE=VALUES"),
        (["--vary", "layers"], "--vary takes SIZE=VALUES"),
        (["--vary", "layers=0..2"], "layers"),
        (["--seq-len", "1..3", "--plot-file", "x.bmp"], ".svg or .png"),
    ],
)
def test_hf_errors(llama_config: str, args: list[str], fragment: str) -> None:
    result = run(["sweep", "hf", llama_config, *args])
    assert result.exit_code == 2, result.output
    assert fragment in result.output and "Traceback" not in result.output


def test_a_flops_column_has_one_unit() -> None:
    """BERT's pooler reads one token, so its FLOPs divide by T only by chance (T=128):
    the whole column is per forward then, never a mix."""
    table = sweep(get("bert"), {"layers": 2, "hidden": 64, "heads": 2, "vocab": 100},
                  {"seq_len": "99,100,101,128"}, show=("flops",))  # fmt: skip
    assert table.columns[0].title == "FLOPs per forward"
    for point in table.points:
        model = get("bert")(layers=2, hidden=64, heads=2, vocab=100).model()
        assert point.values[0] == analyze(model, batch=1, seq_len=point.sizes[0]).forward_flops
    lstm = sweep(get("lstm"), {"vocab": 65}, {"hidden": "8,16"}, show=("flops",), seq_len=7)
    assert lstm.columns[0].title == "FLOPs per token"


def test_a_swept_context_bounds_the_default_sequence() -> None:
    args = ["--hidden", "64", "--heads", "2", "--layers", "1", "--vocab", "10"]
    result = run(["sweep", "gpt2", *args, "--context", "256,512", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["fixed"]["T"] == 256


@pytest.mark.parametrize("fmt", ["json", "csv", "markdown"])
def test_plot_only_under_a_table(fmt: str) -> None:
    result = run(["sweep", "lstm", "--hidden", "8,16", "--vocab", "5", "--plot", "--format", fmt])
    assert result.exit_code == 2 and "'--plot'" in result.output and "--plot-file" in result.output


def test_hf_inputs_and_vary_name_their_flag(llama_config: str) -> None:
    zero = run(["sweep", "hf", llama_config, "--seq-len", "0"])
    assert zero.exit_code == 2 and "'--seq-len'" in zero.output
    twice = run(["sweep", "hf", llama_config, "--vary", "hidden_size=1024,2048",
                 "--vary", "hidden=512"])  # fmt: skip
    assert twice.exit_code == 2 and "'--vary'" in twice.output and "twice" in twice.output


def test_the_library_takes_a_name_and_refuses_the_wrong_types() -> None:
    import shapecalc

    assert shapecalc.sweep("lstm", {"vocab": 65}, {"hidden": [256, 512]}).column("params") == [
        559_681,
        2_167_873,
    ]
    with pytest.raises(InvalidArgumentError, match="architecture must be one of"):
        shapecalc.sweep("lsmt", {}, {"hidden": [1, 2]})
    with pytest.raises(TypeError, match="sweep: fixed must be a mapping"):
        shapecalc.sweep("lstm", "vocab=65", {"hidden": [1, 2]})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="sweep: varying must be a mapping"):
        shapecalc.sweep("lstm", {"vocab": 65}, "hidden")  # type: ignore[arg-type]
