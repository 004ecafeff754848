"""The generated parts of docs/howto/model-parallel.md: Llama 2 7B on 4 × 2 GPUs as the
command prints it, and the same run as Megatron-LM's theoretical memory prices it."""

from __future__ import annotations

LLAMA_7B = [
    "llama", "--vocab", "32000", "--hidden", "4096", "--layers", "32", "--heads", "32",
    "--intermediate", "11008",
]  # fmt: skip
RUN = [
    "--tp", "4", "--pp", "2", "--sequence-parallel", "--recompute", "selective",
    "--micro-batches", "8", "--batch", "1", "--seq-len", "4096", "--dtype", "bf16",
]  # fmt: skip
LORA = ["--lora-rank", "16", "--lora-targets", "q_proj,v_proj"]

MIXTRAL = [
    "llama", "--vocab", "32000", "--hidden", "4096", "--layers", "32", "--heads", "32",
    "--kv-heads", "8", "--intermediate", "14336", "--experts", "8", "--experts-per-token", "2",
]  # fmt: skip
MOE_RUN = [
    "--tp", "2", "--ep", "8", "--dp", "8", "--pp", "4", "--sequence-parallel",
    "--micro-batches", "8", "--batch", "1", "--seq-len", "4096", "--dtype", "bf16",
    "--memory",
]  # fmt: skip


def _from(text: str, start: str) -> str:
    lines = text.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith(start))
    return "\n".join(lines[first:])


def model_parallel_facts() -> dict[str, str]:
    from docs_facts import cli

    from shapecalc.analysis.model_parallel import (
        activation_bytes,
        megatron_activation_memory,
        megatron_args,
        megatron_weight_and_optimizer_memory,
        rank_parameters,
    )
    from shapecalc.analysis.parallel_plan import ParallelPlan
    from shapecalc.architectures.llama import llama

    shapes = cli([*LLAMA_7B, *RUN[:4], *RUN[-6:-2], "--shapes"], 80)
    memory = cli([*LLAMA_7B, *RUN, "--memory"], 80)
    model = llama(vocab=32000, hidden=4096, layers=32, heads=32, intermediate=11008)
    plan = ParallelPlan(tp=4, pp=2, sequence_parallel=True, recompute="selective", micro_batches=8)
    ours = rank_parameters(model, plan)
    args = megatron_args(model, plan, 1, 4096)
    theirs = megatron_weight_and_optimizer_memory(args) / 18
    acts = activation_bytes(model, plan, 1, 4096)
    their_acts = megatron_activation_memory(args, 8)
    moe = cli([*MIXTRAL, *MOE_RUN], 80)
    lora = [*LLAMA_7B, *LORA, *RUN, "--training", "adamw", "--memory"]
    lora_memory = cli(lora, 80)
    return {
        "mp_lora_command": "$ shapecalc " + " ".join(lora),
        "mp_lora": _from(lora_memory, "Memory per GPU"),
        "mp_moe_command": "$ shapecalc " + " ".join([*MIXTRAL, *MOE_RUN]),
        "mp_moe": _from(moe, "Memory per GPU"),
        "mp_shapes_command": "$ shapecalc "
        + " ".join([*LLAMA_7B, *RUN[:4], *RUN[-6:-2], "--shapes"]),
        "mp_shapes": _from(shapes, "One GPU of the model-parallel run"),
        "mp_memory_command": "$ shapecalc " + " ".join([*LLAMA_7B, *RUN, "--memory"]),
        "mp_memory": _from(memory, "Memory per GPU"),
        "mp_ours_first": f"{ours.stages[0].count:,}",
        "mp_ours_last": f"{ours.stages[-1].count:,}",
        "mp_megatron_params": f"{theirs:,.0f}",
        "mp_ours_acts": f"{acts.total:,}",
        "mp_megatron_acts": f"{their_acts:,.0f}",
    }
