"""Write tests/golden/torchvision_truth.json.gz: what torchvision itself builds, for the tests.

torchvision cannot be imported beside the CPU torch of the development environment, so this
script runs in an environment of its own, outside the repository and outside CI::

    python3.11 -m venv /path/to/tvenv
    /path/to/tvenv/bin/pip install torch==2.14.1 torchvision==0.29.1
    /path/to/tvenv/bin/python scripts/torchvision_truth.py

For every classification builder ``torchvision.models.list_models(module=torchvision.models)``
gives, built on the meta device with ``weights=None`` (1000 classes, and a few with
``num_classes=10`` or a MobileNet's ``width_mult``), it writes every ``named_parameters()``
name and shape, every ``named_buffers()`` name, shape and dtype, the total, the output shape and
``FlopCounterMode``'s count (FLOPs: 2 per multiply-accumulate) of one forward in eval mode
on a (1, 3, S, S) meta tensor, S = 224. For each pretrained weights entry it also writes
torchvision's published figures (``num_params``, ``_ops`` in GFLOPS as torchvision gives
them, ``min_size``, the crop and resize sizes of its transforms) beside the total and the
FlopCounterMode count of the model those weights are for (ViT's ``image_size`` is the
weights' ``min_size``) at their crop size. Nothing is downloaded.

The output is the same bytes on every run (sorted keys, a gzip stream without a time or a
file name).
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import sys
import warnings
from pathlib import Path
from typing import Any

TORCH, TORCHVISION = "2.14.1", "0.29.1"
OUT = Path(__file__).resolve().parent.parent / "tests" / "golden" / "torchvision_truth.json.gz"
#: the image size every model is measured at
SIZE = 224
#: builders also written with other arguments: 10 classes (the head changes, nothing else),
#: and the MobileNets' width multipliers
VARIANTS: dict[str, tuple[dict[str, Any], ...]] = {
    "resnet18": ({"num_classes": 10},),
    "vgg11": ({"num_classes": 10},),
    "efficientnet_b0": ({"num_classes": 10},),
    "regnet_y_400mf": ({"num_classes": 10},),
    "mobilenet_v2": ({"width_mult": 0.5}, {"width_mult": 1.4}),
    "mobilenet_v3_large": ({"width_mult": 0.75},),
    "mobilenet_v3_small": ({"num_classes": 10}, {"width_mult": 0.75}),
}


def _imports() -> tuple[Any, Any, Any]:
    try:
        import torch
        import torchvision
        from torch.utils.flop_counter import FlopCounterMode
    except ImportError as err:
        sys.exit(
            f"torchvision_truth.py: {err.name} is not installed in this Python "
            f"({sys.executable}). Run it with an environment of its own: python3.11 -m venv "
            f"/path/to/tvenv && /path/to/tvenv/bin/pip install torch=={TORCH} "
            f"torchvision=={TORCHVISION}"
        )
    for module, version in ((torch, TORCH), (torchvision, TORCHVISION)):
        if module.__version__.split("+")[0] != version:
            sys.exit(
                f"torchvision_truth.py: {module.__name__} {module.__version__} is installed; "
                f"the truth file is written with {version}"
            )
    return torch, torchvision, FlopCounterMode


def _measure(torch: Any, counter: Any, builder: Any, size: int, **kwargs: Any) -> dict[str, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # googlenet / inception_v3: the init scheme will change
        try:
            with torch.device("meta"):
                model = builder(weights=None, **kwargs)
        except NotImplementedError:  # RegNet computes its widths with tensors: on the CPU
            model = builder(weights=None, **kwargs).to("meta")
    model.eval()
    x = torch.empty(1, 3, size, size, device="meta")
    with torch.no_grad(), counter(display=False) as flops:
        out = model(x)
    if not isinstance(out, torch.Tensor):  # an (aux) output tuple; eval gives the logits
        out = out[0]
    return {
        "parameters": [[n, list(p.shape)] for n, p in model.named_parameters()],
        "buffers": [
            [n, list(b.shape), str(b.dtype).removeprefix("torch.")]
            for n, b in model.named_buffers()
        ],
        "total": sum(p.numel() for p in model.parameters()),
        "image_size": size,
        "output": list(out.shape),
        "flops": int(flops.get_total_flops()),
    }


def _published(torch: Any, tv: Any, counter: Any, name: str, builder: Any) -> list[Any]:
    out = []
    for weights in tv.models.get_model_weights(name):
        meta = weights.meta
        crop = weights.transforms().crop_size[0]
        categories = meta.get("categories") or ()  # None for a few: 1000 classes
        kwargs: dict[str, Any] = {"num_classes": len(categories) or 1000}
        if name.startswith("vit_"):
            kwargs["image_size"] = meta["min_size"][0]  # as _vision_transformer sets it
        built = _measure(torch, counter, builder, crop, **kwargs)
        out.append(
            {
                "weights": weights.name,
                "num_params": meta["num_params"],
                "ops": meta.get("_ops"),
                "min_size": list(meta["min_size"]),
                "crop_size": crop,
                "resize_size": weights.transforms().resize_size[0],
                "built_with": kwargs,
                "total": built["total"],
                "flops": built["flops"],
            }
        )
    return out


def truth() -> dict[str, Any]:
    torch, tv, counter = _imports()
    names = tv.models.list_models(module=tv.models)
    models: dict[str, Any] = {}
    for name in names:
        print(name, file=sys.stderr, flush=True)
        builder = tv.models.get_model_builder(name)
        entry = _measure(torch, counter, builder, SIZE)
        entry["published"] = _published(torch, tv, counter, name, builder)
        models[name] = entry
        for kwargs in VARIANTS.get(name, ()):
            key = name + ":" + ",".join(f"{k}={v}" for k, v in kwargs.items())
            models[key] = {**_measure(torch, counter, builder, SIZE, **kwargs), "kwargs": kwargs}
    return {
        "torch": TORCH,
        "torchvision": TORCHVISION,
        "made_by": "scripts/torchvision_truth.py",
        "models": models,
    }


def write(data: dict[str, Any], path: Path) -> None:
    text = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0, compresslevel=9) as f:
        f.write(text)
    path.write_bytes(buffer.getvalue())
    print(f"wrote {path} ({len(buffer.getvalue()):,} bytes, {len(text):,} as JSON)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=OUT, help=f"where to write (default {OUT})")
    args = parser.parse_args()
    write(truth(), args.out)


if __name__ == "__main__":
    main()
