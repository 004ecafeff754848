"""A decode step of a model whose vision tower and projector run at prefill (Gemma 3,
LLaVA, Mistral 3: pixel_values only with the prompt) is its language model on one
token: the modules it runs are those transformers runs in a forward with the cache
after a prefill with an image (run here on CPU, tiny configs)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from click.testing import CliRunner

from shapecalc.adapters.hf_config import from_hf_config
from shapecalc.analysis.cost import analyze
from shapecalc.cli.app import cli
from shapecalc.core.tree import run_indices

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

GEMMA3: dict[str, Any] = {
    "model_type": "gemma3",
    "architectures": ["Gemma3ForConditionalGeneration"],
    "mm_tokens_per_image": 4,
    "image_token_index": 31,
    "boi_token_index": 29,
    "eoi_token_index": 30,
    "text_config": {
        "model_type": "gemma3_text",
        "vocab_size": 32,
        "hidden_size": 16,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "head_dim": 8,
        "intermediate_size": 24,
        "sliding_window": 4,
    },
    "vision_config": {
        "model_type": "siglip_vision_model",
        "hidden_size": 16,
        "image_size": 8,
        "patch_size": 2,
        "intermediate_size": 24,
        "num_attention_heads": 2,
        "num_hidden_layers": 1,
        "vision_use_head": False,
    },
}
LLAVA: dict[str, Any] = {
    "model_type": "llava",
    "architectures": ["LlavaForConditionalGeneration"],
    "image_token_index": 31,
    "text_config": {
        "model_type": "llama",
        "vocab_size": 32,
        "hidden_size": 16,
        "intermediate_size": 24,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
    },
    "vision_config": {
        "model_type": "clip_vision_model",
        "hidden_size": 16,
        "image_size": 8,
        "patch_size": 2,
        "intermediate_size": 24,
        "num_attention_heads": 2,
        "num_hidden_layers": 2,
        "projection_dim": 16,
    },
}


def expanded(name: str) -> list[str]:
    found = re.search(r"\{[\d,.]+\}", name)
    if found is None:
        return [name]
    numbers = run_indices(found.group(0))
    assert numbers is not None, name
    head, tail = name[: found.start()], name[found.end() :]
    return [n for i in numbers for n in expanded(f"{head}{i}{tail}")]


def transformers_decode(config: dict[str, Any], image_tokens: int) -> tuple[set[str], Any]:
    """The modules holding parameters that one decode step runs, after a prefill with an
    image, and the model."""
    fields = {k: v for k, v in config.items() if k not in ("model_type", "architectures")}
    conf = transformers.AutoConfig.for_model(config["model_type"], **fields)
    cls = getattr(transformers, config["architectures"][0])
    model = cls._from_config(conf, attn_implementation="eager").eval()
    size = config["vision_config"]["image_size"]
    ids = torch.tensor([[1] + [config["image_token_index"]] * image_tokens + [2, 3]])
    ran: list[str] = []
    with torch.no_grad():
        prefill = model(input_ids=ids, pixel_values=torch.randn(1, 3, size, size), use_cache=True)
        hooks = [
            m.register_forward_hook(lambda *_, n=n: ran.append(n))
            for n, m in model.named_modules()
            if list(m.parameters(recurse=False))
        ]
        model(input_ids=torch.tensor([[5]]), cache=prefill.past_key_values, use_cache=True)
        for hook in hooks:
            hook.remove()
    return set(ran), model


@pytest.mark.parametrize(("config", "image_tokens"), [(GEMMA3, 4), (LLAVA, 16)])
def test_a_decode_step_runs_what_transformers_runs(
    config: dict[str, Any], image_tokens: int
) -> None:
    ran, model = transformers_decode(config, image_tokens)
    assert ran and not any("vision" in n or "projector" in n for n in ran)
    owners = {n for n, m in model.named_modules() if list(m.parameters(recurse=False))}
    step = analyze(from_hf_config(config), batch=1, seq_len=1, training="none").decode_step()
    said = {n for row in step.layers for n in expanded(row.name.split(" (")[0])}
    assert said & owners == ran
    assert step.held is None


def test_gemma3_s_decode_activations_are_the_language_model_s() -> None:
    """Before: 80 MB from the vision tower's MLP on a 4B config; now the head's input and
    output at one position, (2,560 + 262,208) × 2 bytes."""
    import json
    from pathlib import Path
    from tempfile import TemporaryDirectory

    from tests.test_fit_own_context import GEMMA3 as G4B

    with TemporaryDirectory() as folder:
        path = Path(folder) / "config.json"
        path.write_text(json.dumps(G4B))
        args = ["hf", str(path), "--memory", "--batch", "1", "--seq-len", "4096"]
        result = CliRunner().invoke(cli, args, env={"COLUMNS": "80"}, prog_name="shapecalc")
    assert result.exit_code == 0, result.output
    line = next(x for x in result.output.splitlines() if "activations, decode step" in x)
    assert "529,536 bytes" in line
    assert max(len(x) for x in result.output.splitlines()) <= 80
