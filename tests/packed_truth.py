"""The tensors GPTQ and AWQ layers store, as the real packers write them: the truth
``tests/golden/packed_truth.json`` records and tests/test_gptq.py and test_awq.py check
shapecalc against.

GPTQModel (the GPTQ kernels transformers loads through optimum, and its AWQ layers) pins
``numpy==2.2.6`` and AutoAWQ needs a CUDA build to install, so neither is in the test
environment; this script runs them where they are importable and writes what they store:

    pip install --target /tmp/gptq_site --no-deps gptqmodel==7.6.0 optimum==2.3.0 \\
        defuser device-smi logbar pypcre tokenicer accelerate threadpoolctl torchao==0.18.0
    pip download --no-deps autoawq==0.2.9 && tar xzf autoawq-0.2.9.tar.gz
    PYTHONPATH=autoawq-0.2.9:/tmp/gptq_site python tests/packed_truth.py

- GPTQ layers: GPTQModel's ``TorchLinear`` (the kernel ``hf_select_quant_linear_v2``
  picks on a CPU) built with its buffers for drawn sizes, bits and group sizes, and a few
  packed for real from a Linear (``pack_original``, the packer optimum calls);
- AWQ layers: AutoAWQ's ``WQLinear_GEMM``, ``WQLinear_GEMV`` and ``WQLinear_GEMVFast``
  packed for real from a Linear (``from_linear`` with scales and zero points, as AutoAWQ's
  quantizer calls it), and ``WQLinear_Exllama`` as built for loading;
- models: tiny transformers models converted as transformers loads a GPTQ checkpoint
  (optimum's ``GPTQQuantizer.convert_model``: LLaMA, GPT-2 with its Conv1D) and an AWQ one
  (transformers' ``replace_with_awq_linear``), every tensor of the state dict.
"""

from __future__ import annotations

import importlib.machinery
import json
import random
import sys
import types
from pathlib import Path
from typing import Any

TRUTH = Path(__file__).parent / "golden" / "packed_truth.json"

#: the tiny configs of the model records (transformers' keys)
LLAMA: dict[str, Any] = {
    "model_type": "llama",
    "vocab_size": 96,
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "tie_word_embeddings": False,
    "attention_bias": True,
}
GPT2: dict[str, Any] = {
    "model_type": "gpt2",
    "vocab_size": 96,
    "n_embd": 64,
    "n_layer": 2,
    "n_head": 4,
    "n_positions": 32,
}


def _state(module: Any) -> list[list[Any]]:
    return [
        [name, list(t.shape), str(t.dtype).removeprefix("torch.")]
        for name, t in module.state_dict().items()
    ]


def gptq_sizes(seed: int = 27, count: int = 60) -> list[dict[str, Any]]:
    """Drawn layer settings: bits, group size, in, out, bias (3-bit: multiples of 32)."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        bits = rng.choice((2, 3, 4, 8))
        group = rng.choice((-1, 16, 32, 64, 128, 256))
        if bits == 3:
            n_in, n_out = 32 * rng.randint(1, 12), 32 * rng.randint(1, 12)
        else:
            n_in, n_out = rng.randint(1, 400), rng.randint(1, 400)
        out.append(
            {
                "bits": bits,
                "group_size": group,
                "in": n_in,
                "out": n_out,
                "bias": rng.random() < 0.5,
            }
        )
    return out


def gptq_layer(bits: int, group_size: int, n_in: int, n_out: int, bias: bool, pack: bool) -> Any:
    import torch
    from gptqmodel.nn_modules.qlinear.torch import TorchLinear

    layer = TorchLinear(
        bits=bits,
        group_size=group_size,
        sym=True,
        desc_act=False,
        in_features=n_in,
        out_features=n_out,
        bias=bias,
        register_buffers=True,
    )
    if pack:
        linear = torch.nn.Linear(n_in, n_out, bias=bias)
        groups = layer.scales.shape[0]
        g_idx = torch.tensor([i // layer.group_size for i in range(n_in)], dtype=torch.int32)
        scales = torch.rand(n_out, groups) + 0.1
        zeros = torch.randint(0, 2**bits - 1, (n_out, groups)).float()
        layer.pack_original(linear, scales, zeros, g_idx)
    return layer


def stub_datasets() -> None:
    """AutoAWQ's package imports its calibration data's library on import; the layers
    need none of it."""
    if "datasets" not in sys.modules:
        stub = types.ModuleType("datasets")
        stub.__spec__ = importlib.machinery.ModuleSpec("datasets", None)
        stub.load_dataset = None  # type: ignore[attr-defined]
        sys.modules["datasets"] = stub


def awq_layer(version: str, group_size: int, n_in: int, n_out: int, bias: bool) -> Any:
    import torch

    stub_datasets()
    from awq.modules.linear.exllama import WQLinear_Exllama
    from awq.modules.linear.gemm import WQLinear_GEMM
    from awq.modules.linear.gemv import WQLinear_GEMV
    from awq.modules.linear.gemv_fast import WQLinear_GEMVFast

    linear = torch.nn.Linear(n_in, n_out, bias=bias)
    if version == "exllama":
        return WQLinear_Exllama(4, group_size, n_in, n_out, bias, "cpu")
    g = n_in if group_size == -1 else group_size
    scales = torch.rand(n_out, n_in // g) + 0.1
    zeros = torch.randint(0, 15, (n_out, n_in // g)).float()
    if version == "gemm":  # awq/quantize/quantizer.py _apply_quant: transposed for GEMM
        return WQLinear_GEMM.from_linear(linear, 4, group_size, False, scales.t(), zeros.t())
    cls = {"gemv": WQLinear_GEMV, "gemv_fast": WQLinear_GEMVFast}[version]
    return cls.from_linear(linear, 4, group_size, False, scales, zeros)


def awq_sizes(seed: int = 27, count: int = 24) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        version = rng.choice(("gemm", "gemv", "gemv_fast", "exllama"))
        group = rng.choice((32, 64, 128, 256))
        n_in = group * rng.randint(1, 6) * (2 if version == "gemv_fast" and group == 32 else 1)
        n_out = 32 * rng.randint(1, 12)
        out.append(
            {
                "version": version,
                "group_size": group,
                "in": n_in,
                "out": n_out,
                "bias": rng.random() < 0.5,
            }
        )
    return out


def gptq_model(config: dict[str, Any], **settings: Any) -> list[list[Any]]:
    import torch
    import transformers
    from optimum.gptq import GPTQQuantizer

    cfg = transformers.AutoConfig.for_model(**config)
    with torch.device("cpu"):
        model = transformers.AutoModelForCausalLM.from_config(cfg, dtype=torch.float16)
    quantizer = GPTQQuantizer(**settings)
    quantizer.convert_model(model, device_map="cpu")
    return _state(model)


def awq_model(config: dict[str, Any], **settings: Any) -> list[list[Any]]:
    import torch
    import transformers
    from transformers.integrations import replace_with_awq_linear
    from transformers.quantizers.base import get_keys_to_not_convert

    cfg = transformers.AutoConfig.for_model(**config)
    model = transformers.AutoModelForCausalLM.from_config(cfg, dtype=torch.float16)
    skip = get_keys_to_not_convert(model)
    replace_with_awq_linear(
        model,
        modules_to_not_convert=skip,
        quantization_config=transformers.AwqConfig(**settings),
        device_map="cpu",
    )
    return _state(model)


def main() -> None:
    truth: dict[str, Any] = {"gptq_layers": [], "awq_layers": [], "models": []}
    for i, s in enumerate(gptq_sizes()):
        pack = i % 4 == 0 and (s["bits"] != 3 or s["in"] % 32 == 0)
        layer = gptq_layer(s["bits"], s["group_size"], s["in"], s["out"], s["bias"], pack)
        truth["gptq_layers"].append({**s, "packed": pack, "state": _state(layer)})
    for s in awq_sizes():
        layer = awq_layer(s["version"], s["group_size"], s["in"], s["out"], s["bias"])
        truth["awq_layers"].append({**s, "state": _state(layer)})
    for name, config, settings in (
        ("llama", LLAMA, {"bits": 4, "group_size": 32}),
        ("llama", LLAMA, {"bits": 3, "group_size": 64, "desc_act": True, "act_group_aware": False}),
        ("llama", LLAMA, {"bits": 8, "group_size": -1}),
        ("gpt2", GPT2, {"bits": 4, "group_size": 32}),
        (
            "llama",
            LLAMA,
            {"bits": 2, "group_size": 32, "modules_in_block_to_quantize": [["self_attn.q_proj"]]},
        ),
    ):
        truth["models"].append(
            {
                "method": "gptq",
                "config": config,
                "settings": settings,
                "state": gptq_model(config, **settings),
                "name": name,
            }
        )
    truth["models"].append(
        {
            "method": "awq",
            "config": LLAMA,
            "settings": {"bits": 4, "group_size": 32},
            "state": awq_model(LLAMA, bits=4, group_size=32),
            "name": "llama",
        }
    )
    TRUTH.write_text(json.dumps(truth, indent=1) + "\n")
    print(f"wrote {TRUTH}")


if __name__ == "__main__":
    main()
