"""A 30-shard checkpoint read by its headers: shapecalc against safetensors' own reader.

    python benchmarks/hf_headers.py

Writes Llama-2-70B's 723 tensors (fp16, their real shapes) as 30 safetensors shards with
their index and config.json, the data left as holes (sparse files: a 138 GB checkpoint on
a few kB of disk; only the headers are read). Then times, in one run, the best of 7:
reading every shard's names and shapes with ``safetensors.safe_open`` (the baseline),
shapecalc's ``read_folder`` (every header checked against its file and the index), the
whole check against config.json, and ``shapecalc inspect FOLDER --format json`` as a
fresh process.
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
from startup import LLAMA_70B_CONFIG as CONFIG

SHARDS = 30


def write_checkpoint(folder: str) -> int:
    """The shards, their index and the config; the number of tensors."""
    import shapecalc

    tensors = shapecalc.from_hf_config(CONFIG).named_parameters()
    per = -(-len(tensors) // SHARDS)
    weight_map = {}
    for n in range(SHARDS):
        file = f"model-{n + 1:05d}-of-{SHARDS:05d}.safetensors"
        header, offset = {}, 0
        for name, shape in tensors[n * per : (n + 1) * per]:
            size = 2
            for d in shape:
                size *= int(d)  # type: ignore[call-overload]
            header[name] = {
                "dtype": "F16",
                "shape": list(shape),
                "data_offsets": [offset, offset + size],
            }
            offset += size
            weight_map[name] = file
        text = json.dumps(header).encode()
        with open(os.path.join(folder, file), "wb") as handle:
            handle.write(struct.pack("<Q", len(text)) + text)
            handle.truncate(8 + len(text) + offset)  # the data: a hole
    with open(os.path.join(folder, "model.safetensors.index.json"), "w") as handle:
        json.dump({"metadata": {}, "weight_map": weight_map}, handle)
    with open(os.path.join(folder, "config.json"), "w") as handle:
        json.dump(CONFIG, handle)
    return len(tensors)


def main() -> None:
    from safetensors import safe_open

    from shapecalc.adapters.hf_checkpoint import check_folder, read_folder

    with tempfile.TemporaryDirectory() as folder:
        count = write_checkpoint(folder)
        files = sorted(f for f in os.listdir(folder) if f.endswith(".safetensors"))

        def baseline() -> None:
            for file in files:
                with safe_open(os.path.join(folder, file), "np") as handle:
                    for key in handle.keys():  # noqa: SIM118 (a safe_open handle, not a dict)
                        handle.get_slice(key).get_shape()

        check = check_folder(folder)
        assert check.ok and check.stored_total == check.expected_total, check.problems
        shapecalc = str(Path(sys.executable).with_name("shapecalc"))
        command = [shapecalc, "inspect", folder, "--format", "json"]
        subprocess.run(command, stdout=subprocess.DEVNULL, check=True)
        timed = [
            ("safetensors.safe_open, every name and shape (baseline)", best_of(baseline)),
            (
                "shapecalc read_folder: headers checked against files and index",
                best_of(lambda: read_folder(folder)),
            ),
            (
                "shapecalc check_folder: and against config.json",
                best_of(lambda: check_folder(folder)),
            ),
            (
                "`shapecalc inspect FOLDER --format json`, a fresh process",
                best_of(lambda: subprocess.run(command, stdout=subprocess.DEVNULL, check=True)),
            ),
        ]
        size = sum(os.path.getsize(os.path.join(folder, f)) for f in files)
    base = timed[0][1]
    lines = [
        f"{SHARDS} shards, {count} tensors, {check.stored_total:,} parameters, "
        f"{size / 1e9:.0f} GB of files (sparse: only headers on disk).",
        "",
        "| reading | best of 7 | / baseline |",
        "|---|--:|--:|",
    ]
    lines += [
        f"| {name} | {seconds * 1e3:.1f} ms | {seconds / base:.2f}x |" for name, seconds in timed
    ]
    print("\n".join(lines))
    write_section(
        "hf-headers",
        "## A 30-shard checkpoint's headers (`python benchmarks/hf_headers.py`)\n\n"
        + "\n".join(lines),
    )


if __name__ == "__main__":
    main()
