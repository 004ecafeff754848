"""The FSDP "gathered for compute" line (shapecalc.analysis.fsdp_gather) against real
FSDP2 runs over gloo on CPU, 2 and 4 ranks: each rank's peak of unsharded parameters,
all-gather buffers, unsharded gradients and reduce-scatter inputs over a forward and a
backward (tests/fsdp_gathered_truth.py), for drawn tiny LLaMAs, strategies, mixed
precision, reduce dtypes and ``reshard_after_forward`` as a number of ranks."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from shapecalc.analysis.cost import analyze
from shapecalc.analysis.fsdp_gather import fsdp_units, gathered_peak
from shapecalc.analysis.parallel import fsdp_gathered, per_gpu, tensors
from shapecalc.analysis.parallel_plan import ParallelPlan
from shapecalc.architectures import get

pytest.importorskip("torch.distributed.fsdp")


@st.composite
def configs(draw: Any) -> dict[str, Any]:
    """A tiny LLaMA whose first dimensions rarely divide the ranks (padding), tied or
    not, with 1 to 3 blocks."""
    heads = draw(st.sampled_from([1, 2]))
    mixed = draw(st.booleans())
    return {
        "architecture": "llama",
        "sizes": {
            "vocab": draw(st.integers(3, 41)),
            "hidden": heads * 2 * draw(st.integers(1, 3)),
            "layers": draw(st.integers(1, 3)),
            "heads": heads,
            "intermediate": draw(st.integers(1, 13)),
            "tie_weights": draw(st.booleans()),
        },
        "mode": draw(st.sampled_from(["full", "grad-op", "hybrid"])),
        "shard_group": 2,
        "mixed": mixed,
        "reduce_fp32": mixed and draw(st.booleans()),
        # reshard_after_forward=2 (ranks) under full sharding over 4 ranks
        "reshard_to": draw(st.sampled_from([0, 2])),
        "batch": draw(st.integers(1, 2)),
        "seq_len": draw(st.integers(1, 4)),
    }


def ours(config: dict[str, Any], world: int) -> int:
    model = get(config["architecture"])(**config["sizes"]).model()
    n = config["shard_group"] if config["mode"] == "hybrid" else world
    size = 2 if config["mixed"] else 4
    reduce = 4 if config["reduce_fp32"] else size
    line = fsdp_gathered(
        model, list(tensors(model)), config["mode"], n, size, reduce, config["reshard_to"]
    )
    # the account's own line: reduced in the compute dtype, resharded to all the ranks
    if not config["reduce_fp32"] and not config["reshard_to"]:
        cost = analyze(
            model,
            batch=config["batch"],
            seq_len=config["seq_len"],
            dtype="bf16" if config["mixed"] else "fp32",
            mixed_precision=config["mixed"],
            training="adam",
        )
        group = config["shard_group"] if config["mode"] == "hybrid" else 0
        plan = ParallelPlan(dp=world, fsdp=config["mode"], shard_group=group)
        lines = {x.label: x for x in per_gpu(cost, plan).lines}
        assert lines["gathered for compute"] == line
    return line.bytes


@pytest.mark.parametrize("world", [2, 4])
@settings(
    max_examples=1,
    phases=(Phase.explicit, Phase.generate),  # each example spawns ranks: no shrinking
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
@given(st.lists(configs(), min_size=3, max_size=3))
def test_fsdp2_peak_gathered_is_the_account(world: int, drawn: list[dict[str, Any]]) -> None:
    from tests.fsdp_gathered_truth import gathered

    if world == 2:  # a hybrid group of 2 over 2 ranks is one group: full sharding
        drawn = [{**c, "mode": "full"} if c["mode"] == "hybrid" else c for c in drawn]
    # resharding to 2 of the ranks: over 4, under full sharding (2 of 2 is True)
    drawn = [c if world == 4 and c["mode"] == "full" else {**c, "reshard_to": 0} for c in drawn]
    measured = gathered(world, drawn)
    for config, *real in zip(drawn, *measured, strict=True):
        expected = ours(config, world)
        for rank, result in enumerate(real):
            assert result["peak"] == expected, (rank, result["where"], config)


def test_the_walk_on_a_worked_example() -> None:
    """vocab 13, hidden 4, 2 blocks, intermediate 5, untied, N = 2, fp32: a block
    gathers 140 numbers (q, k, v, o 4 rows each; gate and up 5 rows padded to 6; down;
    two norms), 132 unpadded; the peak is the second block's backward (model.layers.1,
    the first block to run backward): its parameters and gradients, model.layers.0's
    prefetched all-gather and the tail's reduce-scatter input (60 numbers: the norm and
    the head's 13 rows padded to 14)."""
    model = get("llama")(vocab=13, hidden=4, layers=2, heads=1, intermediate=5).model()
    units = fsdp_units(model, list(tensors(model)), 2, "full")
    names = [u.name for u in units]
    assert names == ["model.embed_tokens", "model.layers.0", "model.layers.1", "final norm + head"]
    assert [(u.numbers, u.grads, u.reshard) for u in units] == [
        (56, 52, True),
        (140, 132, True),
        (140, 132, True),
        (60, 56, False),
    ]
    peak = gathered_peak(units, 4, 4)
    assert peak.bytes == 4 * (140 + 132 + 140 + 60) == 1888
    assert peak.at == "model.layers.1's backward"
    assert {(u, w) for u, w, _ in peak.held} == {
        ("final norm + head", "reduce-scatter input"),
        ("model.layers.1", "parameters"),
        ("model.layers.1", "gradients"),
        ("model.layers.0", "all-gather buffer"),
    }


def test_reshard_to_must_divide_the_ranks() -> None:
    from shapecalc.core.errors import InvalidArgumentError

    model = get("llama")(vocab=13, hidden=4, layers=2, heads=1, intermediate=5).model()
    with pytest.raises(InvalidArgumentError, match="must divide the 4 ranks"):
        fsdp_units(model, list(tensors(model)), 4, "full", 3)
    one = fsdp_units(model, list(tensors(model)), 4, "full", 1)  # FSDP2 takes 1 as False
    assert one == fsdp_units(model, list(tensors(model)), 4, "grad-op")
    whole = fsdp_units(model, list(tensors(model)), 4, "full", 4)  # and N as True
    assert whole == fsdp_units(model, list(tensors(model)), 4, "full")
