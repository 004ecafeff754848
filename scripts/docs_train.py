"""The generated parts of docs/howto/train-at-scale.md: Llama-2-7B's per-GPU training
memory under ZeRO-3 and FSDP as the commands print it, DeepSpeed's and Megatron's
accountings of the same run, a sweep over the plans and fit's fewest GPUs."""

from __future__ import annotations

LLAMA_7B = [
    "llama", "--vocab", "32000", "--hidden", "4096", "--layers", "32", "--heads", "32",
    "--intermediate", "11008",
]  # fmt: skip
RUN = ["--dtype", "bf16", "--mixed-precision", "--training", "adamw", "--batch", "1",
       "--seq-len", "2048"]  # fmt: skip


def _from(text: str, start: str) -> str:
    lines = text.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith(start))
    return "\n".join(lines[first:])


def _block(args: list[str], start: str = "Memory per GPU", width: int = 100) -> str:
    from docs_facts import cli

    shown = "$ shapecalc " + " ".join(args)
    return shown + "\n" + _from(cli(args, width), start)


def parallel_facts() -> dict[str, str]:
    from docs_facts import cli

    zero3 = [*LLAMA_7B, *RUN, "--dp", "8", "--zero", "3"]
    fsdp = [*LLAMA_7B, *RUN, "--dp", "8", "--fsdp", "full"]
    deepspeed = [*LLAMA_7B, *RUN, "--dp", "8", "--zero", "3", "--accounting", "deepspeed"]
    megatron = [*LLAMA_7B, *RUN, "--dp", "2", "--tp", "4", "--zero", "1",
                "--sequence-parallel", "--recompute", "selective", "--accounting",
                "megatron"]  # fmt: skip
    sweep = ["sweep", *LLAMA_7B, *RUN, "--dp", "1,8,64", "--zero", "1..3"]
    fit = ["fit", *LLAMA_7B, "--gpu", "h100", "--training", "adamw", "--mixed-precision",
           "--batch", "1", "--seq-len", "2048"]  # fmt: skip
    fit_out = cli(fit, 100).splitlines()
    return {
        "parallel_zero3": _block(zero3),
        "parallel_fsdp": _block(fsdp),
        "parallel_deepspeed": _block(deepspeed),
        "parallel_megatron": _block(megatron),
        "parallel_sweep": "$ shapecalc " + " ".join(sweep) + "\n" + cli(sweep, 100),
        "parallel_fit": "$ shapecalc " + " ".join(fit) + "\n" + fit_out[0],
    }
