"""Time and peak memory against parameter count, from 10^3 to 10^13, measured in one run:

- shapecalc: ``shapecalc lstm ... --format json`` (a fresh process each time);
- torch meta: building the same model with PyTorch on the meta device;
- torchinfo: ``torchinfo.summary`` of the same model with real weights, where they fit
  (up to 10^8 parameters here; ``pip install torchinfo`` first, or it is skipped);
- and a transformer row: Llama-2-70B (``shapecalc llama ...``) against the same modules
  written in PyTorch and built on the meta device.

    python benchmarks/size_curve.py            # prints the table, writes benchmarks/RESULTS.md

Each figure is the best of three runs of a fresh process, timed with /usr/bin/time
(wall seconds and peak resident memory).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import shapecalc

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import write_section

HERE = Path(__file__).resolve().parent
PYTHON = sys.executable
SHAPECALC = str(Path(PYTHON).with_name("shapecalc"))
#: the largest model torchinfo is given (its weights are real)
TORCHINFO_LIMIT = 10**8
#: bytecode written and used, as after any pip install
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}

TORCH_META = """
import sys, torch, torch.nn as nn
v, h, l = map(int, sys.argv[1:4])
model = nn.ModuleDict({"embedding": nn.Embedding(v, h, device="meta"),
                       "lstm": nn.LSTM(h, h, l, device="meta"),
                       "head": nn.Linear(h, v, device="meta")})
print(sum(p.numel() for p in model.parameters()))
"""

TORCH_META_LLAMA = """
import sys, torch, torch.nn as nn
v, h, l, a, k, i = map(int, sys.argv[1:7])
d = h // a
def block():
    attn = nn.ModuleDict({"q_proj": nn.Linear(h, a * d, bias=False, device="meta"),
                          "k_proj": nn.Linear(h, k * d, bias=False, device="meta"),
                          "v_proj": nn.Linear(h, k * d, bias=False, device="meta"),
                          "o_proj": nn.Linear(a * d, h, bias=False, device="meta")})
    mlp = nn.ModuleDict({"gate_proj": nn.Linear(h, i, bias=False, device="meta"),
                         "up_proj": nn.Linear(h, i, bias=False, device="meta"),
                         "down_proj": nn.Linear(i, h, bias=False, device="meta")})
    return nn.ModuleDict({"self_attn": attn, "mlp": mlp,
                          "input_layernorm": nn.RMSNorm(h, device="meta"),
                          "post_attention_layernorm": nn.RMSNorm(h, device="meta")})
model = nn.ModuleDict({"embed_tokens": nn.Embedding(v, h, device="meta"),
                       "layers": nn.ModuleList(block() for _ in range(l)),
                       "norm": nn.RMSNorm(h, device="meta"),
                       "lm_head": nn.Linear(h, v, bias=False, device="meta")})
print(sum(p.numel() for p in model.parameters()))
"""

TORCHINFO = """
import sys, torch, torch.nn as nn, torchinfo
v, h, l = map(int, sys.argv[1:4])
class LM(nn.Module):
    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(v, h)
        self.lstm = nn.LSTM(h, h, l, batch_first=True)
        self.head = nn.Linear(h, v)
    def forward(self, x):
        return self.head(self.lstm(self.embedding(x))[0])
stats = torchinfo.summary(LM(), input_size=(1, 8), dtypes=[torch.long], verbose=0)
print(stats.total_params)
"""


def sizes_for(target: int) -> tuple[int, int, int]:
    """(vocab, hidden, layers) of an LSTM language model with about ``target`` parameters."""
    vocab, layers = (256, 2) if target < 10**11 else (256_000, 96)
    solution = shapecalc.solve(shapecalc.lstm_lm, target, "hidden", vocab=vocab, layers=layers)
    return vocab, solution.below.size, layers


def measure(command: list[str]) -> tuple[float, float, str]:
    """Best wall time (s) and peak memory (MB) of three runs, and the last output line."""
    best_time, best_memory, out = float("inf"), float("inf"), ""
    for _ in range(3):
        with tempfile.NamedTemporaryFile("r") as report:
            done = subprocess.run(
                ["/usr/bin/time", "-f", "%e %M", "-o", report.name, *command],
                capture_output=True,
                text=True,
                check=False,
                env=ENV,
            )
            if done.returncode != 0:
                return float("nan"), float("nan"), done.stderr.strip().splitlines()[-1:][0]
            seconds, kilobytes = report.read().split()[-2:]
        best_time = min(best_time, float(seconds))
        best_memory = min(best_memory, int(kilobytes) / 1024)
        out = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    return best_time, best_memory, out


def has_torchinfo() -> bool:
    found = subprocess.run([PYTHON, "-c", "import torchinfo"], capture_output=True, env=ENV)
    return found.returncode == 0


def main() -> None:
    rows = []
    torchinfo = has_torchinfo()
    header = (
        "| parameters | V, H, L | shapecalc s | shapecalc MB | torch meta s | torch meta MB "
        "| meta / shapecalc | torchinfo s | torchinfo MB | torchinfo / shapecalc |"
    )
    print(header)
    for exponent in range(3, 14):
        vocab, hidden, layers = sizes_for(10**exponent)
        total = shapecalc.lstm_lm(vocab, hidden, layers).total
        args = [str(vocab), str(hidden), str(layers)]
        ours = measure(
            [
                SHAPECALC,
                "lstm",
                "--vocab",
                args[0],
                "--hidden",
                args[1],
                "--layers",
                args[2],
                "--format",
                "json",
            ]
        )
        meta = measure([PYTHON, "-c", TORCH_META, *args])
        assert meta[2] == str(total), (meta, total)  # the same model, the same count
        if torchinfo and total <= TORCHINFO_LIMIT:
            info = measure([PYTHON, "-c", TORCHINFO, *args])
            assert info[2] == str(total), (info, total)
            info_cells = f"{info[0]:.2f} | {info[1]:.0f} | {info[0] / ours[0]:.0f}x"
        else:
            info_cells = "- | - | -"
        row = (
            f"| {total:,} | {vocab}, {hidden}, {layers} | {ours[0]:.2f} | {ours[1]:.0f} | "
            f"{meta[0]:.2f} | {meta[1]:.0f} | {meta[0] / ours[0]:.0f}x | {info_cells} |"
        )
        print(row)
        rows.append(row)
    # a transformer: Llama-2-70B, every matrix of its 80 blocks
    sizes = {"vocab": 32000, "hidden": 8192, "layers": 80, "heads": 64, "kv_heads": 8}
    sizes["intermediate"] = 28672
    total = shapecalc.llama(**sizes).total
    flags = [x for n, value in sizes.items() for x in (f"--{n.replace('_', '-')}", str(value))]
    ours = measure([SHAPECALC, "llama", *flags, "--format", "json"])
    meta = measure([PYTHON, "-c", TORCH_META_LLAMA, *map(str, sizes.values())])
    assert meta[2] == str(total), (meta, total)
    row = (
        f"| {total:,} (Llama-2-70B) | 32000, 8192, 80 | {ours[0]:.2f} | {ours[1]:.0f} | "
        f"{meta[0]:.2f} | {meta[1]:.0f} | {meta[0] / ours[0]:.0f}x | - | - | - |"
    )
    print(row)
    rows.append(row)
    text = "\n".join(
        [
            "## Size curve (`python benchmarks/size_curve.py`)",
            "",
            "Wall time (best of 3 fresh processes) and peak resident memory against the",
            "parameter count of an LSTM language model, and of a transformer (Llama-2-70B), on",
            "the machine that ran the script",
            f"({os.cpu_count()} cores).",
            "",
            header,
            "|---|---|---|---|---|---|---|---|---|---|",
            *rows,
        ]
    )
    write_section("size-curve", text)


if __name__ == "__main__":
    main()
