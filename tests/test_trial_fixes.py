"""What a newcomer's trial found: each message or count as it should read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from shapecalc.adapters.checkpoint import CheckpointError, read_checkpoint
from shapecalc.adapters.hf_config import hf_model
from tests.test_cli import run

torch = pytest.importorskip("torch")


def test_a_gguf_given_as_a_checkpoint_points_to_inspect(tmp_path: Path) -> None:
    path = tmp_path / "x.gguf"
    path.write_bytes(b"GGUF" + (3).to_bytes(4, "little") + bytes(16))
    with pytest.raises(CheckpointError) as caught:
        read_checkpoint(str(path))
    said = str(caught.value)
    assert "`shapecalc inspect FILE.gguf` reads it" in said and "gguf tools" not in said


def test_a_clip_vision_part_s_vocab_size_changes_no_shape() -> None:
    """llava-hf/llava-1.5-7b-hf's vision_config, as older transformers wrote it, holds
    "vocab_size": 32000; CLIPVisionConfig declares no such field and CLIPVisionModel never
    reads it: counted as transformers builds the config, the field kept."""
    from tests.test_llava import built, params

    vision = {
        "model_type": "clip_vision_model",
        "hidden_size": 8,
        "intermediate_size": 12,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "image_size": 8,
        "patch_size": 4,
        "projection_dim": 6,
        "vocab_size": 32000,
    }
    config = {
        "model_type": "llava",
        "architectures": ["LlavaForConditionalGeneration"],
        "text_config": {
            "model_type": "llama",
            "vocab_size": 40,
            "hidden_size": 8,
            "intermediate_size": 12,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
        },
        "vision_config": vision,
    }
    ours = hf_model(config).model()
    theirs = built(config, "LlavaForConditionalGeneration")
    assert theirs.config.vision_config.vocab_size == 32000
    assert ours.named_parameters() == params(theirs)


@pytest.mark.parametrize(("tokens", "pooled"), [(35, 36), (8, 4), (5, 4)])
def test_gemma3_image_tokens_the_projector_does_not_pool_to_are_refused(
    tokens: int, pooled: int
) -> None:
    """P = 6 patches a side: U = 35 pools by 6 // ⌊√35⌋ = 1 to 36 features, U = 8 and 5 by
    6 // 2 = 3 to 4; transformers' forward with U image tokens refuses the features; the
    tensors are counted, a cost is one line naming the field."""
    from tests.test_gemma3_projector import SMALL, real

    side = int(tokens**0.5)
    kernel = 6 // side
    assert (6 // kernel) ** 2 == pooled != tokens
    counted = run([*SMALL, "--image-tokens", str(tokens)], 80)
    assert counted.exit_code == 0, counted.output
    refused = run([*SMALL, "--image-tokens", str(tokens), "--flops"], 80)
    assert refused.exit_code == 2, refused.output
    assert f"mm_tokens_per_image (--image-tokens) = {tokens}" in refused.stderr
    assert f"(6 // {kernel})² = {(6 // kernel) ** 2} ≠ {tokens}" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    config = {
        "text_config": {"vocab_size": 40, "hidden_size": 16, "intermediate_size": 8,
                        "num_hidden_layers": 1, "num_attention_heads": 2,
                        "num_key_value_heads": 1, "head_dim": 8, "pad_token_id": 0},
        "vision_config": {"hidden_size": 8, "intermediate_size": 8, "num_hidden_layers": 1,
                          "num_attention_heads": 2, "image_size": 24, "patch_size": 4},
        "mm_tokens_per_image": tokens, "image_token_index": 3,
        "boi_token_index": 1, "eoi_token_index": 2,
    }  # fmt: skip
    theirs = real(config).eval()
    ids = torch.tensor([[1, *[3] * tokens, 5]])
    with torch.no_grad(), pytest.raises(Exception, match="Image features and image tokens"):
        theirs(input_ids=ids, pixel_values=torch.randn(1, 3, 24, 24))


def test_a_gguf_s_wrong_shaped_tensor_is_not_counted_matched(tmp_path: Path) -> None:
    from tests.test_trial_wording import tiny_llama

    tiny_llama(tmp_path / "t.gguf", halve="blk.1.attn_q.weight")
    result = run(["inspect", str(tmp_path / "t.gguf")], 200)
    assert result.exit_code == 1, result.output
    said = " ".join(result.stdout.split())
    assert "matched 20 of the 21 tensors the metadata implies (1 of the wrong shape beside" in said
    assert "wrong shape blk.1.attn_q.weight" in said


@pytest.mark.parametrize("wrong", ["shape", "dtype"])
def test_a_folder_s_tensor_of_another_shape_or_dtype_is_not_counted_matched(
    wrong: str, tmp_path: Path
) -> None:
    from shapecalc.adapters.hf_checkpoint import check_folder
    from tests.test_hf_checkpoint import edit, save

    folder = save(tmp_path, "llama", shards=True, dtype=torch.bfloat16)
    whole = check_folder(str(folder)).matched
    name = "model.layers.0.self_attn.q_proj.weight"

    def change(ts: dict[str, Any]) -> None:
        dtype, shape, blob = ts[name]
        ts[name] = ("F32", shape, blob * 2) if wrong == "dtype" else (dtype, [8, 32], blob)

    edit(folder, change)
    check = check_folder(str(folder))
    assert len(check.wrong_shape if wrong == "shape" else check.wrong_dtype) == 1
    assert check.matched == whole - 1
    said = " ".join(run(["inspect", str(folder)], 200).stdout.split())
    told = "of the wrong shape" if wrong == "shape" else "of another dtype"
    assert f"matched {whole - 1} tensors (1 {told} beside them) · " in said


def test_mllama_s_state_line_and_note_count_the_mask_as_torch_does(tmp_path: Path) -> None:
    """The vision model and projector's FLOPs, once per request: the note, the State
    line (generation's encoder_flops) and the forward's rows all hold the aspect-ratio
    mask's outer product, as FlopCounterMode counts the real vision model."""
    import json
    import re

    from shapecalc.analysis.cost import analyze
    from tests.test_mllama import CONFIGS, _built, _counted, _image

    config = CONFIGS[0]
    module = _built(config)

    def forward() -> Any:
        states = module.model.vision_model(**_image(config, 1)).last_hidden_state
        return module.model.multi_modal_projector(states)

    spent, _ = _counted(forward)
    (tmp_path / "config.json").write_text(json.dumps(config))
    result = run(["hf", str(tmp_path), "--flops", "--memory", "--batch", "1", "--seq-len", "5"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    note = re.search(r"projector's forward ([\d,]+) FLOPs", text)
    state = re.search(r"multi_modal_projector run once, ([\d,]+) FLOPs", text)
    assert note and state, text[-2000:]
    assert int(note[1].replace(",", "")) == int(state[1].replace(",", "")) == spent
    model = hf_model(config).model()
    rows = [r for r in analyze(model, batch=1, seq_len=5).layers if "aspect_ratio_mask" in r.name]
    assert len(rows) == 1 and rows[0].macs > 0 and rows[0].backward_flops == 0
