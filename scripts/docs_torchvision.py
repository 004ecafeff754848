"""docs/howto/torchvision.md: ``shapecalc torchvision``, how its truth was made, a real run,
and every model shapecalc builds beside torchvision's published figures (from the truth
file scripts/torchvision_truth.py wrote) and shapecalc's own count."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TRUTH = ROOT / "tests" / "golden" / "torchvision_truth.json.gz"


def _rows(truth: dict[str, Any]) -> list[str]:
    from shapecalc.analysis.cost import analyze
    from shapecalc.architectures.vision import family_of, names, torchvision

    rows = []
    for name in names():
        entry = truth["models"][name]
        for weights in entry["published"]:
            size = weights["crop_size"]
            model = torchvision(
                name, num_classes=weights["built_with"]["num_classes"], image_size=size
            )
            macs = analyze(model, batch=1).macs
            assert isinstance(macs, int)
            rows.append(
                f"| `{name}` | {family_of(name)} | {weights['weights']} | "
                f"{weights['num_params']:,} | {model.total:,} | {size} | "
                f"{weights['ops']:g} | {macs / 1e9:.3f} |"
            )
    return rows


def torchvision_page() -> str:
    from docs_facts import cli

    from shapecalc.architectures.vision import TORCHVISION_MODELS, WIDTH_MULT, names

    truth = json.loads(gzip.decompress(TRUTH.read_bytes()))
    built = names()
    left = [n for n in TORCHVISION_MODELS if n not in built]
    run = cli(["torchvision", "mobilenet_v3_small", "--num-classes", "10", "--depth", "2"], 80)
    return "\n".join(
        [
            "# torchvision's models by name",
            "",
            "<!-- written by scripts/gen_docs.py (scripts/docs_torchvision.py) from "
            "shapecalc/architectures/vision/ and tests/golden/torchvision_truth.json.gz: "
            "do not edit -->",
            "",
            "`shapecalc torchvision NAME` prints torchvision's classification model `NAME` as "
            "`torchvision.models.get_model(NAME, weights=None)` builds it: every parameter "
            "and buffer with torchvision's name and shape, the counts, and with `--shapes`, "
            "`--flops` or `--memory` (or `--all`) what one batch of `(B, 3, S, S)` images "
            "costs. `--num-classes N` changes the last layer, `--image-size S` the input "
            "(default 224; a size some layer cannot take is refused, naming the layer; "
            "a ViT is built for its image size, as torchvision's `image_size` argument "
            "builds it: `encoder.pos_embedding` holds (S / patch)² + 1 positions, and a "
            "size the patch size does not divide is refused), "
            f"`--width-mult X` is the width multiplier of {', '.join(WIDTH_MULT)}; "
            "`--depth`, `--format json|markdown|tree|latex`, `--verify` and the other "
            "flags of a model command work as they do there. `shapecalc torchvision --list` "
            "lists the names (`--format json`: each with its family and flags). In Python, "
            '`shapecalc.torchvision("resnet50", num_classes=10, image_size=224)` is the Model.',
            "",
            "```console",
            "$ shapecalc torchvision mobilenet_v3_small --num-classes 10 --depth 2",
            run,
            "```",
            "",
            "## How it is checked",
            "",
            "torchvision cannot be imported beside the CPU build of torch the tests use, so "
            "its truth is a file: `scripts/torchvision_truth.py`, run in an environment of "
            f"its own (torch {truth['torch']}, torchvision {truth['torchvision']}), builds "
            "every model `torchvision.models.list_models()` gives on the meta device with "
            "`weights=None` (and a few with `num_classes=10` or another `width_mult`) and "
            "writes every `named_parameters()` and `named_buffers()` name and shape, the "
            "total, the output shape and `FlopCounterMode`'s count for one image at 224 "
            "and at each pretrained weights' crop size, beside torchvision's published "
            "figures (`num_params`, `_ops`, `min_size`). The tests "
            "(`tests/test_torchvision.py`) hold every model shapecalc builds to that file: "
            "every name and shape, the buffers, the totals, and twice shapecalc's "
            "multiply-accumulates equal to `FlopCounterMode`'s FLOPs; the script "
            "regenerates the file byte for byte.",
            "",
            "## The models",
            "",
            "torchvision's `_ops` is its published GFLOPS, counted as multiply-accumulates "
            "at the weights' crop size, and rounded; shapecalc's column is its exact count "
            "at that size, in billions of multiply-accumulates. Published parameters and "
            "shapecalc's are equal for every entry.",
            "",
            "| Model | Family | Weights | Published parameters | shapecalc | Crop | "
            "Published GFLOPS | shapecalc GMACs |",
            "|---|---|---|--:|--:|--:|--:|--:|",
            *_rows(truth),
            "",
            f"Not built yet ({len(left)} of torchvision's {len(TORCHVISION_MODELS)}): "
            + ", ".join(f"`{n}`" for n in left)
            + ". Their truth is in the file already.",
            "",
        ]
    )
