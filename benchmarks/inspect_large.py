"""A safetensors header of 200,000 tensors: inspected as a table and as JSON.

    python benchmarks/inspect_large.py

Writes one file of 200,000 small tensors with dotted names (a 2,000-layer model of 100
tensors each; the data is a hole of a sparse file), then times, best of 5 in one run:
``json.loads`` of its header alone (the baseline: what any reader must do), shapecalc's
``read_checkpoint`` (the header parsed and every entry checked against the file), and
``shapecalc inspect FILE`` as a fresh process, as a table (the tree at its default depth)
and as JSON (every tensor).

Every reading runs with the cyclic garbage collector paused, the baseline's too: shapecalc
pauses it while it reads (and the command keeps it off), and with it on, ``json.loads``
of this header takes over half as long again, the collector walking the young objects
it makes again and again, which would flatter shapecalc's ratios.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import best_of, write_section

TENSORS = 200_000


def write(path: str) -> bytes:
    header, offset = {}, 0
    for i in range(TENSORS):
        name = f"model.layers.{i // 100}.block{i % 100 // 4}.{('weight', 'bias')[i % 2]}{i % 4}"
        header[name] = {"dtype": "F32", "shape": [16], "data_offsets": [offset, offset + 64]}
        offset += 64
    raw = json.dumps(header).encode()
    with open(path, "wb") as handle:
        handle.write(struct.pack("<Q", len(raw)) + raw)
        handle.truncate(8 + len(raw) + offset)
    return raw


def loads(raw: bytes) -> object:
    """``json.loads`` under the conditions shapecalc reads in: the collector paused."""
    from shapecalc.adapters.checkpoint import paused_gc

    with paused_gc():
        return json.loads(raw)


def main() -> None:
    from shapecalc.adapters.checkpoint import read_checkpoint

    shapecalc = str(Path(sys.executable).with_name("shapecalc"))
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "model.safetensors")
        raw = write(path)
        table = [shapecalc, "inspect", path]
        as_json = [*table, "--format", "json"]
        subprocess.run(as_json, stdout=subprocess.DEVNULL, check=True)  # bytecode first
        timed = [
            ("`json.loads` of the header (baseline)", best_of(lambda: loads(raw), 5)),
            ("`read_checkpoint`, every entry checked", best_of(lambda: read_checkpoint(path), 5)),
            (
                "`shapecalc inspect FILE`, a fresh process, table",
                best_of(lambda: subprocess.run(table, stdout=subprocess.DEVNULL, check=True), 5),
            ),
            (
                "`shapecalc inspect FILE --format json`, a fresh process",
                best_of(lambda: subprocess.run(as_json, stdout=subprocess.DEVNULL, check=True), 5),
            ),
        ]
    base = timed[0][1]
    lines = [
        f"{TENSORS:,} tensors, a header of {len(raw) / 1e6:.1f} MB.",
        "",
        "| reading | best of 5 | / baseline |",
        "|---|--:|--:|",
    ]
    lines += [f"| {name} | {seconds:.2f} s | {seconds / base:.1f}x |" for name, seconds in timed]
    print("\n".join(lines))
    write_section(
        "inspect-large",
        "## A header of 200,000 tensors (`python benchmarks/inspect_large.py`)\n\n"
        + "\n".join(lines),
    )


if __name__ == "__main__":
    main()
