"""BART's and mBART's task heads as transformers builds them from ``architectures``:
BartForSequenceClassification (``classification_head``: dense H × H, tanh, out_proj
N × H, read at the last end-of-sequence token; num_labels 3 by BartConfig's own default,
2 by mBART's) and BartForQuestionAnswering (``qa_outputs``, 2 × H): every name and shape
on the meta device, and every module's FLOPs against FlopCounterMode on a CPU forward."""

from __future__ import annotations

from typing import Any

import pytest

from shapecalc.adapters.hf_config import hf_model
from shapecalc.analysis.cost import analyze
from tests.test_bart import TINY, built
from tests.test_cli import run
from tests.test_t5 import params

torch = pytest.importorskip("torch")
FlopCounterMode = pytest.importorskip("torch.utils.flop_counter").FlopCounterMode

CASES = [
    {**TINY, "architectures": ["BartForSequenceClassification"]},
    {**TINY, "architectures": ["BartForSequenceClassification"], "num_labels": 5},
    {**TINY, "model_type": "mbart", "architectures": ["MBartForSequenceClassification"]},
    {**TINY, "architectures": ["BartForQuestionAnswering"]},
    {**TINY, "model_type": "mbart", "architectures": ["MBartForQuestionAnswering"]},
]


@pytest.mark.parametrize("config", CASES)
def test_names_shapes_and_flops_equal_transformers(config: dict[str, Any]) -> None:
    model = hf_model(config).model()
    assert model.named_parameters() == params(built(config))
    labels = config.get("num_labels", 3 if config["model_type"] == "bart" else 2)
    if "Sequence" in config["architectures"][0]:
        head = dict(model.named_parameters())["classification_head.out_proj.weight"]
        assert head == (labels, TINY["d_model"])
    batch, length = 2, 6
    theirs = built(config, "cpu", attn_implementation="eager").eval()
    ids = torch.randint(3, 40, (batch, length))
    ids[:, -1] = 2  # one end-of-sequence token a row, last, as the classifier reads it
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        theirs(input_ids=ids)
    counts = {k: sum(v.values()) for k, v in counter.get_flop_counts().items()}
    cost = analyze(model, batch=batch, seq_len=length)
    assert counts["Global"] == 2 * cost.macs
    top = type(theirs).__name__
    for part in ("model.encoder", "model.decoder", "classification_head", "qa_outputs"):
        mine = sum(2 * r.macs for r in cost.layers if r.name.startswith(part + "."))
        mine += sum(2 * r.macs for r in cost.layers if r.name == part)
        assert mine == counts.get(f"{top}.{part}", 0), part


def test_labels_belong_to_the_classification_head() -> None:
    args = ["bart", "--vocab", "40", "--hidden", "12", "--layers", "1", "--heads", "2"]
    refused = run([*args, "--labels", "4"], 80)
    assert refused.exit_code == 2
    assert "labels sizes the classification head (--head seq-cls)" in refused.output
    for width in (80, 200):
        shown = run([*args, "--head", "seq-cls", "--labels", "4"], width)
        assert shown.exit_code == 0, shown.output
        assert max(len(line) for line in shown.output.splitlines()) <= width
        assert "classification_head.out_proj" in " ".join(shown.output.split())
