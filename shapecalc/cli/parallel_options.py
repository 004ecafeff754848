"""The flags of a training run laid out over GPUs, in one block: the data-parallel size
and its sharding (``--dp --zero --fsdp --shard-group``), CPU offload, the model-parallel
sizes (``--tp --pp --cp --ep --sequence-parallel --virtual-stages --micro-batches``),
recomputation, and the accounting that prices it (``--accounting``, DeepSpeed's
``--buffer-factor`` and ``--zero-init``). The model commands, ``hf`` and ``fit`` take
them."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from shapecalc.analysis.parallel import Accounting
    from shapecalc.analysis.parallel_plan import ParallelPlan

__all__ = ["PARALLEL_FLAGS", "parallel_options", "plan_of"]

F = TypeVar("F", bound=Callable[..., Any])

#: the keywords of the block, popped with the cost flags
PARALLEL_FLAGS = (
    "dp",
    "zero",
    "fsdp",
    "shard_group",
    "offload_optimizer",
    "offload_parameters",
    "gpus_per_node",
    "tp",
    "pp",
    "cp",
    "ep",
    "sequence_parallel",
    "virtual_stages",
    "micro_batches",
    "recompute",
    "accounting",
    "buffer_factor",
    "zero_init",
    "first_stage_layers",
    "last_stage_layers",
)
#: the fields of the plan, by keyword (the rest shape the accounting)
_PLAN_FIELDS = (*PARALLEL_FLAGS[:15], "first_stage_layers", "last_stage_layers")


#: the choices of the block, as the engine's (``analysis.parallel.ACCOUNTINGS``,
#: ``parallel_plan.FSDP_MODES`` and ``RECOMPUTE``; a test checks they agree), written here
#: so that a command that prices no plan imports no analysis
ACCOUNTINGS = ("shapecalc", "deepspeed", "megatron")
FSDP_MODES = ("full", "grad-op", "hybrid", "no-shard")
RECOMPUTE = ("none", "selective", "full")


def parallel_options(searched: bool = False) -> list[Callable[[F], F]]:
    """The block's click options (sizes as given; the plan checks them); ``searched``:
    for ``fit``, which answers the number of data-parallel ranks itself."""

    return [
        click.option(
            "--dp",
            type=int,
            default=1,
            metavar="N",
            help="Not taken by fit, which answers the fewest data-parallel ranks that fit "
            "(a model command's --dp prices a given number)."
            if searched
            else "Data-parallel ranks: adds the memory of one GPU of the training run.",
        ),
        click.option(
            "--zero",
            type=click.Choice(("0", "1", "2", "3")),
            default="0",
            help="DeepSpeed ZeRO stage: 1 shards the optimizer state over --dp, 2 and the "
            "gradients, 3 and the parameters.",
        ),
        click.option(
            "--fsdp",
            type=click.Choice(FSDP_MODES),
            default=None,
            help="PyTorch FSDP's sharding: full (ZeRO-3), grad-op (parameters kept "
            "gathered from forward to backward), hybrid (full within --shard-group), "
            "no-shard.",
        ),
        click.option(
            "--shard-group",
            type=int,
            default=0,
            metavar="G",
            help="Ranks one hybrid shard group spans (a node's GPUs).",
        ),
        click.option(
            "--offload-optimizer",
            is_flag=True,
            help="Keep the optimizer state (and fp32 master weights, sharded gradients) in "
            "CPU memory.",
        ),
        click.option(
            "--offload-parameters",
            is_flag=True,
            help="Keep the sharded parameters in CPU memory (--zero 3, --fsdp full).",
        ),
        click.option(
            "--gpus-per-node",
            type=int,
            default=0,
            metavar="G",
            help="GPUs of one node, for DeepSpeed's CPU figure [default: all of --dp].",
        ),
        click.option(
            "--tp",
            type=int,
            default=1,
            metavar="N",
            help="Tensor-parallel ranks: each layer's matrices split by rows or columns "
            "(Megatron's split).",
        ),
        click.option(
            "--pp", type=int, default=1, metavar="N", help="Pipeline stages: the layers split."
        ),
        click.option(
            "--cp",
            type=int,
            default=1,
            metavar="N",
            help="Context-parallel ranks: each sequence split.",
        ),
        click.option(
            "--ep",
            type=int,
            default=1,
            metavar="N",
            help="Expert-parallel ranks: a mixture's experts split.",
        ),
        click.option(
            "--sequence-parallel",
            is_flag=True,
            help="Split the norms' and dropouts' activations over --tp (Megatron).",
        ),
        click.option(
            "--virtual-stages",
            type=int,
            default=1,
            metavar="V",
            help="Virtual pipeline stages per rank (interleaved schedule).",
        ),
        click.option(
            "--micro-batches",
            type=int,
            default=1,
            metavar="M",
            help="Micro-batches per step (--batch each); a pipeline holds up to --pp.",
        ),
        click.option(
            "--recompute",
            type=click.Choice(RECOMPUTE),
            default="none",
            help="Activation recomputation: selective (attention's core) or full (each "
            "layer's input kept).",
        ),
        click.option(
            "--first-stage-layers",
            type=int,
            default=None,
            metavar="N",
            help="Layers of the first pipeline stage, the rest even over the others "
            "(Megatron's --decoder-first-pipeline-num-layers).",
        ),
        click.option(
            "--last-stage-layers",
            type=int,
            default=None,
            metavar="N",
            help="Layers of the last pipeline stage (--decoder-last-pipeline-num-layers).",
        ),
        click.option(
            "--accounting",
            type=click.Choice(ACCOUNTINGS),
            default="shapecalc",
            help="Price the per-GPU memory as the sharded tensors are held (shapecalc), as "
            "DeepSpeed's ZeRO estimators do (deepspeed), or by Megatron-LM's theoretical "
            "memory (megatron).",
        ),
        click.option(
            "--buffer-factor",
            type=float,
            default=1.5,
            metavar="X",
            help="DeepSpeed's additional_buffer_factor of its CPU figure.",
        ),
        click.option(
            "--zero-init/--no-zero-init",
            default=True,
            help="DeepSpeed's zero_init for ZeRO-3's CPU figure.",
        ),
    ]


def given(flags: dict[str, Any]) -> bool:
    """Whether any flag of the block was given on the command line."""
    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return False
    for name in PARALLEL_FLAGS:
        if name not in flags:
            continue
        source = ctx.get_parameter_source(name)
        if source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT"):
            return True
    return False


def plan_of(flags: dict[str, Any]) -> tuple[ParallelPlan | None, Accounting | str]:
    """The plan and the accounting the flags say; no plan (and nothing imported) when no
    flag of the block was given. A broken rule is a usage error naming the flag (exit
    2)."""
    if not given(flags):
        return None, "shapecalc"
    from shapecalc.analysis.parallel import Accounting
    from shapecalc.analysis.parallel_plan import ParallelPlan
    from shapecalc.core.errors import ShapecalcError

    try:
        accounting = Accounting(
            flags.get("accounting", "shapecalc"),
            flags.get("buffer_factor", 1.5),
            flags.get("zero_init", True),
        )
        fields = {k: flags[k] for k in _PLAN_FIELDS if k in flags}
        fields["zero"] = int(fields.get("zero", 0))
        return ParallelPlan(**fields), accounting
    except ShapecalcError as err:
        raise plan_usage(err) from None


def plan_usage(err: Any) -> click.ClickException:
    """A plan's error as a usage error naming its flag."""
    field = err.field or ""
    if field.startswith("--"):
        return click.BadParameter(str(err), param_hint=f"'{field}'")
    return click.UsageError(str(err))
