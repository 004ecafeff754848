"""LoRA without --lora-targets: peft's default target modules for the config's model_type
(``LoraModel._prepare_adapter_config``), against ``get_peft_model`` with no
``target_modules``; a type peft has no default for refused in one line, as peft refuses
it, naming the modules the model could take."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import pytest

from shapecalc.adapt import LoraConfig, lora
from shapecalc.adapt.lora import model_type_of
from shapecalc.adapters.hf_config import from_hf_config
from shapecalc.core.errors import InvalidArgumentError
from tests.test_cli import run
from tests.test_lora import GPT2, LLAMA, LLAMA_FLAGS, MOE, _model_of, _ours, _peft

peft = pytest.importorskip("peft")

QWEN2 = {**LLAMA, "model_type": "qwen2"}


def _declared() -> dict[str, tuple[str, ...]]:
    from shapecalc.architectures import commands, get

    return {t.model_type: t.lora_targets for c in commands() for t in get(c).hf}


def test_each_type_declares_the_installed_peft_s_defaults() -> None:
    """Every model type's declared default targets are peft's (none where peft has none)."""
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as theirs

    for model_type, targets in _declared().items():
        assert targets == tuple(theirs.get(model_type, ())), model_type


@pytest.mark.parametrize("config", [QWEN2, LLAMA, GPT2], ids=["qwen2", "llama", "gpt2"])
@pytest.mark.parametrize("r", [1, 4])
def test_no_targets_adapts_what_peft_adapts(config: dict[str, Any], r: int) -> None:
    lc = LoraConfig(r=r, targets=None)
    assert lc.peft_kwargs()["target_modules"] is None
    assert _ours(config, lc) == _peft(config, lc)
    adapted = lora(from_hf_config(config), lc)
    wanted = _declared()[config["model_type"]]
    assert f"targets {', '.join(wanted)}," in adapted.notes[-1]


def test_a_type_peft_has_no_default_for_is_refused_as_peft_refuses() -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        lora(from_hf_config(MOE), LoraConfig(r=4, targets=None))
    said = str(caught.value)
    assert caught.value.field == "lora_targets"
    assert "model_type 'qwen2_moe'" in said and "q_proj" in said and "shared_expert" in said
    with warnings.catch_warnings(), pytest.raises(ValueError, match="target_modules"):
        warnings.simplefilter("ignore")
        peft.get_peft_model(_model_of(MOE), peft.LoraConfig(r=4))


def test_an_architecture_command_takes_its_config_type_s_default() -> None:
    result = run([*LLAMA_FLAGS, "--lora-rank", "4"], 80)
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    assert "self_attn.q_proj.lora_A.default.weight" in text
    assert "self_attn.v_proj.lora_A.default.weight" in text
    assert "k_proj.lora_A" not in text
    assert model_type_of(from_hf_config(QWEN2)) == "qwen2"


@pytest.mark.parametrize("width", [80, 200])
def test_the_commands_refuse_in_one_line(width: int, tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps(MOE))
    for command in (
        ["hf", str(tmp_path), "--lora-rank", "4"],
        ["fit", "hf", str(tmp_path), "--training", "adamw", "--lora-rank", "4", "--gpu", "H100"],
    ):
        result = run(command, width)
        assert result.exit_code == 2, result.output
        assert "--lora-targets" in result.stderr and "qwen2_moe" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "peft has no default target modules" in result.stderr
