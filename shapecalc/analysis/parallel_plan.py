"""How a training run is laid out over GPUs: the sizes of each kind of parallelism and the
sharding of the replicated state, as one value every per-GPU account reads.

The data-parallel side (ZeRO stages, FSDP, offload; :mod:`shapecalc.analysis.parallel`)
and the model-parallel side (tensor, sequence, context, pipeline and expert parallelism;
:mod:`shapecalc.analysis.model_parallel`) both take a :class:`ParallelPlan`. The product
of ``dp``, ``tp``, ``pp`` and ``cp`` is the number of GPUs; expert parallelism splits the
experts over ranks drawn from data and context parallelism, as Megatron-LM does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shapecalc.core.errors import InvalidArgumentError

__all__ = ["FSDP_MODES", "RECOMPUTE", "ZERO_STAGES", "ParallelPlan", "plan_error"]

#: DeepSpeed's ZeRO stages: 0 nothing sharded, 1 optimizer state, 2 and gradients,
#: 3 and the parameters
ZERO_STAGES = (0, 1, 2, 3)
#: FSDP's sharding strategies (torch's ShardingStrategy, lower-cased, dashes): full is
#: ZeRO-3, grad-op ZeRO-2, hybrid full sharding within a node and replication across
FSDP_MODES = ("full", "grad-op", "hybrid", "no-shard")
#: activation recomputation as Megatron-LM names it: none, selective (attention's core
#: recomputed), full (each layer's input kept, the rest recomputed)
RECOMPUTE = ("none", "selective", "full")


def plan_error(flag: str, value: Any, rule: str) -> InvalidArgumentError:
    """An error naming the flag (``--tp`` ...) the value came from and the rule it broke."""
    return InvalidArgumentError(rule, layer="parallel", field=flag, value=value, rule=rule)


@dataclass(frozen=True)
class ParallelPlan:
    """The sizes of a training run's parallelism; every size 1 is one GPU.

    ``zero`` and ``fsdp`` say how the data-parallel ranks shard what each would otherwise
    hold whole; at most one of them is set (``fsdp`` is None when ``zero`` is used).
    """

    #: data-parallel ranks (replicas, or shards under ZeRO / FSDP)
    dp: int = 1
    #: tensor-parallel ranks: each layer's matrices split by rows or columns
    tp: int = 1
    #: pipeline stages: the layers split into consecutive groups
    pp: int = 1
    #: context-parallel ranks: the sequence split, attention exchanging keys and values
    cp: int = 1
    #: expert-parallel ranks: a mixture's experts split over ranks
    ep: int = 1
    #: sequence parallelism (Megatron): the norms' and dropouts' activations split over
    #: the tensor-parallel ranks
    sequence_parallel: bool = False
    #: virtual pipeline stages per rank (interleaved schedule); 1 is not interleaved
    virtual_stages: int = 1
    #: micro-batches per step (pipeline schedules hold up to ``pp`` of them in flight)
    micro_batches: int = 1
    #: ZeRO stage 0-3 (DeepSpeed's accounting)
    zero: int = 0
    #: FSDP's strategy, or None
    fsdp: str | None = None
    #: ranks one hybrid-FSDP shard group spans (a node's GPUs); 0 when not hybrid
    shard_group: int = 0
    #: the optimizer state (and, with ZeRO-3 / FSDP full, the parameters) held in CPU memory
    offload_optimizer: bool = False
    offload_parameters: bool = False
    #: activation recomputation: none, selective or full
    recompute: str = "none"
    #: GPUs of one node (DeepSpeed's ``num_gpus_per_node``); 0: every rank on one node
    gpus_per_node: int = 0
    #: the layers of the first and last pipeline stages when the split is uneven
    #: (Megatron's ``--decoder-first/last-pipeline-num-layers``); None: L/pp each
    first_stage_layers: int | None = None
    last_stage_layers: int | None = None

    def __post_init__(self) -> None:
        for flag, value in (
            ("--dp", self.dp),
            ("--tp", self.tp),
            ("--pp", self.pp),
            ("--cp", self.cp),
            ("--ep", self.ep),
            ("--virtual-stages", self.virtual_stages),
            ("--micro-batches", self.micro_batches),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise plan_error(flag, value, f"{flag} must be a whole number of at least 1")
        if (
            isinstance(self.gpus_per_node, bool)
            or not isinstance(self.gpus_per_node, int)
            or self.gpus_per_node < 0
        ):
            raise plan_error(
                "--gpus-per-node",
                self.gpus_per_node,
                "--gpus-per-node must be a whole number of at least 1",
            )
        if self.zero not in ZERO_STAGES:
            raise plan_error("--zero", self.zero, "--zero must be 0, 1, 2 or 3")
        if self.fsdp is not None and self.fsdp not in FSDP_MODES:
            raise plan_error("--fsdp", self.fsdp, f"--fsdp must be one of {', '.join(FSDP_MODES)}")
        if self.fsdp is not None and self.zero:
            raise plan_error(
                "--fsdp", self.fsdp, "--fsdp and --zero are two ways to shard: give one"
            )
        if self.recompute not in RECOMPUTE:
            raise plan_error(
                "--recompute", self.recompute, f"--recompute must be one of {', '.join(RECOMPUTE)}"
            )
        if self.sequence_parallel and self.tp == 1:
            raise plan_error(
                "--sequence-parallel",
                True,
                "sequence parallelism splits over --tp: give --tp 2 or more",
            )
        if self.virtual_stages > 1 and self.pp == 1:
            raise plan_error(
                "--virtual-stages",
                self.virtual_stages,
                "an interleaved schedule needs pipeline stages: give --pp 2 or more",
            )
        for flag, layers in (
            ("--first-stage-layers", self.first_stage_layers),
            ("--last-stage-layers", self.last_stage_layers),
        ):
            if layers is None:
                continue
            if isinstance(layers, bool) or not isinstance(layers, int) or layers < 1:
                raise plan_error(flag, layers, f"{flag} must be a whole number of at least 1")
            if self.pp == 1:
                raise plan_error(
                    flag, layers, f"{flag} sizes a pipeline stage: give --pp 2 or more"
                )
        if self.ep > 1 and (self.dp * self.cp) % self.ep:
            raise plan_error(
                "--ep",
                self.ep,
                f"--ep must divide the data- and context-parallel ranks ({self.dp * self.cp}),"
                " which expert parallelism draws from",
            )

    @property
    def gpus(self) -> int:
        """The GPUs of the run: data × tensor × pipeline × context parallel ranks."""
        return self.dp * self.tp * self.pp * self.cp

    @property
    def sharded(self) -> bool:
        """Whether the data-parallel ranks shard anything (ZeRO 1-3 or FSDP but no-shard)."""
        return self.zero > 0 or self.fsdp not in (None, "no-shard")
