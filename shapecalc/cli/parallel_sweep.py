"""``shapecalc sweep COMMAND ... --dp 1,2,4,8 --zero 1..3``: the per-GPU training memory
over lists and ranges of the parallel sizes (a grid when several vary), the model's own
sizes fixed. Each point is the model command's per-GPU account at that plan."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from shapecalc.cli.group import engine_error
from shapecalc.cli.options import F
from shapecalc.cli.parallel_options import plan_usage
from shapecalc.core.errors import ShapecalcError

__all__ = [
    "SWEEP_PARALLEL_FLAGS",
    "planned",
    "run_parallel_sweep",
    "run_parallel_sweep_model",
    "sweep_parallel_options",
]

#: the plan's sizes a sweep takes as lists, with their defaults
_LISTS = {"dp": "1", "tp": "1", "pp": "1", "cp": "1", "ep": "1", "zero": "0"}
#: every flag of the block, popped by the sweep command
SWEEP_PARALLEL_FLAGS = (
    *_LISTS,
    "fsdp",
    "shard_group",
    "offload_optimizer",
    "offload_parameters",
    "sequence_parallel",
    "micro_batches",
    "recompute",
    "accounting",
)


def sweep_parallel_options() -> list[Callable[[F], F]]:
    """The parallel sizes as lists or ranges, and the plan's other settings."""
    from shapecalc.cli.parallel_options import ACCOUNTINGS, RECOMPUTE

    what = {
        "dp": "Data-parallel ranks",
        "tp": "Tensor-parallel ranks",
        "pp": "Pipeline stages",
        "cp": "Context-parallel ranks",
        "ep": "Expert-parallel ranks",
        "zero": "ZeRO stages (0..3)",
    }
    options = [
        click.option(
            f"--{name}",
            default=None,
            metavar="N",
            help=f"{what[name]} (a list or range too): sweeps the per-GPU training memory "
            "over the plans, the model's sizes fixed.",
        )
        for name in _LISTS
    ]
    options += [
        click.option(
            "--fsdp",
            default=None,
            metavar="MODES",
            help="FSDP's sharding, a list too: full, grad-op, hybrid, no-shard, none.",
        ),
        click.option("--shard-group", type=int, default=0, metavar="G", help="As --fsdp hybrid's."),
        click.option("--offload-optimizer", is_flag=True, help="The optimizer in CPU memory."),
        click.option("--offload-parameters", is_flag=True, help="The parameters in CPU memory."),
        click.option("--sequence-parallel", is_flag=True, help="Megatron's, over --tp."),
        click.option("--micro-batches", type=int, default=1, metavar="M", help="Per step."),
        click.option(
            "--recompute",
            type=click.Choice(RECOMPUTE),
            default="none",
            help="Activation recomputation.",
        ),
        click.option(
            "--accounting",
            type=click.Choice(ACCOUNTINGS),
            default="shapecalc",
            help="shapecalc, deepspeed or megatron (see a model command's --accounting).",
        ),
    ]
    return options


def planned(flags: dict[str, Any]) -> bool:
    """Whether a parallel size or FSDP was given: the sweep is over the plans."""
    return any(flags.get(name) is not None for name in (*_LISTS, "fsdp"))


def run_parallel_sweep(cls: Any, fmt: str, flags: dict[str, Any]) -> bool:
    """Take the block's flags out of ``flags``; when a parallel size was given, build the
    model at its fixed sizes, price it once, print the per-GPU account at each plan of
    the grid and say so (True)."""
    if not planned(flags):
        for key in SWEEP_PARALLEL_FLAGS:
            flags.pop(key, None)
        return False
    from shapecalc.cli.fit import HARDWARE_FLAGS

    cost = {k: flags.pop(k) for k in ("dtype", "training", "mixed_precision")}
    cost["cache"] = flags.pop("latent_cache")
    cost["weights"] = flags.pop("weights")
    for key in HARDWARE_FLAGS:
        flags.pop(key, None)
    inputs: dict[str, Any] = {k: flags.pop(k) for k in ("batch", "seq_len") if k in flags}
    _run(cls, fmt, flags, inputs, cost)
    return True


def _run(
    cls: Any, fmt: str, flags: dict[str, Any], inputs: dict[str, Any], cost: dict[str, Any]
) -> None:
    from shapecalc.analysis.sweep import parse_values
    from shapecalc.core.declare import arguments_of

    block = {k: flags.pop(k) for k in SWEEP_PARALLEL_FLAGS if k in flags}
    try:
        sizes = {f.name for f, a in arguments_of(cls) if a.kind == "size"}
        fixed: dict[str, Any] = {}
        for name, value in {**flags, **inputs}.items():
            if value is None:
                continue
            if name in sizes or name in inputs:
                text = str(value).strip()
                values = parse_values(text, field=name)
                if len(values) != 1 or "," in text or ".." in text:
                    raise click.BadParameter(
                        f"{text}: a sweep over the parallel sizes holds the model's sizes "
                        "and the input fixed: give one value",
                        param_hint=f"'--{name.replace('_', '-')}'",
                    )
                value = values[0]
            fixed[name] = value
        batch = fixed.pop("batch", 1)
        seq_len = fixed.pop("seq_len", 1024 if cls.sequence else None)
        base, varying = _plans(block)
        model = cls(**fixed).model()
        length = seq_len if cls.sequence else "T"
        table = _priced(model, cost, base, varying, block["accounting"], batch, length)
    except ShapecalcError as err:
        if (err.field or "").startswith("--"):
            raise plan_usage(err) from None
        raise engine_error(err) from None
    _write(table, fmt)


def run_parallel_sweep_model(
    model: Any, fmt: str, flags: dict[str, Any], errors: dict[str, str] | None = None
) -> bool:
    """``sweep hf CONFIG --tp 1,2,4 ...``: as :func:`run_parallel_sweep`, the model
    built already (a config's), its batch and sequence length one value each."""
    from shapecalc.analysis.sweep import parse_values

    if not planned(flags):
        for key in SWEEP_PARALLEL_FLAGS:
            flags.pop(key, None)
        return False
    block = {k: flags.pop(k) for k in SWEEP_PARALLEL_FLAGS if k in flags}
    cost = {k: flags.pop(k) for k in ("dtype", "training", "mixed_precision")}
    cost["cache"] = flags.pop("latent_cache")
    cost["weights"] = flags.pop("weights")
    try:
        inputs = {"batch": 1, "seq_len": 1024}
        for name in inputs:
            text = flags.pop(name, None)
            if text is None:
                continue
            values = parse_values(str(text).strip(), field=name)
            if len(values) != 1 or "," in str(text) or ".." in str(text):
                raise click.BadParameter(
                    f"{text}: a sweep over the parallel sizes holds the input fixed:"
                    " give one value",
                    param_hint=f"'--{name.replace('_', '-')}'",
                )
            inputs[name] = int(values[0])
        base, varying = _plans(block)
        table = _priced(
            model, cost, base, varying, block["accounting"], inputs["batch"], inputs["seq_len"]
        )
    except ShapecalcError as err:
        if (err.field or "").startswith("--"):
            raise plan_usage(err) from None
        raise engine_error(err, errors) from None
    _write(table, fmt)
    return True


def _plans(block: dict[str, Any]) -> tuple[Any, dict[str, tuple[int | str, ...]]]:
    """The fixed part of the plan and the sizes that vary, from the block's flags."""
    from shapecalc.analysis.parallel_plan import FSDP_MODES, ParallelPlan
    from shapecalc.analysis.sweep import parse_values

    varying: dict[str, tuple[int | str, ...]] = {}
    for name in _LISTS:
        if block.get(name) is not None:
            values = parse_values(block[name], field=name)
            if len(values) > 1:
                varying[name] = values
            else:
                block[name] = values[0]
        else:
            block[name] = int(_LISTS[name])
    modes: tuple[str, ...] = ()
    if block.get("fsdp") is not None:
        modes = tuple(m.strip() for m in str(block["fsdp"]).split(",") if m.strip())
        for mode in modes:
            if mode not in (*FSDP_MODES, "none"):
                raise click.BadParameter(
                    f"{mode}: one of {', '.join(FSDP_MODES)}, none", param_hint="'--fsdp'"
                )
        if len(modes) > 1:
            varying["fsdp"] = modes
    single = modes[0] if len(modes) == 1 and modes[0] != "none" else None
    base = ParallelPlan(
        **{k: block[k] for k in _LISTS if k not in varying},
        fsdp=single,
        shard_group=block["shard_group"],
        offload_optimizer=block["offload_optimizer"],
        offload_parameters=block["offload_parameters"],
        sequence_parallel=block["sequence_parallel"],
        micro_batches=block["micro_batches"],
        recompute=block["recompute"],
    )
    return base, varying


def _priced(
    model: Any,
    cost: dict[str, Any],
    base: Any,
    varying: dict[str, tuple[int | str, ...]],
    accounting: str,
    batch: Any,
    seq_len: Any,
) -> Any:
    from shapecalc.analysis.cost import analyze
    from shapecalc.analysis.parallel import sweep_plans

    weights = cost.pop("weights", None)
    if weights is not None:
        from shapecalc.quant import quantize, weights_option

        chosen = weights_option(weights)
        if chosen is not None:
            model = quantize(model, chosen)
    priced = analyze(
        model,
        batch=batch,
        seq_len=seq_len,
        dtype=cost["dtype"],
        training=cost["training"],
        mixed_precision=cost["mixed_precision"],
        cache=cost.get("cache", "latent"),
    )
    return sweep_plans(priced, base, varying, accounting)


def _write(table: Any, fmt: str) -> None:
    from shapecalc.report.cells import plan_sweep_rows

    header, rows = plan_sweep_rows(table)
    if fmt == "json":
        import json

        data = {
            "schema": "shapecalc.parallel-sweep/1",
            "points": [dict(zip(header, row, strict=True)) for row in rows],
        }
        click.echo(json.dumps(data, indent=2))
    elif fmt == "csv":
        click.echo("\n".join(",".join(str(c) for c in row) for row in [header, *rows]))
    elif fmt == "markdown":
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(f"{c:,}" if isinstance(c, int) else str(c) for c in row)
                  + " |" for row in rows]  # fmt: skip
        click.echo("\n".join(lines))
    else:
        from shapecalc.report.rich_writer import echo, plan_sweep_table

        echo(plan_sweep_table(table))
