"""The flags of a training run laid out over GPUs, in one block: the data-parallel size
and its sharding (``--dp --zero --fsdp --shard-group``), CPU offload, and the accounting
that prices it (``--accounting``, DeepSpeed's ``--buffer-factor`` and ``--zero-init``).
The model commands, ``hf`` and ``fit`` take them; the model-parallel sizes join this
block."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from shapecalc.analysis.parallel import Accounting
    from shapecalc.analysis.parallel_plan import ParallelPlan

__all__ = ["PARALLEL_FLAGS", "parallel_options", "plan_of"]

F = TypeVar("F", bound=Callable[..., Any])

#: the model-parallel sizes (shapecalc.analysis.model_parallel prices them)
MODEL_PARALLEL_FLAGS = (
    "tp",
    "pp",
    "cp",
    "ep",
    "sequence_parallel",
    "virtual_stages",
    "micro_batches",
    "recompute",
)
#: the keywords of the block, popped with the cost flags
PARALLEL_FLAGS = (
    "dp",
    "zero",
    "fsdp",
    "shard_group",
    "offload_optimizer",
    "offload_parameters",
    "gpus_per_node",
    "accounting",
    "buffer_factor",
    "zero_init",
    *MODEL_PARALLEL_FLAGS,
)
#: the fields of the plan, by keyword (the rest shape the accounting)
_PLAN_FIELDS = (*PARALLEL_FLAGS[:7], *MODEL_PARALLEL_FLAGS)


def parallel_options() -> list[Callable[[F], F]]:
    """The block's click options (sizes as given; the plan checks them)."""
    from shapecalc.analysis.parallel import ACCOUNTINGS
    from shapecalc.analysis.parallel_plan import FSDP_MODES

    return [
        click.option(
            "--dp",
            type=int,
            default=1,
            metavar="N",
            help="Data-parallel ranks: adds the memory of one GPU of the training run.",
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
            "--accounting",
            type=click.Choice(ACCOUNTINGS),
            default="shapecalc",
            help="Price the per-GPU memory as the sharded tensors are held (shapecalc) or "
            "as DeepSpeed's ZeRO estimators do (deepspeed).",
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
        *model_parallel_options(),
    ]


def model_parallel_options() -> list[Callable[[F], F]]:
    """The model-parallel sizes of the block: Megatron-LM's splits (see
    :mod:`shapecalc.analysis.model_parallel`)."""
    from shapecalc.analysis.parallel_plan import RECOMPUTE

    def size(flag: str, text: str) -> Callable[[F], F]:
        return click.option(flag, type=int, default=1, metavar="N", help=text)

    return [
        size("--tp", "Tensor-parallel ranks: matrices split by columns or rows (Megatron)."),
        size("--pp", "Pipeline stages: the layers in --pp consecutive groups."),
        size("--cp", "Context-parallel ranks: each holds 1/cp of the sequence."),
        size("--ep", "Expert-parallel ranks: a mixture's experts split over them."),
        click.option(
            "--sequence-parallel",
            is_flag=True,
            help="Megatron's sequence parallelism: norms' and dropouts' activations split "
            "over --tp.",
        ),
        size("--virtual-stages", "Virtual stages per pipeline rank (interleaved schedule)."),
        size("--micro-batches", "Micro-batches per step (1F1B holds up to --pp in flight)."),
        click.option(
            "--recompute",
            type=click.Choice(RECOMPUTE),
            default="none",
            help="Activation recomputation as Megatron names it (Korthikanti et al.).",
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


def plan_of(flags: dict[str, Any]) -> tuple[ParallelPlan | None, Accounting]:
    """The plan and the accounting the flags say; no plan when no flag of the block was
    given. A broken rule is a usage error naming the flag (exit 2)."""
    from shapecalc.analysis.parallel import Accounting
    from shapecalc.analysis.parallel_plan import ParallelPlan
    from shapecalc.core.errors import ShapecalcError

    try:
        accounting = Accounting(
            flags.get("accounting", "shapecalc"),
            flags.get("buffer_factor", 1.5),
            flags.get("zero_init", True),
        )
        if not given(flags):
            return None, accounting
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
