"""Training memory per GPU under data parallelism: what one rank holds when ZeRO (1, 2, 3)
or FSDP (full, grad-op, hybrid, no-shard) shards the replicated state, with CPU offload.

Two accountings (``accounting``):

- **shapecalc** (the default): the single-device account of
  :attr:`~shapecalc.analysis.cost.Cost.memory` (weights, fp32 master copies under mixed
  precision, buffers, gradients, optimizer state, activations) with each line divided as
  the plan shards it, tensor by tensor and rounded as the libraries round:

  - FSDP (``fully_shard``, FSDP2) splits every tensor on its first dimension as
    ``torch.chunk`` does: each rank's rows are ``c = ⌈d₀/N⌉`` (the last ranks fewer, or
    none), and every rank allocates the padded ``c·rest`` numbers for the parameter and
    its gradient (``torch/distributed/fsdp/_fully_shard/_fsdp_param.py``,
    ``_init_sharded_param``: ``padded_sharded_size = chunks[0].size()``). The optimizer
    state is made ``zeros_like`` each rank's unpadded shard, so the first rank, which
    holds a full chunk of every tensor, is the most loaded: its bytes are the per-GPU
    figure. Under mixed precision (``MixedPrecisionPolicy(param_dtype=bf16)``) the
    sharded parameters are the fp32 master weights, the bf16 copy exists only gathered,
    and the sharded gradients are kept in the parameters' fp32.
  - ZeRO-1 and 2 (DeepSpeed, ``runtime/zero/stage_1_and_2.py``) flatten the trained
    parameters of a group into one buffer padded to a multiple of ``2·N`` numbers
    (``nccl_start_alignment_factor = 2``, ``align_dense_tensors``), one equal partition
    per rank: ``⌈P/2N⌉·2``. ZeRO-3 (``runtime/zero/partition_parameters.py``,
    ``_aligned_size`` and ``_partition_param``) pads each parameter to a multiple of N
    and gives every rank ``⌈n/N⌉`` of each.
  - The transient while computing: ZeRO-3 gathers one layer at a time (the largest
    layer's parameters and gradients whole); under FSDP the peak over a step of what
    FSDP2 holds unsharded (parameters, all-gather buffers, unsharded gradients,
    reduce-scatter input), walked unit by unit as it allocates and frees
    (:mod:`shapecalc.analysis.fsdp_gather`).
  - Adam's ``step`` (a 4-byte tensor per trained tensor for torch's optimizers, one per
    flat partition under ZeRO) is counted with the optimizer state.

- **deepspeed**: DeepSpeed's own estimators, exactly
  (``estimate_zero2_model_states_mem_needs`` in ``runtime/zero/stage_1_and_2.py`` and
  ``estimate_zero3_model_states_mem_needs`` in ``runtime/zero/stage3.py``): 2 bytes of
  fp16 parameters a rank and 18 bytes a parameter sharded (fp16 and fp32 gradients, fp32
  master and Adam's two states) for ZeRO-2, ``4·largest layer + 18·P/N`` for ZeRO-3, and
  their CPU figures with ``additional_buffer_factor``; the parameters counted as
  ``model_to_params`` counts them (shared tensors once; the largest layer by its own
  parameters). DeepSpeed leaves activations out: they are shown apart.

The activations are the single-device account's at ``--batch`` (each rank's micro-batch):
data parallelism does not divide them.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from shapecalc.analysis.parallel_plan import ParallelPlan, plan_error
from shapecalc.core.dims import Dim, known, product

if TYPE_CHECKING:
    from shapecalc.analysis.cost import Cost
    from shapecalc.core.model import Model

__all__ = [
    "ACCOUNTINGS",
    "Accounting",
    "GpuLine",
    "PerGpu",
    "Tensor",
    "check_plan",
    "fewest_dp",
    "per_gpu",
    "rank_state",
    "shard_rows",
    "tensors",
]

#: the accountings ``--accounting`` selects
ACCOUNTINGS = ("shapecalc", "deepspeed", "megatron")
#: DeepSpeed's ``additional_buffer_factor`` default
BUFFER_FACTOR = 1.5
#: the largest data-parallel size :func:`fewest_dp` searches
MOST_DP = 1 << 20


@dataclass(frozen=True)
class Accounting:
    """Which accounting prices the plan, and DeepSpeed's two knobs of its CPU figure."""

    name: str = "shapecalc"
    #: DeepSpeed's ``additional_buffer_factor``
    buffer_factor: float = BUFFER_FACTOR
    #: DeepSpeed's ``zero_init`` (ZeRO-3: the model built partitioned)
    zero_init: bool = True

    def __post_init__(self) -> None:
        if self.name not in ACCOUNTINGS:
            raise plan_error(
                "--accounting", self.name, f"--accounting must be one of {', '.join(ACCOUNTINGS)}"
            )
        factor = self.buffer_factor
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not factor >= 1:
            raise plan_error(
                "--buffer-factor", factor, "--buffer-factor must be a number of at least 1"
            )


@dataclass(frozen=True)
class Tensor:
    """One parameter tensor (``copies`` alike), as the sharding sees it."""

    shape: tuple[int, ...]
    copies: int
    trainable: bool
    #: bytes of one copy at the weights' dtype (a dtype of its own at its own)
    nbytes: int
    #: PyTorch's name (``model.layers.{0..15}.mlp.up_proj.weight``)
    name: str = ""

    @property
    def numel(self) -> int:
        return product(self.shape) if self.shape else 1  # type: ignore[return-value]

    @property
    def rows(self) -> int:
        """The first dimension, which FSDP splits (a scalar is one row)."""
        return self.shape[0] if self.shape else 1


@dataclass(frozen=True)
class GpuLine:
    """One line of the per-GPU account: bytes on the GPU (or in CPU memory, ``cpu``), the
    rule as a formula, and whether it adds to the total (``counted``)."""

    label: str
    bytes: Dim
    rule: str
    cpu: bool = False
    counted: bool = True


@dataclass(frozen=True)
class PerGpu:
    """What one GPU of the run holds (the most loaded rank), line by line."""

    plan: ParallelPlan
    accounting: str
    lines: tuple[GpuLine, ...]

    @property
    def gpu_bytes(self) -> Dim:
        """Everything counted that lives on the GPU."""
        return sum((x.bytes for x in self.lines if x.counted and not x.cpu), start=0)

    @property
    def cpu_bytes(self) -> Dim:
        """Everything counted that lives in CPU memory (offload; DeepSpeed's CPU figure)."""
        return sum((x.bytes for x in self.lines if x.counted and x.cpu), start=0)

    @property
    def title(self) -> str:
        return f"Memory per GPU ({describe(self.plan)}; {self.accounting} accounting)"

    def rows(self) -> list[tuple[str, Dim, str]]:
        """(what, bytes, rule) for each line and the totals."""
        out = [
            (x.label + (" (CPU)" if x.cpu and "CPU" not in x.label else ""), x.bytes, x.rule)
            for x in self.lines
        ]
        what = "model states, DeepSpeed's estimate" if self.accounting == "deepspeed" else ""
        every = "every GPU line above"
        if any(not x.counted for x in self.lines):
            every = "every counted GPU line above"
        out.append(("per-GPU total", self.gpu_bytes, what or every))
        if any(x.cpu for x in self.lines):
            out.append(("CPU total", self.cpu_bytes, "every CPU line above"))
        return out


def describe(plan: ParallelPlan) -> str:
    """``dp=8, tp=2, ZeRO-3, optimizer offloaded``."""
    parts = [f"dp={plan.dp}"]
    parts += [
        f"{name}={size}"
        for name, size in (("tp", plan.tp), ("pp", plan.pp), ("cp", plan.cp), ("ep", plan.ep))
        if size > 1
    ]
    if plan.virtual_stages > 1:
        parts[-1] += f"×{plan.virtual_stages}"
    if plan.sequence_parallel:
        parts.append("SP")
    if plan.dp == 1 and (plan.zero or plan.fsdp in ("full", "grad-op")):
        # one data-parallel rank: ZeRO and FSDP have no other rank to shard over
        parts.append(f"{f'ZeRO-{plan.zero}' if plan.zero else 'FSDP'} on one rank: unsharded")
    elif plan.zero:
        parts.append(f"ZeRO-{plan.zero}")
    elif plan.fsdp:
        parts.append(f"FSDP {plan.fsdp}")
        if plan.fsdp == "hybrid":
            parts[-1] += f" over {plan.shard_group}"
    else:
        parts.append("replicated")
    if plan.offload_parameters:
        parts.append("parameters offloaded")
    if plan.offload_optimizer:
        parts.append("optimizer offloaded")
    if plan.recompute != "none":
        parts.append(f"{plan.recompute} recomputation")
    return ", ".join(parts)


def shard_rows(rows: int, n: int, rank: int) -> int:
    """The rows of a tensor of ``rows`` rows rank ``rank`` of ``n`` holds, as
    ``torch.chunk`` splits it: ⌈rows/n⌉ each, the last ranks fewer or none."""
    chunk = -(-rows // n)
    return max(0, min(chunk, rows - rank * chunk))


def tensors(model: Model) -> tuple[Tensor, ...]:
    """The model's parameter tensors, shared ones once; refused when a size is a name."""
    if model.symbolic:
        raise plan_error(
            "--dp",
            model.name,
            "the per-GPU account rounds each shard up: give every size a number",
        )
    out = []
    for row in model.rows():
        if row.tied_to:
            continue
        shape = tuple(int(d) for d in row.shape)  # type: ignore[arg-type]
        numel = product(shape) if shape else 1
        copies = known(row.count) // numel if numel else 0  # type: ignore[operator]
        size = known(row.param.nbytes(1)) if row.param.dtype else None
        nbytes = (size or 0) // max(copies, 1)
        out.append(Tensor(shape, copies, row.param.trainable, nbytes, row.name))
    return tuple(out)


# -- the sharding schemes -----------------------------------------------------------------
def _scheme(plan: ParallelPlan) -> tuple[str, int, int]:
    """(scheme, stage, N): ``fsdp`` / ``zero`` / ``none``, what is sharded (1 optimizer, 2
    and gradients, 3 and parameters) and over how many ranks."""
    if plan.zero:
        return "zero", plan.zero, plan.dp
    if plan.fsdp in ("full", "grad-op"):
        return "fsdp", 3, plan.dp
    if plan.fsdp == "hybrid":
        return "fsdp", 3, plan.shard_group
    return "none", 0, 1


def _first_rank(t: Tensor, n: int, scheme: str, stage: int) -> int:
    """Numbers of one copy of ``t`` the most loaded rank holds, parameters sharded."""
    if scheme == "fsdp":
        return -(-t.rows // n) * (t.numel // t.rows if t.rows else 0)
    if scheme == "zero" and stage == 3:
        return -(-t.numel // n)
    return t.numel


def _sharded(ts: list[Tensor], n: int, scheme: str, stage: int, itemsize: int) -> int:
    """Bytes of ``ts`` on the most loaded rank at ``itemsize`` bytes a number; a tensor
    of a dtype of its own (LoRA's float32 adapters: their gradients and optimizer state
    take it) at its own."""

    def size(t: Tensor) -> int:
        return t.nbytes // t.numel if t.nbytes and t.numel else itemsize

    if n == 1 or scheme == "none":
        return sum(t.copies * t.numel * size(t) for t in ts)
    if scheme == "zero" and stage < 3:  # one flat buffer padded to 2·N, equal partitions
        flat = sum(t.copies * t.numel * size(t) for t in ts)
        return -(-flat // (2 * n * itemsize)) * 2 * itemsize
    return sum(t.copies * _first_rank(t, n, scheme, stage) * size(t) for t in ts)


def _weights(ts: list[Tensor], n: int, scheme: str, stage: int, itemsize: int) -> int:
    """The stored parameters at ``itemsize`` (a tensor of a dtype of its own at its own
    bytes, sharded in proportion to its rows)."""
    total = 0
    for t in ts:
        own = t.nbytes or t.numel * itemsize
        if scheme == "none" or n == 1 or (scheme == "zero" and stage < 3):
            total += t.copies * own
        elif scheme == "fsdp":
            chunk = -(-t.rows // n)
            total += t.copies * -(-own * chunk // t.rows)
        elif t.numel and own % t.numel == 0:  # ZeRO-3: ⌈n/N⌉ whole elements of each tensor a rank
            total += t.copies * -(-t.numel // n) * (own // t.numel)
        else:  # a packed tensor (4-bit: 2 numbers a byte): its bytes shared alike
            total += t.copies * -(-own // n)
    return total


def check_plan(plan: ParallelPlan, model: Model | None = None) -> None:
    """The data-parallel rules a plan must keep here (the sizes themselves are checked by
    :class:`ParallelPlan`): one line naming the flag, the value and the rule."""
    if plan.fsdp == "hybrid":
        if plan.shard_group < 2:
            raise plan_error(
                "--shard-group",
                plan.shard_group,
                "--fsdp hybrid shards within groups of ranks: give --shard-group G (2 or more)",
            )
        if plan.dp % plan.shard_group or plan.shard_group == plan.dp:
            raise plan_error(
                "--shard-group",
                plan.shard_group,
                f"--shard-group must divide --dp ({plan.dp}) into two or more groups",
            )
    elif plan.shard_group:
        raise plan_error("--shard-group", plan.shard_group, "--shard-group goes with --fsdp hybrid")
    if plan.offload_parameters and not (plan.zero == 3 or plan.fsdp in ("full", "hybrid")):
        raise plan_error(
            "--offload-parameters",
            True,
            "only sharded parameters are offloaded: give --zero 3 or --fsdp full (or hybrid)",
        )
    if plan.offload_optimizer and not plan.sharded:
        raise plan_error(
            "--offload-optimizer",
            True,
            "the optimizer is offloaded by ZeRO (--zero 1, 2 or 3) or FSDP: give one",
        )
    if plan.fsdp and plan.offload_optimizer and not plan.offload_parameters:
        raise plan_error(
            "--offload-optimizer",
            True,
            "FSDP offloads parameters, gradients and optimizer state together "
            "(CPUOffloadPolicy): give --offload-parameters",
        )
    nodes = plan.gpus_per_node
    if nodes and plan.dp % nodes:
        raise plan_error("--gpus-per-node", nodes, f"--gpus-per-node must divide --dp ({plan.dp})")


def per_gpu(cost: Cost, plan: ParallelPlan, accounting: str | Accounting = "shapecalc") -> PerGpu:
    """The memory of one GPU of a training run laid out as ``plan``, from the
    single-device account ``cost`` (its dtype, optimizer, mixed precision, batch and
    sequence length); ``accounting``: ``shapecalc`` or ``deepspeed``, or an
    :class:`Accounting` with DeepSpeed's ``additional_buffer_factor`` and ``zero_init``."""
    ask = accounting if isinstance(accounting, Accounting) else Accounting(accounting)
    accounting = ask.name
    if cost.training == "none":
        raise plan_error(
            "--training",
            "none",
            "the per-GPU account prices a training step: give --training adam (or another)",
        )
    check_plan(plan, cost.model)
    if accounting == "megatron":
        return PerGpu(plan, accounting, tuple(_megatron(cost, plan)))
    if model_parallel(plan):
        if accounting == "deepspeed":
            raise plan_error(
                "--accounting",
                "deepspeed",
                "DeepSpeed's estimators price data parallelism alone: leave out --tp, --pp, "
                "--cp, --ep, or give --accounting shapecalc or megatron",
            )
        ts = list(rank_tensors(cost.model, plan))
    else:
        ts = list(tensors(cost.model))
    if accounting == "deepspeed":
        lines = list(_deepspeed(cost, ts, plan, ask.buffer_factor, ask.zero_init))
    else:
        lines = list(_shapecalc(cost, ts, plan))
    lines.extend(_activations(cost, plan, counted=accounting != "deepspeed"))
    return PerGpu(plan, accounting, tuple(lines))


def model_parallel(plan: ParallelPlan) -> bool:
    """Whether the plan splits the model within a data-parallel rank."""
    return plan.tp * plan.pp * plan.cp * plan.ep > 1


def rank_tensors(model: Model, plan: ParallelPlan) -> tuple[Tensor, ...]:
    """The tensors the most loaded tensor/pipeline/expert-parallel rank holds
    (:func:`shapecalc.analysis.model_parallel.rank_parameters`), each its local shape,
    before the data-parallel sharding."""
    from shapecalc.analysis.model_parallel import rank_parameters

    held = rank_parameters(model, plan).most_loaded
    rows = {row.name: row for row in model.rows()}
    out = []
    for t in held.tensors:
        if t.tied_to:
            continue
        row = rows.get(t.name)
        if row is None:  # a run of layers renamed to the stage's: its first layer's row
            row = next(r for r in model.rows() if _same_run(r.name, t.name))
        whole = math.prod(t.shape)
        local = math.prod(t.local)
        nbytes = 0
        if row.param.dtype:  # a dtype of its own (LoRA's float32, a quantized storage)
            copies = (known(row.count) or 0) // whole if whole else 1
            one = (known(row.param.nbytes(1)) or 0) // max(copies, 1)
            nbytes = one * local // whole if whole else 0
        out.append(Tensor(t.local, t.copies, row.param.trainable, nbytes, t.name))
    return tuple(out)


def _same_run(name: str, renamed: str) -> bool:
    """Whether ``renamed`` (``model.layers.{4..7}.mlp...``) is a stage's part of the run
    ``name`` (``model.layers.{0..7}.mlp...``): the same name around the layer numbers."""
    import re

    pattern = re.compile(r"\.(\{[^}]*\}|\d+)(?=\.)")
    return pattern.sub(".#", name) == pattern.sub(".#", renamed)


def _activations(cost: Cost, plan: ParallelPlan, *, counted: bool) -> Iterator[GpuLine]:
    if model_parallel(plan) or plan.recompute == "selective" or plan.sequence_parallel:
        from shapecalc.analysis.model_parallel import activation_bytes

        b, t = known(cost.batch), known(cost.seq_len or 0) or None
        if b is None or t is None:
            raise plan_error(
                "--batch", cost.batch, "the model-parallel activations need --batch and --seq-len"
            )
        found = activation_bytes(cost.model, plan, b, t, cost.activation_itemsize)
        held = ", ".join(
            f"{sum(x.bytes for x in lines):,} a {kind + ' ' if kind else ''}layer and "
            f"micro-batch × {n} in flight"
            for kind, lines, n in found.kinds
        )
        from shapecalc.analysis.lora_parallel import adapted

        whose = " for a LoRA model" if adapted(cost.model) else ""
        yield GpuLine(
            "activations",
            found.total,
            f"Korthikanti et al.{whose}, the first stage's: {held}, and the ends, "
            f"at {cost.describe_input()} per rank",
            counted=counted,
        )
        return
    again = cost.recomputed() if plan.recompute == "full" else None
    if plan.recompute == "full" and again is None:
        raise plan_error(
            "--recompute",
            "full",
            f"{cost.model.name} has no repeated blocks to recompute one at a time",
        )
    size = cost.activation_bytes if again is None else again.peak_bytes
    rule = f"kept for backward at {cost.describe_input()} per rank, not divided by dp"
    if again is not None:
        rule = f"each block recomputed in the backward, at {cost.describe_input()} per rank"
    if not counted:
        rule += "; DeepSpeed's estimate leaves them out"
    yield GpuLine("activations", size, rule, counted=counted)


def _megatron(cost: Cost, plan: ParallelPlan) -> Iterator[GpuLine]:
    """Megatron-LM's theoretical memory (``theoretical_memory_usage.py``): weights and
    optimizer at 18 bytes a parameter (6 + 12/dp with the distributed optimizer, which
    is ZeRO-1), activations by its selective-recomputation formula with sequence
    parallelism, else its ``s·b·h·(10 + 24/t)`` one; its floats rounded to the byte."""
    from shapecalc.analysis.model_parallel import (
        megatron_activation_memory,
        megatron_activation_memory_without_sp,
        megatron_args,
        megatron_weight_and_optimizer_memory,
    )

    if plan.fsdp or plan.zero > 1 or plan.offload_optimizer:
        raise plan_error(
            "--accounting",
            "megatron",
            "Megatron's formula knows its distributed optimizer (--zero 1) alone: leave out "
            "--zero 2/3, --fsdp and offload",
        )
    b, t = known(cost.batch), known(cost.seq_len or 0) or None
    if b is None or t is None:
        raise plan_error("--batch", cost.batch, "Megatron's formula needs --batch and --seq-len")
    args = megatron_args(cost.model, plan, b, t, distributed_optimizer=plan.zero == 1)
    states = megatron_weight_and_optimizer_memory(args)
    per = "6 + 12/dp" if plan.zero == 1 else "18"
    yield GpuLine(
        "weights and optimizer",
        round(states),
        f"{per} bytes a parameter of the most loaded shard (compute_weight_and_optimizer_memory)",
    )
    if plan.sequence_parallel and plan.recompute == "selective":
        act = megatron_activation_memory(args, plan.micro_batches)
        rule = "s·b·h·(18 + 4·F/h) a layer, the first stage, /t (compute_activation_memory)"
    else:
        act = megatron_activation_memory_without_sp(args, plan.micro_batches)
        rule = "s·b·h·(10 + 24/t) a layer, the first stage, ×1.05 (…_without_sp)"
    yield GpuLine("activations", round(act), rule)


def _shapecalc(cost: Cost, ts: list[Tensor], plan: ParallelPlan) -> Iterator[GpuLine]:
    from shapecalc.analysis.cost import OPTIMIZERS

    scheme, stage, n = _scheme(plan)
    b = cost.itemsize
    mixed = cost.mixed_precision
    trained = [t for t in ts if t.trainable]
    frozen = [t for t in ts if not t.trainable]
    how = {
        "fsdp": "each tensor's ⌈d₀/N⌉ rows (torch.chunk, padded)",
        "zero": "⌈n/N⌉ of each tensor" if stage == 3 else "⌈P/2N⌉·2 of the flat buffer",
        "none": "",
    }[scheme]
    nn = f", N = {n}" if n > 1 else ""

    def split(holds: bool, what: str) -> str:
        return f"{what}: {how}{nn}" if holds and scheme != "none" and n > 1 else f"{what}, whole"

    def own(size: int) -> str:
        """The trained tensors of a dtype of their own (LoRA's float32 adapters), when
        theirs is not ``size``."""
        sizes = {t.nbytes // t.numel for t in trained if t.nbytes and t.numel}
        sizes.discard(size)
        return "".join(f"; the adapters' {k} bytes (float32)" for k in sorted(sizes))

    params_cpu = plan.offload_parameters
    states_cpu = plan.offload_optimizer or (scheme == "fsdp" and plan.offload_parameters)
    quantization = getattr(cost.model, "quantization", None)
    stored = f"{b} bytes each ({cost.dtype})"
    if quantization is not None and any(t.nbytes not in (0, t.numel * b) for t in frozen):
        # the quantized tensors at their own bytes (nf4: half a byte a number, and scales)
        stored = f"{quantization.describe()}, the others {stored}"
    # the weights as the ranks keep them between steps
    if mixed and scheme == "fsdp":
        if frozen:
            yield GpuLine(
                "frozen weights",
                _weights(frozen, n, scheme, stage, b),
                split(True, stored),
                cpu=params_cpu,
            )
    else:
        copy = stored + own(b)
        if mixed:
            copy = f"{cost.dtype} copy for forward and backward, 2 bytes each" + own(2)
        yield GpuLine(
            "weights",
            _weights(ts, n, scheme, stage, b),
            split(stage == 3, copy),
            cpu=params_cpu,
        )
    if mixed:
        master = "fp32 master weights" + (", sharded parameters" if scheme == "fsdp" else "")
        # FSDP's sharded parameters are the trained tensors in float32 (its weights line
        # holds the frozen alone); elsewhere the weights line holds every tensor, so a
        # tensor kept in float32 already (LoRA's adapters) has no master copy
        master_of = trained if scheme == "fsdp" else [t for t in trained if not t.nbytes]
        yield GpuLine(
            "fp32 master weights",
            _sharded(master_of, n, scheme, stage, 4),
            split(stage >= 1, master.replace("fp32 master weights", "4 bytes each")),
            cpu=states_cpu,
        )
    buffers = cost.buffer_bytes
    if buffers != 0:
        yield GpuLine("buffers", buffers, "running statistics, whole on every rank")
    grad_size = 4 if mixed and scheme == "fsdp" else b
    yield GpuLine(
        "gradients",
        _sharded(trained, n if stage >= 2 else 1, scheme, stage, grad_size),
        split(stage >= 2, f"1 per trained parameter, {grad_size} bytes{own(grad_size)}"),
        cpu=states_cpu and stage >= 2,
    )
    states, _ = OPTIMIZERS[cost.training]
    state_size = 4 if mixed else b
    if cost.training in ("adamw-8bit", "paged-adamw-8bit"):
        if scheme == "zero":
            raise plan_error(
                "--training",
                cost.training,
                "bitsandbytes' 8-bit state is priced per tensor shard under FSDP, not in "
                "ZeRO's flat partitions: give --fsdp",
            )
        from shapecalc.adapt.optim import eight_bit_bytes

        shards = [((-(-t.rows // n), *t.shape[1:]) if t.shape else (), t.copies) for t in trained]
        state: int = eight_bit_bytes(shards) or 0
        rule = split(stage >= 1, "bitsandbytes' 8-bit state of each tensor")
    else:
        state = states * _sharded(trained, n, scheme, stage, state_size)
        steps = 0
        if states:
            steps = 4 * (1 if scheme == "zero" else sum(t.copies for t in trained))
        state += steps
        rule = split(
            stage >= 1, f"{states} per trained parameter, {state_size} bytes{own(state_size)}"
        )
        if steps:
            rule += (
                "; a 4-byte step for the flat partition"
                if scheme == "zero"
                else "; a 4-byte step per tensor"
            )
    yield GpuLine("optimizer state", state, rule, cpu=states_cpu)
    gathered = _gathered(cost, ts, plan, scheme, n)
    if gathered is not None:
        yield gathered


def _gathered(
    cost: Cost, ts: list[Tensor], plan: ParallelPlan, scheme: str, n: int
) -> GpuLine | None:
    """The parameters gathered whole while a unit computes (and its gradients before
    they are reduced and scattered)."""
    b = cost.itemsize
    split = model_parallel(plan)
    if scheme == "zero" and plan.zero == 3:
        largest = max((t.numel for t in ts), default=0) if split else largest_layer(cost.model)
        if split:
            return GpuLine(
                "gathered for compute",
                2 * b * largest,
                f"the rank's largest tensor, {largest:,} numbers, and its gradient whole, "
                f"{b} bytes each, one layer at a time",
            )
        return GpuLine(
            "gathered for compute",
            2 * b * largest,
            f"the largest layer's {largest:,} parameters and gradients whole, "
            f"{b} bytes each, one layer at a time",
        )
    if scheme != "fsdp" or n == 1:
        return None
    return fsdp_gathered(cost.model, ts, plan.fsdp or "full", n, b, b)


def fsdp_gathered(
    model: Model,
    ts: list[Tensor],
    mode: str,
    n: int,
    itemsize: int,
    reduce_itemsize: int,
    reshard_to: int = 0,
) -> GpuLine:
    """FSDP2's peak of unsharded tensors over a step
    (:mod:`shapecalc.analysis.fsdp_gather`), as a line of the account;
    ``reshard_to``: ``reshard_after_forward`` as a number of ranks."""
    from shapecalc.analysis.fsdp_gather import fsdp_units, gathered_peak

    units = fsdp_units(model, ts, n, mode, reshard_to)
    peak = gathered_peak(units, itemsize, reduce_itemsize)
    return GpuLine("gathered for compute", peak.bytes, peak.describe(itemsize, mode))


def largest_layer(model: Model) -> int:
    """The most parameters one module holds itself (DeepSpeed's ``largest_layer_params``:
    ``sum(p.numel() for p in m.parameters(recurse=False))``, a shared tensor in each
    module that holds it)."""
    best = 0
    for layer in model.layers:
        own = sum((p.count for p in layer.spec.params()), start=0)
        value = known(own)
        if value is not None:
            best = max(best, value)
    return best


def _deepspeed(
    cost: Cost, ts: list[Tensor], plan: ParallelPlan, factor: float, zero_init: bool
) -> Iterator[GpuLine]:
    """DeepSpeed's estimators, each term its own line, the same integer arithmetic."""
    if plan.zero not in (2, 3):
        raise plan_error(
            "--accounting",
            "deepspeed",
            "DeepSpeed estimates ZeRO-2 and ZeRO-3 only (estimate_zero2/3_model_states_"
            "mem_needs): give --zero 2 or 3",
        )
    if plan.offload_parameters and not plan.offload_optimizer:
        raise plan_error(
            "--offload-parameters",
            True,
            "DeepSpeed's ZeRO-3 estimate offloads parameters with the optimizer: add "
            "--offload-optimizer",
        )
    total = sum(t.copies * t.numel for t in ts)
    gpus = plan.dp
    per_node = plan.gpus_per_node or gpus
    nodes = gpus // per_node
    off = plan.offload_optimizer
    if plan.zero == 2:
        if off:
            yield GpuLine("fp16 parameters", 2 * total, "2·P")
            cpu = total * max(4 * gpus, 16) * factor
            yield GpuLine("CPU memory", int(cpu), f"P·max(4·N, 16)·{factor:g}", cpu=True)
        else:
            yield GpuLine("fp16 parameters", 2 * total, "2·P")
            yield GpuLine(
                "sharded states",
                int(18 * total / gpus),
                "int(18·P/N): fp16 and fp32 gradients, fp32 master, Adam's two states",
            )
            cpu = total * 4 * per_node * factor
            yield GpuLine("CPU memory", int(cpu), f"P·4·gpus per node·{factor:g}", cpu=True)
        return
    largest = largest_layer(cost.model)
    yield GpuLine("largest layer", 4 * largest, f"4·{largest:,} (the largest layer's)")
    gpus_factor = 1 / nodes
    if off and plan.offload_parameters:
        cpu = (
            total * 18 * gpus_factor * factor
            if zero_init
            else total * max(4 * per_node, 18 * gpus_factor) * factor
        )
    elif off:
        yield GpuLine("sharded fp16 parameters", int(2 * total / gpus), "int(2·P/N)")
        cpu = (
            total * 16 * gpus_factor * factor
            if zero_init
            else total * max(4 * per_node, 16 * gpus_factor) * factor
        )
    else:
        yield GpuLine(
            "sharded states",
            int(18 * total / gpus),
            "int(18·P/N): fp16 parameters and gradients, fp32 gradients, master, Adam",
        )
        cpu = largest * 4 * per_node * factor if zero_init else total * 4 * per_node * factor
    init = "zero_init" if zero_init else "no zero_init"
    yield GpuLine("CPU memory", int(cpu), f"DeepSpeed's CPU figure ({init}, ×{factor:g})", cpu=True)


def rank_state(cost: Cost, plan: ParallelPlan, rank: int) -> dict[str, int]:
    """The bytes rank ``rank`` holds between steps under FSDP, as torch stores them:
    ``parameters`` and ``gradients`` (padded shards, the same on every rank), and the
    ``optimizer state`` (``zeros_like`` the unpadded shard, and a 4-byte ``step`` per
    tensor); for the truth tests and for a user who asks about one rank."""
    from shapecalc.analysis.cost import OPTIMIZERS

    scheme, stage, n = _scheme(plan)
    if scheme != "fsdp":
        raise plan_error("--fsdp", plan.fsdp, "one rank's shards are given under FSDP")
    ts = tensors(cost.model)
    b = cost.itemsize
    master = 4 if cost.mixed_precision else b  # FSDP's sharded parameters are the master
    states, _ = OPTIMIZERS[cost.training]
    trained = [t for t in ts if t.trainable]
    frozen = [t for t in ts if not t.trainable]
    here = rank % n  # hybrid: the rank's place in its shard group (the mesh's last dim)
    own = sum(
        t.copies * shard_rows(t.rows, n, here) * (t.numel // t.rows if t.rows else 0)
        for t in trained
    )
    return {
        "parameters": _sharded(trained, n, scheme, stage, master)
        + _weights(frozen, n, scheme, stage, b),
        "gradients": _sharded(trained, n, scheme, stage, master),
        "optimizer state": states * own * master
        + (4 * sum(t.copies for t in trained) if states else 0),
    }


def fewest_dp(
    cost: Cost, plan: ParallelPlan, capacity: int, accounting: str | Accounting = "shapecalc"
) -> int | None:
    """The fewest data-parallel ranks (GPUs) whose per-GPU account fits in
    ``capacity`` bytes; None when no number of ranks up to :data:`MOST_DP` does (what
    is not sharded, activations among it, never shrinks). The account shrinks as the
    ranks grow but for the padding of a gathered unit (fewer than N rows a tensor), so
    the search doubles, then bisects."""

    def fits(dp: int) -> bool:
        total = per_gpu(cost, _at(plan, dp), accounting).gpu_bytes
        value = known(total)
        if value is None:
            raise plan_error("--batch", cost.batch, "fit needs --batch and --seq-len numbers")
        return value <= capacity

    low = 1
    if fits(low):
        return low
    high = 2
    while high <= MOST_DP and not fits(high):
        low, high = high, high * 2
    if high > MOST_DP:
        return None
    while high - low > 1:  # fits(high), not fits(low); the account shrinks as dp grows
        mid = (low + high) // 2
        low, high = (low, mid) if fits(mid) else (mid, high)
    return high


def _at(plan: ParallelPlan, dp: int) -> ParallelPlan:
    """The plan at ``dp`` ranks (a hybrid group, and the ranks per node, kept)."""
    nodes = plan.gpus_per_node if plan.gpus_per_node and dp % plan.gpus_per_node == 0 else 0
    group = plan.shard_group
    if plan.fsdp == "hybrid":
        return replace(plan, dp=dp, gpus_per_node=nodes, shard_group=group)
    return replace(plan, dp=dp, gpus_per_node=nodes)


def explain(per: PerGpu) -> tuple[str, ...]:
    """The ``--explain`` lines of a per-GPU account: the formulas of its accounting and
    where the two accountings differ, with the numbers of this model."""
    plan = per.plan
    scheme, stage, n = _scheme(plan)
    lines = [
        "P: the parameters, shared tensors once; N: the ranks a shard is taken over "
        f"(here {n}); b: bytes of the weights' dtype; the figure is the most loaded rank's.",
    ]
    if per.accounting == "deepspeed":
        lines += [
            "DeepSpeed's estimators (deepspeed/runtime/zero/stage_1_and_2.py "
            "estimate_zero2_model_states_mem_needs, stage3.py "
            "estimate_zero3_model_states_mem_needs), their integer arithmetic: ZeRO-2 "
            "GPU 2·P + int(18·P/N), or 2·P with the optimizer offloaded; ZeRO-3 GPU "
            "4·largest layer + int(18·P/N), + int(2·P/N) with the optimizer offloaded, "
            "nothing more with the parameters offloaded too.",
            "18 bytes a parameter: fp16 and fp32 gradients (2 + 4), fp32 master (4) and "
            "Adam's two states (8), whatever --dtype and --training say; activations are "
            "left out (shown, not added).",
            "shapecalc's accounting differs: it prices --dtype, --training and "
            "--mixed-precision as given (gradients kept once, at the compute dtype: "
            "16 bytes a parameter with Adam), rounds each shard up as the libraries "
            "partition, and adds the activations.",
        ]
        return tuple(lines)
    if per.accounting == "megatron":
        lines += [
            "Megatron-LM's theoretical memory (megatron/training/theoretical_memory_usage.py):"
            " the most loaded shard's parameters (first pipeline stage, vocabulary padded to "
            "128·tp) at 18 bytes each (bf16 weights, fp32 gradients, master and Adam), 6 + "
            "12/dp with its distributed optimizer (--zero 1), whatever --dtype and "
            "--training say.",
            "Activations: s·b·h·(18 + 4·F/h) a layer with sequence parallelism and "
            "selective recomputation, else s·b·h·(10 + 24/t) ×1.05; for the first stage.",
            "shapecalc's accounting differs: it prices the dtype and optimizer as given, "
            "keeps each rank's tensors as they split, and takes the activations term by "
            "term (grouped-query attention, gated MLPs, full recomputation).",
        ]
        return tuple(lines)
    if any(x.label == "activations" and "for a LoRA model" in x.rule for x in per.lines):
        from shapecalc.analysis.lora_parallel import EXPLAIN

        lines.append(EXPLAIN)
    if model_parallel(plan):
        lines.append(
            "Each rank first holds its tensor-, pipeline- and expert-parallel share (Megatron's"
            " split, the first stage's layers, the vocabulary padded to 128·tp); data "
            "parallelism shards that share."
        )
    if scheme == "none":
        lines.append("Nothing is sharded: every rank holds the single-device account.")
    elif scheme == "zero":
        what = {1: "optimizer state and fp32 master", 2: "and gradients", 3: "and parameters"}
        lines.append(
            f"ZeRO-{stage} shards the {what[1]}"
            + (f", {what[2]}" if stage >= 2 else "")
            + (f", {what[3]}" if stage == 3 else "")
            + (
                ": one flat buffer padded to 2·N numbers, ⌈P/2N⌉·2 a rank"
                if stage < 3
                else ": each tensor padded to N, ⌈n/N⌉ of it a rank"
            )
            + " (DeepSpeed's partitioning)."
        )
    else:
        lines.append(
            "FSDP shards every tensor by rows as torch.chunk does: ⌈d₀/N⌉ rows a rank, the "
            "last ranks fewer or none; parameters and gradients are allocated padded to "
            "⌈d₀/N⌉·rest on every rank, the optimizer state on the unpadded shard."
        )
        lines.append(
            "Gathered for compute (FSDP2, wrapped as transformers and accelerate wrap it: the "
            "embedding, each block, the final norm and head kept, the root): the peak over a "
            "step of the units' unsharded parameters, their all-gather buffers (the forward's "
            "kept to the next copy-out, the backward's prefetched one unit ahead), the "
            "unsharded gradients and the reduce-scatter input kept to the next unit's, each "
            "padded to ⌈d₀/N⌉·N rows at the compute dtype; not the allocator's caching."
        )
    lines.append(
        "Against DeepSpeed's estimate (--accounting deepspeed): it counts fp32 gradients "
        "besides the compute-dtype ones (18 bytes a parameter, not 16), keeps no ZeRO-1 "
        "estimate, and leaves the activations out."
    )
    return tuple(lines)


#: a parallel sweep's points at most
MOST_PLANS = 2_000
#: the plan fields a parallel sweep may vary, as their flags
SWEPT = {"dp": "--dp", "tp": "--tp", "pp": "--pp", "cp": "--cp", "ep": "--ep", "zero": "--zero"}


@dataclass(frozen=True)
class PlanSweep:
    """The per-GPU account at each plan of a grid: the fields that vary (name, values),
    and each point's values and account."""

    axes: tuple[tuple[str, tuple[int | str, ...]], ...]
    points: tuple[tuple[tuple[int | str, ...], PerGpu], ...]

    @staticmethod
    def summary(per: PerGpu) -> dict[str, Dim]:
        """The point's columns: the model states (weights, gradients, optimizer state,
        buffers), what is gathered while computing, the activations, the GPU and CPU
        totals."""
        gathered = sum((x.bytes for x in per.lines if x.label == "gathered for compute"), start=0)
        activations = sum(
            (x.bytes for x in per.lines if x.label == "activations" and x.counted), start=0
        )
        states = per.gpu_bytes - gathered - activations
        return {
            "states": states,
            "gathered": gathered,
            "activations": activations,
            "per GPU": per.gpu_bytes,
            "CPU": per.cpu_bytes,
        }


def sweep_plans(
    cost: Cost,
    base: ParallelPlan,
    varying: dict[str, tuple[int | str, ...]],
    accounting: str | Accounting = "shapecalc",
) -> PlanSweep:
    """The per-GPU account of ``cost`` at every plan of the grid ``varying`` (plan field
    -> values: dp, tp, pp, cp, ep, zero, fsdp) over ``base``; a plan that breaks a rule
    is refused as it would be alone, naming its flag."""
    import itertools

    if not varying:
        raise plan_error("--dp", base.dp, "a parallel sweep varies a size: give a list (1,2,4)")
    points = 1
    for values in varying.values():
        points *= len(values)
    if points > MOST_PLANS:
        raise plan_error(
            "--" + next(iter(varying)),
            points,
            f"a parallel sweep has at most {MOST_PLANS:,} plans; this grid has {points:,}",
        )
    out = []
    for values in itertools.product(*varying.values()):
        fields: dict[str, int | str | None] = dict(zip(varying, values, strict=True))
        if fields.get("fsdp") == "none":
            fields["fsdp"] = None
        plan = replace(base, **fields)  # type: ignore[arg-type]
        out.append((tuple(values), per_gpu(cost, plan, accounting)))
    return PlanSweep(tuple(varying.items()), tuple(out))
