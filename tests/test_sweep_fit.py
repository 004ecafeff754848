"""``shapecalc sweep ... --gpu``: every answer of every point, and every swept model's
frontier, equal to what ``shapecalc fit`` prints for the same model and options (both run
through the CLI on hypothesis-drawn sizes and hardware); the defaults are fit's; bad input
in one line; the table at 80 and 200 columns; JSON against its schema; the frontier's
picture a marker per swept model, its legend under the chart."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from shapecalc.cli.app import cli
from shapecalc.report.plot import MARKERS

SCHEMA = Path(__file__).resolve().parent.parent / "docs" / "schema" / "sweep.schema.json"
#: fit's JSON key of each sweep answer
FIT_KEYS = {
    "max_context": "largest_context",
    "max_batch": "most_sequences",
    "min_gpus": "fewest_gpus",
}
ALL = "gpu_memory,fits,max_context,max_batch,min_gpus,decode,prefill"


def run(args: list[str], width: int = 80) -> Any:
    return CliRunner().invoke(cli, args, env={"COLUMNS": str(width)}, prog_name="shapecalc")


def fit_of(args: list[str]) -> dict[str, Any]:
    result = run(["fit", *args, "--format", "json"])
    assert result.exit_code in (0, 1), result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def answers(fit: dict[str, Any]) -> dict[str, Any]:
    """fit's JSON as the sweep's answers."""
    speed = fit["speed"]
    return {
        "gpu_memory": fit["account"]["total"],
        "fits": fit["fits"],
        **{key: fit[name] for key, name in FIT_KEYS.items()},
        "decode": speed["decode_tokens_per_s_at_most"],
        "prefill": speed["prefill_tokens_per_s_at_most"],
    }


@st.composite
def sweeps(draw: Any) -> tuple[list[str], dict[str, list[int]], list[str]]:
    """A small llama with one or two sizes swept (and maybe the batch), and hardware: a
    memory small enough that some answers are near their limits."""
    heads = draw(st.sampled_from([2, 4]))
    kv = draw(st.sampled_from([h for h in (1, 2, 4) if heads % h == 0]))
    fixed = {
        "vocab": draw(st.integers(16, 3000)),
        "heads": heads,
        "kv-heads": kv,
        "intermediate": draw(st.integers(8, 200)),
    }
    swept = {
        "hidden": sorted(draw(st.sets(st.sampled_from([8 * heads, 16 * heads]), min_size=1))),
        "layers": sorted(draw(st.sets(st.integers(1, 3), min_size=1, max_size=2))),
    }
    if len(swept["hidden"]) + len(swept["layers"]) == 2:
        swept["batch"] = [1, draw(st.integers(2, 9))]
    else:
        fixed["batch"] = draw(st.integers(1, 4))
    fixed["seq-len"] = draw(st.integers(1, 600))
    hardware = [
        "--memory-gb",
        str(draw(st.sampled_from([0.0008, 0.005, 0.05]))),
        "--bandwidth-gbs",
        "100",
        "--tflops",
        "5",
    ]
    hardware += draw(
        st.sampled_from(
            [
                [],
                ["--gpus", str(kv)],
                ["--dtype", "fp32"],
                ["--engine", "llama.cpp"],
                ["--weights", "int8", "--reserve-gb", "0.0001"],
                ["--efficiency", "0.5,0.25", "--compute", "fp32"],
            ]
        )
    )
    flags = [w for k, v in fixed.items() for w in (f"--{k}", str(v))]
    return flags, swept, hardware


@settings(max_examples=5, deadline=None)
@given(sweeps())
def test_every_answer_is_fit_s(case: tuple[list[str], dict[str, list[int]], list[str]]) -> None:
    flags, swept, hardware = case
    given_ = [w for k, v in swept.items() for w in (f"--{k}", ",".join(map(str, v)))]
    result = run(["sweep", "llama", *flags, *given_, *hardware, "--show", ALL, "--frontier"])
    assert result.exit_code == 0, result.output
    data = json.loads(
        run(
            [
                "sweep",
                "llama",
                *flags,
                *given_,
                *hardware,
                "--show",
                ALL,
                "--frontier",
                "--format",
                "json",
            ]
        ).stdout
    )
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validate(data, json.loads(SCHEMA.read_text(encoding="utf-8")))
    assert data["points"]
    single = {k: v[0] for k, v in swept.items() if len(v) == 1}  # a size given one value

    def at(sizes: dict[str, int]) -> list[str]:
        return [
            w for k, v in {**single, **sizes}.items() for w in (f"--{k}".replace("_", "-"), str(v))
        ]

    for point in data["points"]:
        fit = fit_of(["llama", *flags, *at(point["sizes"]), *hardware])
        assert point["fit"] == answers(fit), point
    for frontier in data["frontiers"]:
        fit = fit_of(["llama", *flags, *at(frontier["sizes"]), *hardware, "--frontier"])
        assert frontier["frontier"] == fit["frontier"]
    models = len(swept["hidden"]) * len(swept["layers"])
    assert len(data["frontiers"]) == models


LLAMA = ["--vocab", "1000", "--heads", "4", "--kv-heads", "2", "--intermediate", "128"]


def test_the_defaults_are_fit_s() -> None:
    """Without --dtype, --seq-len and --show: bf16, 4,096 positions, fit's answers."""
    result = run(["sweep", "llama", *LLAMA, "--hidden", "64", "--layers", "1,2", "--gpu", "l4"])
    assert result.exit_code == 0, result.output
    assert "T=4096; bf16) on NVIDIA L4" in " ".join(result.output.split())
    data = json.loads(
        run(
            [
                "sweep",
                "llama",
                *LLAMA,
                "--hidden",
                "64",
                "--layers",
                "1,2",
                "--gpu",
                "l4",
                "--format",
                "json",
            ]
        ).stdout
    )
    assert data["hardware"]["dtype"] == "bf16"
    assert [c["key"] for c in data["columns"]] == ["params", "weights"]
    for point, layers in zip(data["points"], (1, 2), strict=True):
        fit = fit_of(["llama", *LLAMA, "--hidden", "64", "--layers", str(layers), "--gpu", "l4"])
        want = answers(fit)
        assert point["fit"] == {k: want[k] for k in point["fit"]}
        assert list(point["fit"]) == ["gpu_memory", "fits", "max_context", "max_batch", "min_gpus"]


def test_sweep_hf_answers_as_fit_hf(tmp_path: Path) -> None:
    config = {
        "model_type": "llama",
        "architectures": ["LlamaForCausalLM"],
        "vocab_size": 512,
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "intermediate_size": 96,
        "max_position_embeddings": 3000,
        "torch_dtype": "float16",
    }
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    args = ["--memory-gb", "0.02", "--show", ALL, "--frontier"]
    data = json.loads(
        run(["sweep", "hf", str(path), "--seq-len", "100,2000", *args, "--format", "json"]).stdout
    )
    assert data["hardware"]["dtype"] == "fp16"
    for point in data["points"]:
        fit = json.loads(
            run(
                [
                    "fit",
                    "hf",
                    str(path),
                    "--memory-gb",
                    "0.02",
                    "--frontier",
                    "--format",
                    "json",
                    "--seq-len",
                    str(point["sizes"]["seq_len"]),
                ]
            ).stdout
        )
        assert point["fit"] == answers(fit)
        assert data["frontiers"][0]["frontier"] == fit["frontier"]
    assert any(f["largest_context"] == 3000 for f in data["frontiers"][0]["frontier"])


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--frontier"], "--frontier"),
        (["--engine", "vllm"], "--engine"),
        (["--gpus", "2"], "--gpus"),
        (["--show", "params,fits"], "--show"),
        (["--gpu", "h1000"], "did you mean"),
        (["--gpu", "l4", "--memory-gb", "3"], "--memory-gb"),
        (["--gpu", "l4", "--efficiency", "2"], "--efficiency"),
        (["--gpu", "l4", "--gpu-memory-utilization", "0"], "--gpu-memory-utilization"),
        (["--gpu", "l4", "--gpus", "3"], "at layers=1"),
        (["--gpu", "l4", "--show", "fits", "--plot"], "--plot"),
        (["--gpu", "l4", "--show", "sizes"], "--show"),
    ],
)
def test_bad_input_is_one_line(args: list[str], says: str) -> None:
    result = run(["sweep", "llama", *LLAMA, "--hidden", "64", "--layers", "1,2", *args])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert says in result.output


def test_more_frontiers_than_markers_are_refused_before_printing() -> None:
    layers = ",".join(str(n) for n in range(1, len(MARKERS) + 2))
    result = run(
        [
            "sweep",
            "llama",
            *LLAMA,
            "--hidden",
            "64",
            "--layers",
            layers,
            "--gpu",
            "l4",
            "--frontier",
            "--plot",
        ]
    )
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1
    assert f"at most {len(MARKERS)} frontiers" in result.output


@pytest.mark.parametrize("width", [80, 200])
def test_the_table_and_the_frontier_fit_the_terminal(width: int) -> None:
    for extra in (
        ["--show", ALL, "--batch", "1,8", "--seq-len", "512"],
        ["--frontier", "--plot", "--layers", "1,2,3,4", "--engine", "vllm"],
        ["--frontier", "--format", "markdown"],
    ):
        sizes = (
            ["--hidden", "64"] if "--layers" in extra else ["--hidden", "64,128", "--layers", "1,2"]
        )
        result = run(
            ["sweep", "llama", *LLAMA, *sizes, "--gpu", "l4", *extra],
            width,
        )
        assert result.exit_code == 0, result.output
        lines = result.output.splitlines()
        if "markdown" not in extra:
            assert max(len(line) for line in lines) <= width, extra
        assert all(line == line.rstrip() for line in lines)
        assert "…" not in result.output


def test_the_frontier_picture_has_a_marker_per_model_and_its_legend_below() -> None:
    result = run(
        [
            "sweep",
            "llama",
            *LLAMA,
            "--hidden",
            "64",
            "--layers",
            "1,2,3",
            "--gpu",
            "rtx-4090",
            "--frontier",
            "--plot",
            "--show",
            "fits",
        ]
    )
    assert result.exit_code == 0, result.output
    picture = result.output.split("Largest context against batch")[1]
    legend = picture.strip().splitlines()[-1]
    assert legend == f"{MARKERS[0]} L=1  {MARKERS[1]} L=2  {MARKERS[2]} L=3"
    chart = "\n".join(picture.strip().splitlines()[:-1])
    for marker in MARKERS[:3]:
        assert marker in chart
    assert "\x1b[" not in result.output  # no colour


def test_csv_and_markdown_carry_the_answers() -> None:
    args = ["sweep", "llama", *LLAMA, "--hidden", "64", "--layers", "1,2", "--memory-gb", "0.001"]
    csv = run([*args, "--show", "fits,max_context,min_gpus", "--format", "csv"]).stdout
    head, *rows = csv.strip().splitlines()
    assert head == "layers,fits,max_context,min_gpus"
    data = json.loads(
        run([*args, "--show", "fits,max_context,min_gpus", "--format", "json"]).stdout
    )
    for row, point in zip(rows, data["points"], strict=True):
        fit = point["fit"]
        want = [str(fit["fits"]).lower(), str(fit["max_context"] or ""), str(fit["min_gpus"] or "")]
        assert row.split(",")[1:] == want
    markdown = run([*args, "--frontier", "--format", "markdown"]).stdout
    assert "| B | L=1 | L=2 |" in markdown


def test_a_grid_too_large_against_hardware_is_refused_before_any_work() -> None:
    """Each point against hardware runs fit's searches: a range without a step (28,673
    contexts) is one line naming the flag, not minutes of work."""
    from click.testing import CliRunner

    from shapecalc.analysis.sweep import MAX_FIT_POINTS
    from shapecalc.cli.app import cli

    args = ["sweep", "llama", "--vocab", "1000", "--hidden", "64", "--layers", "2"]
    args += ["--heads", "4", "--gpu", "l4", "--seq-len", "4096..32768"]
    result = CliRunner().invoke(cli, args, env={"COLUMNS": "80"})
    assert result.exit_code == 2
    assert len(result.stderr.splitlines()) == 1
    assert f"at most {MAX_FIT_POINTS:,} points, and 28,673 were asked" in result.stderr
    assert "give --seq-len a step" in result.stderr


@pytest.mark.parametrize("axes", [{"layers": [1, 2, 3]}, {"layers": [1, 2], "hidden": [64, 128]}])
def test_the_answers_against_hardware_are_drawn_as_the_table_holds_them(
    axes: dict[str, list[int]],
) -> None:
    """--plot draws each numeric answer (not the verdict) with the table's numbers, the
    memory per GPU against the GPU's memory as its line, the hardware in the title."""
    from shapecalc.analysis.hardware import accelerator
    from shapecalc.analysis.sweep import sweep
    from shapecalc.analysis.sweep_fit import FitSetting
    from shapecalc.report.plot import sweep_charts

    gpu = accelerator("l4")
    fixed = {"vocab": 1000, "heads": 4, "kv_heads": 2, "intermediate": 128, "hidden": 64}
    table = sweep(
        "llama",
        {k: v for k, v in fixed.items() if k not in axes},
        axes,
        show=("params", "gpu_memory", "fits", "max_context", "max_batch"),
        seq_len=512,
        dtype="bf16",
        fit=FitSetting(gpu),
    )
    charts = sweep_charts(table)
    keys = table.fit.keys if table.fit else ()
    drawn = [c for c in charts if gpu.title in c.title]
    # one chart per numeric answer; the verdict is not drawn
    assert len(drawn) == len(keys) - 1 and not any(c.title.startswith("fits") for c in charts)
    memory = next(c for c in drawn if c.title.startswith("memory per GPU"))
    assert memory.budget == gpu.memory and "memory of a GPU" in memory.budget_text
    first = table.axes[0]
    for chart in drawn:
        index = next(i for i, k in enumerate(keys) if chart.title.startswith(table.fit.title(k)))  # type: ignore[union-attr]
        for series in chart.series:
            for x, y in zip(first.values, series.ys, strict=True):
                points = [
                    p
                    for p in table.points
                    if p.sizes[0] == x
                    and (
                        len(table.axes) == 1
                        or f"{table.axes[1].letter}={p.sizes[1]}" == series.label
                    )
                ]
                assert len(points) == 1 and points[0].fit is not None
                assert y == (points[0].fit[index] or 0)
