"""T5's, mT5's and UMT5's task heads as transformers builds them from ``architectures``:
T5ForSequenceClassification (``transformer``, a T5Model, and ``classification_head``:
dense H × H, tanh, out_proj N × H at the last end-of-sequence token),
T5ForTokenClassification (``transformer``, a T5EncoderModel, and ``classifier``, N × H)
and T5ForQuestionAnswering (encoder, decoder and ``qa_outputs``, N × H): every name and
shape on the meta device, and every part's FLOPs against FlopCounterMode on a CPU
forward."""

from __future__ import annotations

from typing import Any

import pytest

from shapecalc.adapters.hf_config import hf_model
from shapecalc.analysis.cost import analyze
from tests.test_cli import run
from tests.test_t5 import TINY, built, params

torch = pytest.importorskip("torch")
FlopCounterMode = pytest.importorskip("torch.utils.flop_counter").FlopCounterMode

HEADS = {
    "ForSequenceClassification": (
        "transformer.encoder",
        "transformer.decoder",
        "classification_head",
    ),
    "ForTokenClassification": ("transformer.encoder", "classifier"),
    "ForQuestionAnswering": ("encoder", "decoder", "qa_outputs"),
}
PREFIX = {"t5": "T5", "mt5": "MT5", "umt5": "UMT5"}


@pytest.mark.parametrize("head", list(HEADS))
@pytest.mark.parametrize(
    ("model_type", "labels"), [("t5", None), ("mt5", 5), ("umt5", None), ("t5", 3)]
)
def test_names_shapes_and_flops_equal_transformers(
    head: str, model_type: str, labels: int | None
) -> None:
    config: dict[str, Any] = {
        **TINY,
        "model_type": model_type,
        "architectures": [PREFIX[model_type] + head],
        "decoder_start_token_id": 0,  # T5 and mT5 configs on the Hub say it; _shift_right needs it
    }
    if labels is not None:
        config["num_labels"] = labels
    model = hf_model(config).model()
    assert model.named_parameters() == params(built(config))
    if head == "ForQuestionAnswering" and labels not in (None, 2):
        return  # built with N scores, but its forward splits them into a start and an end
    batch, length = 2, 6
    theirs = built(config, "cpu", attn_implementation="eager").eval()
    ids = torch.randint(2, 40, (batch, length))
    ids[:, -1] = 1  # one end-of-sequence token a row, last, as the classifier reads it
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        theirs(input_ids=ids)
    counts = {k: sum(v.values()) for k, v in counter.get_flop_counts().items()}
    cost = analyze(model, batch=batch, seq_len=length)
    assert counts["Global"] == 2 * cost.macs
    top = type(theirs).__name__
    for part in HEADS[head]:
        mine = sum(
            2 * r.macs
            for r in cost.layers
            if r.name.split(" ")[0] == part or r.name.startswith(part + ".")
        )
        assert mine == counts.get(f"{top}.{part}", 0), part


def test_labels_belong_to_a_task_head() -> None:
    args = ["t5", "--vocab", "40", "--hidden", "16", "--layers", "1", "--heads", "2"]
    refused = run([*args, "--labels", "4"], 80)
    assert refused.exit_code == 2
    assert "labels sizes a task head" in refused.output
    refused = run([*args, "--head", "token-cls", "--source-len", "9"], 80)
    assert refused.exit_code == 2 and "source_len" in refused.output
    for width in (80, 200):
        shown = run([*args, "--head", "token-cls", "--labels", "4"], width)
        assert shown.exit_code == 0, shown.output
        assert max(len(line) for line in shown.output.splitlines()) <= width
        assert "transformer.encoder.block.0" in " ".join(shown.output.split())
