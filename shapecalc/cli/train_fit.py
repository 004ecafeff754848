"""``shapecalc fit ... --training OPT``: the fewest GPUs a training run needs, each
holding the per-GPU account of :mod:`shapecalc.analysis.parallel` (FSDP full unless
``--zero`` or ``--fsdp`` says how the ranks shard), and that account at the answer."""

from __future__ import annotations

import dataclasses
import sys
from typing import Any

import click

from shapecalc.cli.group import engine_error
from shapecalc.cli.options import adapter_of
from shapecalc.cli.parallel_options import plan_of, plan_usage
from shapecalc.core.errors import ShapecalcError

__all__ = ["TRAIN_FLAGS", "train_fit"]

#: the flags fit takes for a training run (with the parallel block and LoRA's)
TRAIN_FLAGS = (
    "training",
    "mixed_precision",
    "lora_rank",
    "lora_alpha",
    "lora_targets",
    "lora_bias",
    "use_dora",
    "modules_to_save",
)


def train_fit(model: Any, options: dict[str, Any], hardware: Any, reserve: int) -> None:
    """Print the fewest GPUs and the per-GPU account there; exit 0 when some number of
    GPUs fits, 1 when none does."""
    from shapecalc.analysis.cost import analyze
    from shapecalc.analysis.parallel import fewest_dp, per_gpu

    ctx = click.get_current_context(silent=True)
    source = None if ctx is None else ctx.get_parameter_source("dp")
    if source is not None and source.name == "COMMANDLINE":
        raise click.BadParameter(
            "fit answers the fewest data-parallel ranks: leave --dp out", param_hint="'--dp'"
        )
    plan, accounting = plan_of(options)
    adapter = adapter_of(options)
    try:
        if adapter is not None:
            from shapecalc.adapt import lora

            model = lora(model, adapter)
        if plan is None or not (plan.zero or plan.fsdp):
            from shapecalc.analysis.parallel_plan import ParallelPlan

            base = plan or ParallelPlan()
            plan = dataclasses.replace(base, fsdp="full")
        if plan.fsdp == "hybrid":
            raise plan_usage_error()
        cost = analyze(
            model,
            batch=options["batch"],
            seq_len=options["seq_len"] or 4096,
            dtype=options["dtype"],
            training=options["training"],
            mixed_precision=options["mixed_precision"],
        )
        capacity = hardware.memory - reserve
        gpus = fewest_dp(cost, plan, capacity, accounting)
        shown = per_gpu(cost, dataclasses.replace(plan, dp=gpus or 1), accounting)
    except ShapecalcError as err:
        if (err.field or "").startswith("--"):
            raise plan_usage(err) from None
        raise engine_error(err) from None
    split = plan.tp * plan.pp * plan.cp  # each data-parallel rank's GPUs
    total = gpus * split if gpus else None
    head = (
        f"Training on {hardware.title}: the fewest GPUs is {total:,}"
        + (f" = {gpus:,} × {split}" if split > 1 else "")
        if gpus and total
        else f"Training on {hardware.title}: no number of GPUs fits (what is not sharded "
        "does not shrink)"
    )
    if options["fmt"] == "json":
        import json

        from shapecalc.report.as_json import per_gpu_dict

        data = {"schema": "shapecalc.train-fit/1", "gpus": total, "dp": gpus, "memory": capacity}
        data["per_gpu"] = per_gpu_dict(shown)
        click.echo(json.dumps(data, indent=2))
    else:
        from shapecalc.cli.inspect import _width
        from shapecalc.report.inspect_text import fitted_lines
        from shapecalc.report.rich_writer import PerGpuTable, echo

        click.echo("\n".join(fitted_lines([head + f" ({capacity:,} bytes a GPU)"], _width())))
        echo(PerGpuTable(shown))
    sys.exit(0 if gpus else 1)


def plan_usage_error() -> ShapecalcError:
    from shapecalc.analysis.parallel_plan import plan_error

    return plan_error(
        "--fsdp",
        "hybrid",
        "under --fsdp hybrid a GPU holds its shard group's share whatever the ranks: "
        "price it with --dp on a model command",
    )
