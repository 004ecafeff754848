"""The generated parts of docs/howto/lora.md: Llama-3.1-8B's QLoRA run as the command
prints it, and its trainable count beside peft's."""

from __future__ import annotations

LLAMA_8B = [
    "llama", "--vocab", "128256", "--hidden", "4096", "--layers", "32", "--heads", "32",
    "--kv-heads", "8", "--intermediate", "14336",
]  # fmt: skip
QLORA = [
    "--weights", "nf4", "--dtype", "bf16", "--lora-rank", "16", "--lora-alpha", "32",
    "--lora-targets", "all-linear", "--memory", "--batch", "1", "--seq-len", "2048",
]  # fmt: skip


def _section(text: str, start: str, end: str | None) -> list[str]:
    lines = text.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith(start))
    if end is None:
        return lines[first:]
    last = next(i for i in range(first + 1, len(lines)) if lines[i].startswith(end))
    return lines[first:last]


def lora_facts() -> dict[str, str]:
    from docs_facts import cli

    shown = "$ shapecalc " + " ".join(LLAMA_8B + QLORA + ["--training", "paged-adamw-8bit"])
    out = cli([*LLAMA_8B, *QLORA, "--training", "paged-adamw-8bit"], 100)
    summary = _section(out, "Total", "Per layer")
    memory = _section(out, "Memory in training", "Memory at inference")
    adamw = cli([*LLAMA_8B, *QLORA, "--training", "adamw"], 100)
    state = next(
        line
        for line in _section(adamw, "Memory in training", "Memory at inference")
        if "optimizer state" in line
    )
    total = next(
        line
        for line in _section(adamw, "Memory in training", "Memory at inference")
        if "training total" in line
    )
    from shapecalc.adapt import LoraConfig, lora
    from shapecalc.architectures.llama import LLaMA

    base = LLaMA(vocab=128256, hidden=4096, layers=32, heads=32, kv_heads=8, intermediate=14336)
    adapted = lora(base.model(), LoraConfig(r=16, alpha=32, targets="all-linear"))
    return {
        "lora_trainable": f"{adapted.trainable:,}",
        "lora_all": f"{adapted.parameters:,}",
        "lora_command": shown,
        "lora_summary": "\n".join(line for line in summary if line.strip()),
        "lora_memory": "\n".join(memory),
        "lora_adamw_state": state.split("│")[2].strip(),
        "lora_adamw_total": total.split("│")[2].strip(),
    }
