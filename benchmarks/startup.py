"""Start-up and size: the headline command against
``python -c "import click, rich.console, rich.table"``.

    python benchmarks/startup.py

Prints, from one run on this machine: the wall time of the baseline and of shapecalc's
commands (best of 15 fresh processes, the commands taken in turn), their ratios (and that of
Llama-2-70B's table, every matrix and formula, to the LSTM headline's), the peak
memory of the small and the 3.3-trillion-parameter model, the in-process time of a
96-layer symbolic total, and of a model tree of 2 and of 1,000 repeated blocks (counted
once and multiplied, so the same).
Bytecode is written and used, as after any ``pip install`` (a PYTHONDONTWRITEBYTECODE in
the environment would make every run compile the sources again).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import write_section

PYTHON = sys.executable
SHAPECALC = str(Path(PYTHON).with_name("shapecalc"))
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
SMALL = ["lstm", "--layers", "2", "--hidden", "512", "--vocab", "65"]
HUGE = ["lstm", "--layers", "96", "--hidden", "65536", "--vocab", "256000"]
#: Llama-2-70B: 68,976,648,192 parameters in 80 blocks
LLAMA_70B = ["llama", "--vocab", "32000", "--hidden", "8192", "--layers", "80", "--heads", "64"]
LLAMA_70B += ["--kv-heads", "8", "--intermediate", "28672"]
#: the same model as its config.json says it (shapecalc hf FOLDER)
LLAMA_70B_CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "vocab_size": 32000,
    "hidden_size": 8192,
    "num_hidden_layers": 80,
    "num_attention_heads": 64,
    "num_key_value_heads": 8,
    "intermediate_size": 28672,
    "max_position_embeddings": 4096,
    "rms_norm_eps": 1e-05,
    "torch_dtype": "float16",
    "tie_word_embeddings": False,
}


def best(commands: list[list[str]], runs: int = 15) -> list[float]:
    """The fastest of ``runs`` fresh processes of each command, the commands taken in
    turn (round after round), so that a drift of the machine touches them all alike."""
    fastest = [float("inf")] * len(commands)
    for _ in range(runs):
        for i, command in enumerate(commands):
            start = time.perf_counter()
            subprocess.run(
                command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV, check=True
            )
            fastest[i] = min(fastest[i], time.perf_counter() - start)
    return fastest


def in_process(code: str) -> str:
    """What ``code`` prints, run in a fresh process."""
    done = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, env=ENV, check=True)
    return done.stdout.strip()


def peak_mb(command: list[str]) -> float:
    with tempfile.NamedTemporaryFile("r") as report:
        subprocess.run(
            ["/usr/bin/time", "-f", "%M", "-o", report.name, *command],
            stdout=subprocess.DEVNULL,
            env=ENV,
            check=True,
        )
        return int(report.read().split()[-1]) / 1024


def main() -> None:
    lines: list[str] = []
    config_folder = tempfile.mkdtemp()
    with open(os.path.join(config_folder, "config.json"), "w", encoding="utf-8") as handle:
        json.dump(LLAMA_70B_CONFIG, handle)
    hf = ["hf", config_folder]

    def say(text: str = "") -> None:
        print(text)
        lines.append(text)

    for command in (SMALL, HUGE, [*SMALL, "--format", "json"], LLAMA_70B, hf):  # bytecode first
        subprocess.run([SHAPECALC, *command], stdout=subprocess.DEVNULL, env=ENV, check=True)
    named = [
        ("python -c pass", [PYTHON, "-c", "pass"]),
        (
            'python -c "import click, rich.console, rich.table"',
            [PYTHON, "-c", "import click, rich.console, rich.table"],
        ),
        ("shapecalc lstm ... --format json", [SHAPECALC, *SMALL, "--format", "json"]),
        ("  the same, 3.3 trillion parameters", [SHAPECALC, *HUGE, "--format", "json"]),
        ("shapecalc lstm ...  (table with formulas)", [SHAPECALC, *SMALL]),
        ("  the same, 3.3 trillion parameters", [SHAPECALC, *HUGE]),
        ("shapecalc llama ... (Llama-2-70B, table with formulas)", [SHAPECALC, *LLAMA_70B]),
        ("shapecalc hf FOLDER (Llama-2-70B's config.json, table)", [SHAPECALC, *hf]),
    ]
    times = best([command for _, command in named])
    rows = [(name, seconds) for (name, _), seconds in zip(named, times, strict=True)]
    baseline = times[1]
    say("| command | wall | / baseline |")
    say("|---|--:|--:|")
    for name, seconds in rows:
        say(f"| `{name}` | {seconds * 1e3:.1f} ms | {seconds / baseline:.2f}x |")
    say()
    say(
        f"The 70B transformer's table against the LSTM headline's, same run: "
        f"{times[6] / times[4]:.2f}x; from its config.json (`shapecalc hf`): "
        f"{times[7] / times[4]:.2f}x."
    )
    small = peak_mb([SHAPECALC, *SMALL, "--format", "json"])
    huge = peak_mb([SHAPECALC, *HUGE, "--format", "json"])
    say()
    say(f"Peak memory: {small:.1f} MB small, {huge:.1f} MB for 3.3 trillion parameters.")
    code = (
        "import time, shapecalc\n"
        "t = time.perf_counter()\n"
        "total = shapecalc.lstm_lm(vocab='V', hidden='H', layers=96).total\n"
        "first = time.perf_counter() - t\n"
        "t = time.perf_counter()\n"
        "total = shapecalc.lstm_lm(vocab='V', hidden='H', layers=96).total\n"
        "again = time.perf_counter() - t\n"
        "print(f'{first * 1e3:.1f} ms the first time (the modules it loads), "
        "{again * 1e3:.1f} ms again: {total}')\n"
    )
    say()
    say(f"Symbolic total of a 96-layer model, in process: {in_process(code)}.")
    code = (
        "import time, shapecalc as sc\n"
        "def model(n):\n"
        "    block = sc.Block('Block', {'ln': sc.LayerNorm(4096), 'up': sc.Linear(4096, 16384),"
        " 'down': sc.Linear(16384, 4096)}, flow=sc.residual('ln', 'up', 'down'))\n"
        "    return sc.Model('stack', sc.Block('Net', {'h': sc.ModuleList(block, n)}))\n"
        "for n in (2, 1000):\n"
        "    t = time.perf_counter()\n"
        "    for _ in range(20):\n"
        "        m = model(n); m.total; m.rows(); sc.analyze(m, ((1, 2048, 4096),)).forward_flops\n"
        "    print(f'{n:>5} blocks: {(time.perf_counter() - t) / 20 * 1e3:.2f} ms, {m.total:,}')\n"
    )
    say()
    say("A model tree built, counted, listed and analysed, in process:")
    say()
    for line in in_process(code).splitlines():
        say(f"- {line.strip()}")
    write_section(
        "startup",
        "## Start-up (`python benchmarks/startup.py`)\n\nBest of 15 fresh processes, the "
        "commands in turn, "
        f"{os.cpu_count()} cores.\n\n" + "\n".join(lines),
    )


if __name__ == "__main__":
    main()
