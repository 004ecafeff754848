"""DeepSeek-V3's published config.json counted (``shapecalc hf FOLDER --format json``, its
fp8 quantization_config allowed), against the LSTM headline's JSON in the same run.

    python benchmarks/deepseek_v3.py

Prints the wall time of each (best of 15 fresh processes, the commands taken in turn) and
their ratio; the goal is 1.2x or less. Bytecode is written and used, as after any install.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _results import write_section
from startup import ENV, SHAPECALC, SMALL, best

from tests.published_moe import DEEPSEEK_V3


def main() -> None:
    folder = tempfile.mkdtemp()
    with open(os.path.join(folder, "config.json"), "w", encoding="utf-8") as handle:
        json.dump(DEEPSEEK_V3, handle)
    headline = [SHAPECALC, *SMALL, "--format", "json"]
    v3 = [SHAPECALC, "hf", folder, "--format", "json", "--allow-field", "quantization_config"]
    for command in (headline, v3):  # bytecode first
        subprocess.run(command, stdout=subprocess.DEVNULL, env=ENV, check=True)
    report = json.loads(
        subprocess.run(v3, capture_output=True, text=True, env=ENV, check=True).stdout
    )
    lstm, deepseek = best([headline, v3])
    lines = [
        "| command | wall |",
        "|---|--:|",
        f"| `shapecalc lstm ... --format json` (the headline) | {lstm * 1e3:.1f} ms |",
        f"| `shapecalc hf DeepSeek-V3/config.json --format json` | {deepseek * 1e3:.1f} ms |",
        "",
        f"DeepSeek-V3 ({report['total']:,} parameters, {report['active']:,} active) against "
        f"the LSTM headline, same run: {deepseek / lstm:.2f}x (goal: 1.2x or less).",
    ]
    print("\n".join(lines))
    write_section("deepseek_v3", "## DeepSeek-V3's config counted\n\n" + "\n".join(lines))


if __name__ == "__main__":
    main()
