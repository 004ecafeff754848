"""Run the command-line fuzz and the hostile-file generator at a size of your choosing.

    python scripts/fuzz.py            # 10,000 generated command lines, every hostile file
    python scripts/fuzz.py 50000      # more

The same tests CI runs (tests/test_cli_fuzz.py, tests/test_hostile_files.py, and the
library's misuse sweep, tests/test_misuse.py) with SHAPECALC_FUZZ_EXAMPLES set, random
rather than derandomized; a failure prints the smallest example hypothesis finds.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str]) -> int:
    examples = argv[0] if argv else "10000"
    if not examples.isdigit() or int(examples) < 1:
        print(f"usage: python scripts/fuzz.py [EXAMPLES], got {examples[:40]!r}", file=sys.stderr)
        return 2
    env = {**os.environ, "SHAPECALC_FUZZ_EXAMPLES": examples, "HYPOTHESIS_PROFILE": "default"}
    tests = ["tests/test_cli_fuzz.py", "tests/test_hostile_files.py", "tests/test_misuse.py"]
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests]
    return subprocess.run(command, cwd=ROOT, env=env, check=False).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
