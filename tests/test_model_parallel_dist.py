"""Tensor parallelism run for real: ``torch.distributed`` with gloo in four CPU processes
(tests/tp_worker.py), torch's ``parallelize_module`` splitting a transformers LLaMA as its
config class's ``base_model_tp_plan`` says and the vocabulary as Megatron does, on 4 ranks
and on the 2-rank tensor-parallel groups of a 2 × 2 mesh: every rank's every local
parameter shape is the one :func:`tensor_splits` gives."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from shapecalc.adapters.hf_config import from_hf_config
from shapecalc.analysis.model_parallel import tensor_splits
from shapecalc.analysis.parallel_plan import ParallelPlan
from shapecalc.core.tree import run_indices

WORKER = Path(__file__).with_name("tp_worker.py")
WORLD = 4


@st.composite
def llama_configs(draw: st.DrawFn, tp: int) -> dict[str, Any]:
    kv = tp * draw(st.integers(1, 2))
    heads = kv * draw(st.integers(1, 2))
    return {
        "model_type": draw(st.sampled_from(["llama", "qwen2", "mistral"])),
        "vocab_size": tp * draw(st.integers(4, 40)),
        "hidden_size": heads * 4,
        "num_attention_heads": heads,
        "num_key_value_heads": kv,
        "num_hidden_layers": draw(st.integers(1, 2)),
        "intermediate_size": tp * draw(st.integers(1, 12)),
        "tie_word_embeddings": False,
    }


def _expanded(model: Any, tp: int) -> dict[str, list[int]]:
    """Our per-rank shape of every tensor, a run's name expanded layer by layer."""
    out: dict[str, list[int]] = {}
    for row, _, local in tensor_splits(model, ParallelPlan(tp=tp), vocab_multiple=1):
        parts = row.name.split(".")
        runs = [i for i, part in enumerate(parts) if part.startswith("{")]
        if not runs:
            out[row.name] = list(local)
            continue
        numbers = run_indices(parts[runs[0]])
        assert numbers is not None
        for n in numbers:
            out[".".join([*parts[: runs[0]], str(n), *parts[runs[0] + 1 :]])] = list(local)
    return out


@settings(max_examples=1, deadline=None)
@given(llama_configs(WORLD), llama_configs(2))
def test_local_shapes_on_gloo(four: dict[str, Any], two: dict[str, Any]) -> None:
    import tempfile

    cases = json.dumps([[WORLD, four], [2, two]])
    with tempfile.TemporaryDirectory() as folder:
        init = os.path.join(folder, "init")
        procs = [
            subprocess.Popen(
                [sys.executable, str(WORKER), str(rank), str(WORLD), init, cases],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env={**os.environ, "OMP_NUM_THREADS": "1"},
            )
            for rank in range(WORLD)
        ]
        outputs = [p.communicate(timeout=300) for p in procs]
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err[-2000:]
        lines = out.strip().splitlines()
        for (tp, config), line in zip(json.loads(cases), lines, strict=True):
            theirs = json.loads(line)
            ours = _expanded(from_hf_config(config), tp)
            assert list(ours) == list(theirs)
            assert ours == theirs
