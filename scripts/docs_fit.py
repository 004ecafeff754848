"""docs/howto/fit.md: ``shapecalc fit``, its rules (from the engine's docstrings), a real
run, and the accelerator table with each entry's source."""

from __future__ import annotations

import inspect

#: the model of the page's runs: Llama-3.1-8B's sizes
LLAMA = (
    "llama --vocab 128256 --hidden 4096 --layers 32 --heads 32 --kv-heads 8 --intermediate 14336"
)


#: the page's sweep against a GPU
SWEEP = (
    "llama --vocab 128256 --hidden 2048,4096 --layers 16,32 --heads 32 --kv-heads 8 "
    "--intermediate 14336 --gpu rtx-4090 --seq-len 8192 --frontier"
)


def fit_page() -> str:
    from docs_facts import cli

    from shapecalc.analysis import engines, fit, vllm_defaults
    from shapecalc.analysis.hardware import ACCELERATORS, COMPUTE_DTYPES

    llama = LLAMA.split()
    run = cli(["fit", *llama, "--gpu", "rtx-4090", "--seq-len", "8192"], width=80)
    vllm = cli(["fit", *llama, "--gpu", "h100", "--seq-len", "32768", "--engine", "vllm"], 80)
    swept = SWEEP.split()
    sweep = cli(["sweep", *swept], width=80)
    rows = []
    for a in ACCELERATORS.values():
        peaks = (
            " · ".join(f"{d} {a.peak[d] / 10**12:g}" for d in COMPUTE_DTYPES if d in a.peak) or "-"
        )
        names = ", ".join(f"`{n}`" for n in (a.name, *a.aliases))
        rows.append(
            f"| {names} | {a.title} | {a.memory / 2**30:.2f} | "
            + (
                f"[reported]({a.memory_source}): {a.memory:,} bytes"
                if a.memory_rule == "reported"
                else "GiB: the datasheet's capacity"
            )
            + f" | {a.bandwidth / 10**9:g} | {peaks} | [datasheet]({a.source}) {a.note} |"
        )
    rules = inspect.getdoc(fit) or ""
    engine_rules = inspect.getdoc(engines) or ""
    return "\n".join(
        [
            "# Does it fit",
            "",
            "<!-- written by scripts/gen_docs.py (scripts/docs_fit.py) from "
            "shapecalc/analysis/fit.py, engines.py and hardware.py: do not edit -->",
            "",
            "`shapecalc fit MODEL-COMMAND ...` (or `shapecalc fit hf PATH`) answers whether a "
            "model fits on an accelerator: exit status 0 when it does, 1 when it does not, 2 "
            "for bad input. Give `--gpu NAME` from the table below, or `--memory-gb X` with "
            "`--bandwidth-gbs` and `--tflops`; `--gpus N` for tensor parallelism (under "
            "llama.cpp its layer split, `--tensor-split P,P`); `--batch`, "
            "`--seq-len`, `--dtype`, `--weights FORMAT`; `--engine vllm|llama.cpp|"
            "transformers` for an engine's own accounting; `--efficiency M,C` to scale the "
            "speed bounds; `--frontier --plot` for the largest context at batches 1, 2, 4, "
            "...; `--format json` (schema: `docs/schema/fit.schema.json`).",
            "",
            "When the model does not fit as it is, the answer prices the common weights "
            "formats (" + ", ".join(f"`{name}`" for name in fit.COMMON_FORMATS) + ") and names "
            "the least quantized of them that fits; `--formats` prices every format "
            "shapecalc knows (every GGUF mix, bitsandbytes, GPTQ, AWQ, fp8, MXFP4, "
            "compressed-tensors), whether the model fits or not.",
            "",
            "```console",
            "$ shapecalc fit " + " ".join(llama) + " --gpu rtx-4090 --seq-len 8192",
            run,
            "```",
            "",
            "Under vLLM's accounting, on an H100:",
            "",
            "```console",
            "$ shapecalc fit " + " ".join(llama) + " --gpu h100 --seq-len 32768 --engine vllm",
            vllm,
            "```",
            "",
            "**The model's own context.** fit never answers past the positions a model "
            "takes: a flat config's `max_position_embeddings`, a composite model's language "
            "model's (`text_config.max_position_embeddings`: Gemma 3, Llama 3.2 Vision, "
            "LLaVA), Whisper's decoder's `max_target_positions` (448, for "
            "`WhisperForConditionalGeneration`, `WhisperForCausalLM` and `shapecalc fit "
            "whisper`). It is the longest context searched, the default context when "
            "shorter than 4,096, and a `--seq-len` past it is refused in one line. "
            "`--engine llama.cpp` refuses Whisper (llama.cpp's `src/llama-arch.cpp` has no "
            "whisper architecture; whisper.cpp is another program). A model whose weights "
            "are all stored quantized (a GGUF type) has nothing to train: `--training` is "
            "refused, pointing to LoRA (`--lora-rank`).",
            "",
            "## Where it stops fitting: `shapecalc sweep --gpu`",
            "",
            "`shapecalc sweep` takes the same hardware and engine options (`--gpu`, "
            "`--memory-gb`, `--gpus`, `--engine`, `--gpu-memory-utilization`, `--reserve-gb`, "
            "`--efficiency`, `--compute`) and adds fit's answers to every row: the memory one "
            "GPU holds at the row's batch and context, whether it fits, the largest context at "
            "the row's batch, the most sequences at its context, the fewest GPUs (`--show "
            "gpu_memory,fits,max_context,max_batch,min_gpus`, and `decode,prefill` for the "
            "speed bounds). Sweep any size, `--batch` or `--seq-len` and read where it stops "
            "fitting; every number is the one `shapecalc fit` prints for that model and those "
            "options (the tests ask both). Against hardware the defaults are fit's: bf16, "
            "4,096 positions. `--plot` draws every numeric answer over the swept size, a "
            "chart each (the memory per GPU with the GPU's memory as a line; the verdict is in "
            "the table only). `--frontier` adds each swept model's largest context at batches "
            "1, 2, 4, ..., 1,024, and `--plot` draws those frontiers in one chart, a marker "
            "each (at most 8), the legend under it; `--format json|csv|markdown` carry the "
            "same (schema: `docs/schema/sweep.schema.json`).",
            "",
            "```console",
            "$ shapecalc sweep " + " ".join(swept),
            sweep,
            "```",
            "",
            "## The rules",
            "",
            rules.split("Example:")[0].strip(),
            "",
            "## Engines",
            "",
            engine_rules.strip(),
            "",
            "### What `fit hf --engine vllm` takes from the config",
            "",
            (inspect.getdoc(vllm_defaults) or "").split(">>>")[0].strip(),
            "",
            "## Accelerators",
            "",
            "Memory in GiB (2³⁰ bytes), by one of two rules (the column after it says which): "
            "*reported*, the total the driver reports (`nvidia-smi`), from the public "
            "printout linked; else *GiB*, the datasheet's capacity read as binary gigabytes "
            "(HBM and GDDR are sold in binary sizes). `--memory-gb` is read as decimal GB "
            "(10⁹ bytes), as given. Bandwidth in GB/s, dense peak TFLOPs per dtype of the "
            "product (int8: TOPS), from the vendors' datasheets linked; where a datasheet "
            "prints figures with 2:4 sparsity they are halved. `--gpu` names match ignoring "
            "case, spaces, hyphens and underscores (`rtx4090`, `RTX 4090`).",
            "",
            "| `--gpu` | accelerator | memory GiB | memory rule | bandwidth GB/s | "
            "dense peak TFLOPs | source |",
            "|---|---|--:|---|--:|---|---|",
            *rows,
            "",
        ]
    )


#: the sweep how-to's run: the page's 1.2B model over batches and contexts on an L4
SIZED_SWEEP = (
    "llama --vocab 32000 --hidden {hidden} --layers 24 --heads 16 --kv-heads 4 "
    "--batch 1,16,64 --seq-len 2048,32768 --gpu l4"
)


def sweep_fit_facts(hidden: str) -> dict[str, str]:
    """The run of the section on sweeps against a GPU in "Size a language model"."""
    from docs_facts import cli

    args = SIZED_SWEEP.format(hidden=hidden).split()
    command = "shapecalc sweep " + " ".join(args)
    wrapped = command.replace(" --batch", " \\\n    --batch")
    return {"sweep_fit_command_80": "$ " + wrapped, "sweep_fit_80": cli(["sweep", *args], 80)}
