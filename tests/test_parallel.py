"""The per-GPU training account under data parallelism (shapecalc.analysis.parallel)
against real sharding: FSDP2 over gloo on CPU, 2 and 4 ranks, after an Adam step."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from shapecalc.analysis.cost import analyze
from shapecalc.analysis.parallel import per_gpu, rank_state, shard_rows
from shapecalc.analysis.parallel_plan import ParallelPlan
from shapecalc.architectures import get

pytest.importorskip("torch.distributed.fsdp")


@st.composite
def configs(draw: Any) -> dict[str, Any]:
    """A tiny LLaMA whose first dimensions rarely divide the ranks: uneven shards, ranks
    holding no rows of a tensor."""
    heads = draw(st.sampled_from([1, 2, 3]))
    sizes = {
        "vocab": draw(st.integers(3, 41)),
        "hidden": heads * 2 * draw(st.integers(1, 3)),  # rotary halves: even head_dim
        "layers": draw(st.integers(1, 2)),
        "heads": heads,
        "intermediate": draw(st.integers(1, 13)),
        "tie_weights": draw(st.booleans()),
    }
    return {
        "architecture": "llama",
        "sizes": sizes,
        "mode": draw(st.sampled_from(["full", "grad-op", "hybrid"])),
        "shard_group": 2,
        "mixed": draw(st.booleans()),
        "batch": draw(st.integers(1, 2)),
        "seq_len": draw(st.integers(1, 5)),
    }


def ours(config: dict[str, Any], world: int, rank: int) -> dict[str, int]:
    model = get(config["architecture"])(**config["sizes"]).model()
    mixed = config["mixed"]
    cost = analyze(
        model,
        batch=config["batch"],
        seq_len=config["seq_len"],
        dtype="bf16" if mixed else "fp32",
        mixed_precision=mixed,
        training="adam",
    )
    group = config["shard_group"] if config["mode"] == "hybrid" else 0
    plan = ParallelPlan(dp=world, fsdp=config["mode"], shard_group=group)
    found = rank_state(cost, plan, rank)
    if rank == 0:  # the per-GPU account is the first rank's, the most loaded
        lines = {x.label: x.bytes for x in per_gpu(cost, plan).lines}
        assert found == {
            "parameters": lines["fp32 master weights" if mixed else "weights"],
            "gradients": lines["gradients"],
            "optimizer state": lines["optimizer state"],
        }
    return found


@pytest.mark.parametrize("world", [2, 4])
@settings(
    max_examples=1,
    phases=(Phase.explicit, Phase.generate),  # each example spawns ranks: no shrinking
    database=None,
    suppress_health_check=list(HealthCheck),
)
@given(st.lists(configs(), min_size=4, max_size=4))
def test_fsdp2_ranks_hold_what_the_account_says(world: int, drawn: list[dict[str, Any]]) -> None:
    from tests.fsdp_truth import held

    if world == 2:  # a hybrid group of 2 over 2 ranks is one group: full sharding
        drawn = [{**c, "mode": "full"} if c["mode"] == "hybrid" else c for c in drawn]
    measured = held(world, drawn)
    for rank, results in enumerate(measured):
        for config, real in zip(drawn, results, strict=True):
            assert ours(config, world, rank) == real, (rank, config)


@given(st.integers(0, 50), st.integers(1, 9))
def test_shard_rows_is_torch_chunk(rows: int, n: int) -> None:
    import torch

    chunks = torch.arange(rows).chunk(n) if rows else ()
    expected = [len(c) for c in chunks] + [0] * (n - len(chunks))
    assert [shard_rows(rows, n, r) for r in range(n)] == expected
