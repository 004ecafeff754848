"""The numbers the hand-written docs pages use, computed by the engine.

``scripts/templates/**.md`` hold ``{{name}}`` placeholders; ``gen_docs.py`` fills them
from :func:`facts` (an unknown name is an error), so no number in the docs is typed by hand.
"""

from __future__ import annotations

import re

import shapecalc
from shapecalc.dims import count_str, dim_str, shape_str
from shapecalc.explain import explain

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")


def facts() -> dict[str, str]:
    model = shapecalc.lstm_lm(vocab=65, hidden=512, layers=2)
    rows = {r.name: r for r in model.rows()}
    one_hot = shapecalc.lstm_lm(vocab=65, hidden=512, layers=2, one_hot=True)
    out: dict[str, str] = {"V": "65", "H": "512", "E": "512", "total": count_str(model.total)}
    for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
        out[f"shape_{name}"] = shape_str(rows[f"lstm.{name}"].shape)
    out["shape_head_weight"] = shape_str(rows["head.weight"].shape)
    out["onehot_shape_weight_ih_l0"] = shape_str(
        next(r.shape for r in one_hot.rows() if r.name == "lstm.weight_ih_l0")
    )
    cell = next(s for s in explain(model) if s.title.startswith("The LSTM cell"))
    out["equations"] = "\n".join(line.strip() for line in cell.lines if line.startswith("  "))
    bias_hh = rows["lstm.bias_hh_l0"].count
    out["keras_fewer"] = count_str(bias_hh)
    layers = model.arguments["layers"]
    out["keras_total"] = count_str(model.total - bias_hh * layers)

    # term by term, from the rows
    def layer_sum(suffix: str) -> tuple[int, object]:
        picked = [r for r in model.rows() if r.name.endswith(suffix)]
        return (
            sum(int(r.count) for r in picked),  # type: ignore[call-overload]
            sum((r.formula for r in picked), start=0),
        )

    for key, suffix in (("layer0", "_l0"), ("layer1", "_l1")):
        count, formula = layer_sum(suffix)
        out[f"count_{key}"] = count_str(count)
        out[f"formula_{key}"] = formula.factored() if hasattr(formula, "factored") else str(formula)
    out["count_embedding"] = count_str(model.layer_total("embedding"))
    out["formula_embedding"] = dim_str(model.layer_formula("embedding"))
    out["count_head"] = count_str(model.layer_total("head"))
    out["formula_head"] = dim_str(model.layer_formula("head"))
    out["formula_total"] = dim_str(model.total_formula)
    out["onehot_rows"] = "\n".join(
        f"| `{r.name}` | {shape_str(r.shape)} | {count_str(r.count)} |" for r in one_hot.rows()
    )
    out["onehot_total"] = count_str(one_hot.total)
    out["onehot_formula"] = dim_str(one_hot.total_formula)
    return out


def fill(template: str, values: dict[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in values:
            raise KeyError(f"the docs template asks for {{{{{key}}}}}, which facts() lacks")
        return values[key]

    return PLACEHOLDER.sub(replace, template)


def cli(args: list[str], width: int = 100) -> str:
    """A command's real output (stdout, then stderr), as a reader's terminal shows it."""
    from click.testing import CliRunner

    from shapecalc.cli import cli as command

    env = {"COLUMNS": str(width), "FORCE_COLOR": None, "TTY_COMPATIBLE": None, "NO_COLOR": None}
    result = CliRunner().invoke(command, args, env=env, prog_name="shapecalc")
    text = result.stdout + result.stderr
    return "\n".join(line.rstrip() for line in text.splitlines())


def howto_facts() -> dict[str, str]:
    """Numbers and outputs of the how-to pages (the bridge parts need torch)."""
    import os
    import tempfile

    out: dict[str, str] = {}
    out["headline"] = cli(["lstm", "--layers", "2", "--hidden", "512", "--vocab", "65"])
    out["solve_table"] = cli(["solve", "lstm", "--params", "10M", "--layers", "2", "--vocab", "65"])
    solution = shapecalc.solve(shapecalc.lstm_lm, "10M", free="hidden", layers=2, vocab=65)
    out["solve_below"] = repr((solution.below.size, solution.below.total))
    out["solve_above"] = repr((solution.above.size, solution.above.total))
    out["solve_formula"] = repr(str(solution.formula))
    by64 = shapecalc.solve(
        shapecalc.lstm_lm, "10M", free="hidden", multiple_of=64, layers=2, vocab=65
    )
    out["solve_64"] = (
        f"hidden {by64.below.size} ({by64.below.total:,} parameters) or "
        f"{by64.above.size} ({by64.above.total:,})"
    )
    import torch
    from safetensors.torch import save_file

    try:
        shapecalc.assert_matches(
            shapecalc.lstm_lm(65, 512, 2), shapecalc.build(shapecalc.lstm_lm(65, 512, 3))
        )
    except AssertionError as err:
        out["mismatch"] = f"shapecalc.errors.MismatchError: {err}"
    verified = cli(
        [
            "lstm",
            "--layers",
            "2",
            "--hidden",
            "512",
            "--vocab",
            "65",
            "--verify",
            "--format",
            "json",
        ]
    ).splitlines()[-1]
    # the page should not change with the installed torch release
    out["verified"] = re.sub(r"torch [^,]+,", "torch <version>,", verified)
    with tempfile.TemporaryDirectory() as folder:
        here = os.getcwd()
        os.chdir(folder)
        try:
            save_file(
                {
                    "encoder.0.weight": torch.zeros(256, 128),
                    "encoder.0.bias": torch.zeros(256),
                    "encoder.1.weight": torch.zeros(256, 256, dtype=torch.bfloat16),
                    "head.weight": torch.zeros(10, 256, dtype=torch.bfloat16),
                },
                "model.safetensors",
            )
            out["inspect_tree"] = cli(["inspect", "model.safetensors", "--depth", "3"])
        finally:
            os.chdir(here)
    return out
