"""The task heads (sequence and token classification, question answering, BERT's
pretraining, next-sentence and multiple-choice heads): read from a config's
``architectures[0]``, asked for with ``--head``, verified against the transformers class."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shapecalc.adapters.hf_config import from_hf_config, hf_model
from shapecalc.architectures import get
from shapecalc.core.errors import InvalidArgumentError
from tests.test_cli import run

SMALL = ["--vocab", "50", "--hidden", "32", "--layers", "1", "--heads", "4"]
LLAMA: dict[str, Any] = {
    "model_type": "llama",
    "vocab_size": 100,
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 128,
}


@pytest.mark.parametrize(
    ("args", "cls"),
    [
        (["llama", *SMALL, "--head", "seq-cls", "--labels", "1"], "LlamaForSequenceClassification"),
        (["llama", *SMALL, "--head", "token-cls", "--labels", "5"], "LlamaForTokenClassification"),
        (["llama", *SMALL, "--head", "qa"], "LlamaForQuestionAnswering"),
        (["llama", *SMALL, "--head", "qa", "--qa-body", "model"], "MistralForQuestionAnswering"),
        (
            ["llama", *SMALL, "--head", "seq-cls", "--activation", "gelu_tanh", "--gemma-norm"],
            "GemmaForSequenceClassification",
        ),
        (
            ["llama", *SMALL, "--head", "token-cls", "--experts", "2"],
            "MixtralForTokenClassification",
        ),
        (["gpt2", *SMALL, "--head", "seq-cls"], "GPT2ForSequenceClassification"),
        (["gpt2", *SMALL, "--head", "token-cls", "--labels", "3"], "GPT2ForTokenClassification"),
        (["gpt2", *SMALL, "--head", "qa"], "GPT2ForQuestionAnswering"),
        (["gpt-neox", *SMALL, "--head", "seq-cls"], "GPTNeoXForSequenceClassification"),
        (["gpt-neox", *SMALL, "--head", "token-cls"], "GPTNeoXForTokenClassification"),
        (["gpt-neox", *SMALL, "--head", "qa"], "GPTNeoXForQuestionAnswering"),
        (["phi", *SMALL, "--head", "seq-cls"], "PhiForSequenceClassification"),
        (["phi", *SMALL, "--head", "token-cls"], "PhiForTokenClassification"),
        (["starcoder2", *SMALL, "--head", "seq-cls"], "Starcoder2ForSequenceClassification"),
        (["starcoder2", *SMALL, "--head", "token-cls"], "Starcoder2ForTokenClassification"),
        (["olmo2", *SMALL, "--head", "seq-cls", "--labels", "1"], "Olmo2ForSequenceClassification"),
        (["falcon", *SMALL, "--head", "seq-cls"], "FalconForSequenceClassification"),
        (["falcon", *SMALL, "--head", "token-cls"], "FalconForTokenClassification"),
        (["falcon", *SMALL, "--head", "qa"], "FalconForQuestionAnswering"),
        (["bert", *SMALL, "--head", "pretraining"], "BertForPreTraining"),
        (["bert", *SMALL, "--head", "nsp"], "BertForNextSentencePrediction"),
        (["bert", *SMALL, "--head", "seq-cls", "--labels", "3"], "BertForSequenceClassification"),
        (["bert", *SMALL, "--head", "token-cls"], "BertForTokenClassification"),
        (["bert", *SMALL, "--head", "qa", "--labels", "3"], "BertForQuestionAnswering"),
        (["bert", *SMALL, "--head", "multiple-choice"], "BertForMultipleChoice"),
        (
            ["bert", *SMALL, "--layout", "roberta", "--head", "seq-cls"],
            "RobertaForSequenceClassification",
        ),
        (
            ["bert", *SMALL, "--layout", "roberta", "--head", "token-cls"],
            "RobertaForTokenClassification",
        ),
        (["bert", *SMALL, "--layout", "roberta", "--head", "qa"], "RobertaForQuestionAnswering"),
        (
            ["bert", *SMALL, "--layout", "roberta", "--head", "multiple-choice"],
            "RobertaForMultipleChoice",
        ),
    ],
)
def test_verify_each_task_head_against_its_transformers_class(args: list[str], cls: str) -> None:
    pytest.importorskip("transformers")
    result = run([*args, "--verify"])
    assert result.exit_code == 0, result.output
    assert "Verified against transformers" in result.stderr and cls in result.stderr


def test_a_reward_model_in_json() -> None:
    result = run(["llama", *SMALL, "--head", "seq-cls", "--labels", "1", "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["model"]["arguments"]["head"] == "seq-cls"
    assert report["model"]["arguments"]["labels"] == 1
    names = [row["name"] for row in report["layers"]]
    assert names[0].startswith("model.") and names[-1] == "score"
    from tests.test_schema import REPORT

    REPORT.validate(report)
    body = get("llama")(vocab=50, hidden=32, layers=1, heads=4, head="none").model().total
    assert report["total"] == body + 32  # score: 1 × 32, no bias


def test_the_table_names_the_head() -> None:
    result = run(["gpt2", *SMALL, "--head", "token-cls", "--labels", "7"])
    assert result.exit_code == 0, result.output
    assert "classifier.weight" in result.stdout and "classifier.bias" in result.stdout
    assert "transformer.wte.weight" in result.stdout


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["llama", *SMALL, "--labels", "3"], "classification head"),
        (["llama", *SMALL, "--head", "qa", "--labels", "3"], "classification head"),
        (["llama", *SMALL, "--qa-body", "model"], "--head qa"),
        (["bert", *SMALL, "--layout", "roberta", "--head", "nsp"], "RoBERTa"),
        (["olmo2", *SMALL, "--head", "qa"], "qa"),
        (["cohere", *SMALL, "--head", "seq-cls"], "seq-cls"),
    ],
)
def test_a_head_that_does_not_exist_is_one_line(args: list[str], words: str) -> None:
    result = run(args)
    assert result.exit_code == 2, result.output
    assert words in result.output and "Traceback" not in result.output


def test_labels_are_num_labels_or_the_length_of_id2label() -> None:
    seq = {**LLAMA, "architectures": ["LlamaForSequenceClassification"]}
    assert from_hf_config({**seq, "num_labels": 1}).named_parameters()[-1] == (
        "score.weight",
        (1, 64),
    )
    labels = {"0": "neg", "1": "neutral", "2": "pos"}
    assert from_hf_config({**seq, "id2label": labels}).named_parameters()[-1] == (
        "score.weight",
        (3, 64),
    )
    assert from_hf_config(seq).named_parameters()[-1] == ("score.weight", (2, 64))
    with pytest.raises(InvalidArgumentError, match="id2label"):
        from_hf_config({**seq, "id2label": labels, "num_labels": 2})


def test_labels_of_a_class_without_them_change_nothing() -> None:
    """A causal LM's config may keep the labels of a fine-tune: they are read as free."""
    found = hf_model({**LLAMA, "num_labels": 5, "architectures": ["LlamaForCausalLM"]})
    assert found.architecture.labels is None  # type: ignore[attr-defined]
    assert "labels" not in found.names  # the field set no argument
    qa = from_hf_config({**LLAMA, "num_labels": 5, "architectures": ["LlamaForQuestionAnswering"]})
    assert qa.named_parameters()[0][0].startswith("transformer.")
    assert qa.named_parameters()[-2] == ("qa_outputs.weight", (2, 64))


def test_bert_for_pretraining_ties_the_decoder_to_the_word_embedding() -> None:
    model = get("bert")(vocab=100, hidden=16, layers=1, heads=2, head="pretraining").model()
    names = dict(model.named_parameters())
    assert "cls.predictions.decoder.weight" not in names  # tied: counted once
    assert names["cls.seq_relationship.weight"] == (2, 16)
    assert names["bert.pooler.dense.weight"] == (16, 16)


@pytest.mark.parametrize(
    ("command", "arguments", "shapes"),
    [
        ("bert", {"head": "pretraining"}, [(2, 5, 50), (2, 2)]),
        ("bert", {"head": "nsp"}, [(2, 2)]),
        ("bert", {"head": "seq-cls", "layout": "roberta", "labels": 3}, [(2, 3)]),
        ("bert", {"head": "qa", "labels": 3}, [(2, 5, 3)]),
        ("llama", {"head": "seq-cls", "labels": 1}, [(2, 1)]),
        ("gpt2", {"head": "token-cls", "labels": 4}, [(2, 5, 4)]),
        ("falcon", {"head": "qa"}, [(2, 5, 2)]),
    ],
)
def test_the_built_model_runs_to_the_heads_outputs(
    command: str, arguments: dict[str, Any], shapes: list[tuple[int, ...]]
) -> None:
    """The torch module built from the tree runs its flow to the class's output shapes."""
    torch = pytest.importorskip("torch")
    import shapecalc

    model = get(command)(vocab=50, hidden=32, layers=1, heads=4, **arguments).model()
    out = shapecalc.build(model)(torch.zeros(2, 5, dtype=torch.long))
    got = out if isinstance(out, tuple) else (out,)
    assert [tuple(o.shape) for o in got] == shapes
