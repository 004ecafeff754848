"""Totals derived by hand (the arithmetic is written out) or published, one row each."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import shapecalc
from shapecalc import LSTM, Embedding, Linear
from shapecalc.layers import LAYER_KINDS
from tests.vision_counts import VISION_COUNTS


def lstm_layer(d_in: int, h: int, *, bias: bool = True, proj: int = 0) -> int:
    """One LSTM layer, one direction, written out from the cell equations."""
    h_out = proj or h
    return 4 * h * d_in + 4 * h * h_out + (2 * 4 * h if bias else 0) + proj * h


HEADLINE = 65 * 512 + lstm_layer(512, 512) + lstm_layer(512, 512) + (512 * 65 + 65)

KNOWN: list[tuple[str, Callable[[], Any], int]] = [
    # the question's model: 2-layer LSTM, 512 hidden, 65 characters (tinyshakespeare)
    ("headline lstm_lm(65, 512, 2)", lambda: shapecalc.lstm_lm(65, 512, 2).total, 4_269_121),
    ("headline, term by term", lambda: HEADLINE, 4_269_121),
    ("Embedding(20, 300)", lambda: Embedding(20, 300).total(), 6_000),
    ("LSTM(300, 512, num_layers=2)", lambda: LSTM(300, 512, num_layers=2).total(), 3_768_320),
    ("Linear(512, 20)", lambda: Linear(512, 20).total(), 10_260),
    (
        "Embedding(20, 300) + LSTM(300, 512, 2) + Linear(512, 20)",
        lambda: shapecalc.lstm_lm(vocab=20, hidden=512, layers=2, embed_dim=300).total,
        6_000 + 3_768_320 + 10_260,
    ),
    # char-rnn as first written: one-hot input of size V, no embedding
    (
        "one-hot char-rnn lstm_lm(65, 512, 2, one_hot)",
        lambda: shapecalc.lstm_lm(65, 512, 2, one_hot=True).total,
        lstm_layer(65, 512) + lstm_layer(512, 512) + 512 * 65 + 65,
    ),
    (
        "one-hot char-rnn, number",
        lambda: shapecalc.lstm_lm(65, 512, 2, one_hot=True).total,
        3_320_385,
    ),
    ("LSTM(10, 20, bidirectional)", lambda: LSTM(10, 20, bidirectional=True).total(), 5_120),
    ("LSTM(10, 20, proj_size=5)", lambda: LSTM(10, 20, proj_size=5).total(), 1_460),
    (
        "LSTM(10, 20, 2, bidirectional, proj_size=5)",
        lambda: LSTM(10, 20, num_layers=2, bidirectional=True, proj_size=5).total(),
        2 * lstm_layer(10, 20, proj=5) + 2 * lstm_layer(2 * 5, 20, proj=5),
    ),
    ("LSTM(10, 20, bias=False)", lambda: LSTM(10, 20, bias=False).total(), 4 * 20 * 30),
    (
        "headline without biases",
        lambda: shapecalc.lstm_lm(65, 512, 2, bias=False).total,
        4_269_121 - 2 * 2 * 2048 - 65,
    ),
    (
        "headline with tied weights: the head matrix is the embedding",
        lambda: shapecalc.lstm_lm(65, 512, 2, tie_weights=True).total,
        4_269_121 - 65 * 512,
    ),
    # pytorch/examples word_language_model defaults on wikitext-2 (33,278 tokens)
    (
        "word_language_model LSTM 200/200/2",
        lambda: shapecalc.lstm_lm(33_278, 200, 2).total,
        33_278 * 200 + 2 * lstm_layer(200, 200) + 200 * 33_278 + 33_278,
    ),
    ("word_language_model, number", lambda: shapecalc.lstm_lm(33_278, 200, 2).total, 13_987_678),
]


@pytest.mark.parametrize(("what", "compute", "expected"), KNOWN, ids=[k[0] for k in KNOWN])
def test_known_total(what: str, compute: Callable[[], Any], expected: int) -> None:
    assert compute() == expected


def test_headline_rows_and_subtotals() -> None:
    model = shapecalc.lstm_lm(vocab=65, hidden=512, layers=2)
    rows = model.rows()
    assert [(r.name, r.shape, r.count) for r in rows] == [
        ("embedding.weight", (65, 512), 33_280),
        ("lstm.weight_ih_l0", (2048, 512), 1_048_576),
        ("lstm.weight_hh_l0", (2048, 512), 1_048_576),
        ("lstm.bias_ih_l0", (2048,), 2_048),
        ("lstm.bias_hh_l0", (2048,), 2_048),
        ("lstm.weight_ih_l1", (2048, 512), 1_048_576),
        ("lstm.weight_hh_l1", (2048, 512), 1_048_576),
        ("lstm.bias_ih_l1", (2048,), 2_048),
        ("lstm.bias_hh_l1", (2048,), 2_048),
        ("head.weight", (65, 512), 33_280),
        ("head.bias", (65,), 65),
    ]
    assert [model.subtotal(n) for n in ("embedding", "lstm", "head")] == [
        33_280,
        4_202_496,
        33_345,
    ]
    assert sum(r.counted for r in rows) == model.total == model.trainable == 4_269_121
    assert model.bytes("fp32") == 17_076_484
    assert model.bytes("bf16") == 8_538_242


def test_tied_row_is_shown_but_counted_once() -> None:
    model = shapecalc.lstm_lm(vocab=65, hidden=512, layers=2, tie_weights=True)
    head = [r for r in model.rows() if r.name == "head.weight"]
    assert head and head[0].tied_to == "embedding.weight"
    assert head[0].count == 33_280 and head[0].counted == 0
    assert "head.weight" not in dict(model.named_parameters())
    assert sum(r.counted for r in model.rows()) == model.total


def test_huge_sizes_stay_exact() -> None:
    h, v = 10**15, 10**15 + 7
    model = shapecalc.lstm_lm(vocab=v, hidden=h, layers=3)
    expected = v * h + lstm_layer(h, h) * 3 + h * v + v
    assert model.total == expected
    assert isinstance(model.total, int)
    assert LSTM(h, h).total() == 4 * (h * h + h * h + 2 * h)


#: per layer kind, (arguments, total) rows derived by hand; every registered kind has one
KIND_COUNTS: dict[str, list[tuple[dict[str, Any], int]]] = {
    "RNN": [({"input_size": 10, "hidden_size": 20}, 20 * 10 + 20 * 20 + 20 + 20)],
    "GRU": [({"input_size": 10, "hidden_size": 20}, 3 * 640)],
    "LSTM": [({"input_size": 10, "hidden_size": 20}, 4 * 640)],
    "RNNCell": [({"input_size": 10, "hidden_size": 20}, 640)],
    "GRUCell": [({"input_size": 10, "hidden_size": 20}, 1920)],
    "LSTMCell": [({"input_size": 10, "hidden_size": 20, "bias": False}, 4 * 20 * 30)],
    "Linear": [({"in_features": 512, "out_features": 20}, 512 * 20 + 20)],
    "Bilinear": [({"in1_features": 20, "in2_features": 30, "out_features": 40}, 24_040)],
    "Identity": [({}, 0)],
    "Dropout": [({"p": 0.1}, 0)],
    "Flatten": [({}, 0)],
    "Embedding": [({"num_embeddings": 20, "embedding_dim": 300}, 6_000)],
    "EmbeddingBag": [({"num_embeddings": 20, "embedding_dim": 300, "mode": "sum"}, 6_000)],
    "Conv1d": [({"in_channels": 16, "out_channels": 33, "kernel_size": 3}, 33 * 16 * 3 + 33)],
    "Conv2d": [
        # ResNet-50's stem: 7x7, no bias
        ({"in_channels": 3, "out_channels": 64, "kernel_size": 7, "bias": False}, 9_408),
        # depthwise 3x3: one input channel per filter
        ({"in_channels": 32, "out_channels": 32, "kernel_size": 3, "groups": 32}, 32 * 9 + 32),
    ],
    "Conv3d": [({"in_channels": 16, "out_channels": 33, "kernel_size": 3}, 33 * 16 * 27 + 33)],
    "ConvTranspose1d": [({"in_channels": 16, "out_channels": 33, "kernel_size": 3}, 1_617)],
    "ConvTranspose2d": [({"in_channels": 64, "out_channels": 3, "kernel_size": 4}, 3_075)],
    "ConvTranspose3d": [
        ({"in_channels": 16, "out_channels": 32, "kernel_size": 3, "groups": 2}, 16 * 16 * 27 + 32),
    ],
    "BatchNorm1d": [({"num_features": 100}, 200)],
    "BatchNorm2d": [({"num_features": 64}, 128)],
    "BatchNorm3d": [({"num_features": 16, "affine": False}, 0)],
    "InstanceNorm1d": [({"num_features": 100}, 0)],
    "InstanceNorm2d": [({"num_features": 64, "affine": True}, 128)],
    "InstanceNorm3d": [({"num_features": 16, "affine": True, "bias": False}, 16)],
    "LayerNorm": [({"normalized_shape": 768}, 1_536), ({"normalized_shape": (10, 10)}, 200)],
    "RMSNorm": [({"normalized_shape": 4096}, 4_096)],
    "GroupNorm": [({"num_groups": 32, "num_channels": 256}, 512)],
    "MultiheadAttention": [
        ({"embed_dim": 512, "num_heads": 8}, 4 * 512 * 512 + 4 * 512),
        (
            {"embed_dim": 8, "num_heads": 2, "kdim": 4, "vdim": 6, "add_bias_kv": True},
            8 * 8 + 8 * 4 + 8 * 6 + 3 * 8 + 8 + 8 + 8 * 8 + 8,
        ),
    ],
    # BERT-base: 12 layers of 7,087,872 parameters each
    "TransformerEncoderLayer": [
        ({"d_model": 768, "nhead": 12, "dim_feedforward": 3072}, 7_087_872)
    ],
    "TransformerDecoderLayer": [
        ({"d_model": 512, "nhead": 8}, 2 * 1_050_624 + 2 * 512 * 2048 + 2048 + 512 + 3 * 1024)
    ],
    "PReLU": [({}, 1), ({"num_parameters": 64}, 64)],
    **{
        kind: [({}, 0)]
        for kind in (
            "ReLU",
            "ReLU6",
            "LeakyReLU",
            "ELU",
            "GELU",
            "SiLU",
            "Mish",
            "Sigmoid",
            "Tanh",
            "Hardswish",
            "Hardsigmoid",
            "Softplus",
            "Softmax",
            "LogSoftmax",
        )
    },
    **{
        f"{kind}{dims}d": [({"kernel_size": 3, "stride": 2}, 0)]
        for kind in ("MaxPool", "AvgPool")
        for dims in (1, 2, 3)
    },
    **{
        f"Adaptive{kind}Pool{dims}d": [({"output_size": 1}, 0)]
        for kind in ("Avg", "Max")
        for dims in (1, 2, 3)
    },
    "Upsample": [({"scale_factor": 2, "mode": "bilinear"}, 0)],
}

KIND_ROWS = [(kind, args, total) for kind, rows in KIND_COUNTS.items() for args, total in rows]


@pytest.mark.parametrize(
    ("kind", "args", "expected"),
    KIND_ROWS,
    ids=[f"{k}-{i}" for i, (k, _, _) in enumerate(KIND_ROWS)],
)
def test_kind_total(kind: str, args: dict[str, Any], expected: int) -> None:
    assert LAYER_KINDS[kind](**args).total() == expected


def test_batch_norm_buffers_are_apart() -> None:
    spec = LAYER_KINDS["BatchNorm1d"](num_features=100)
    assert [(b.name, b.shape) for b in spec.buffers()] == [
        ("running_mean", (100,)),
        ("running_var", (100,)),
        ("num_batches_tracked", ()),
    ]
    assert all(not b.trainable for b in spec.buffers())
    assert spec.total() == 200  # buffers are not parameters


def test_a_huge_layer_count_is_one_block_not_a_loop() -> None:
    layers = 10**15
    model = shapecalc.lstm_lm(vocab=5, hidden=8, layers=layers)
    assert model.total == 5 * 8 + layers * lstm_layer(8, 8) + 8 * 5 + 5
    names = [r.name for r in model.rows()]
    assert f"lstm.weight_ih_l{{0..{layers - 1}}}" in names and len(names) == 7
    # up to 1024 layers every layer keeps PyTorch's own names
    assert "lstm.weight_hh_l1023" in dict(shapecalc.lstm_lm(5, 8, 1024).named_parameters())


def gru_layer(d_in: int, h: int) -> int:
    """One GRU layer, one direction: three gates, two biases each."""
    return 3 * h * d_in + 3 * h * h + 2 * 3 * h


def rnn_layer(d_in: int, h: int) -> int:
    return h * d_in + h * h + 2 * h


#: per architecture (its command), (arguments, total) rows derived by hand or published;
#: every architecture has one (tests/test_architectures.py checks it)
ARCHITECTURE_COUNTS: dict[str, list[tuple[dict[str, Any], int]]] = {
    "lstm": [({"vocab": 65, "hidden": 512, "layers": 2}, HEADLINE)],
    "gru": [
        (
            {"vocab": 65, "hidden": 512, "layers": 2},
            65 * 512 + gru_layer(512, 512) * 2 + 512 * 65 + 65,
        )
    ],
    "rnn": [
        (
            {"vocab": 65, "hidden": 512, "layers": 2},
            65 * 512 + rnn_layer(512, 512) * 2 + 512 * 65 + 65,
        )
    ],
}
ARCHITECTURE_COUNTS.update(VISION_COUNTS)  # vit, dinov2: tests/vision_counts.py
# Keras' MNIST multilayer perceptron (784-512-512-10): 669,706 parameters
ARCHITECTURE_COUNTS["mlp"] = [
    (
        {"inputs": 784, "hidden": 512, "layers": 2, "outputs": 10},
        (784 * 512 + 512) + (512 * 512 + 512) + (512 * 10 + 10),
    ),
    ({"inputs": 784, "hidden": 512, "layers": 2, "outputs": 10}, 669_706),
]
# published totals of transformer language models (model cards, papers, transformers)
_LLAMA2_70B = {"vocab": 32000, "hidden": 8192, "layers": 80, "heads": 64, "kv_heads": 8}
_MISTRAL_7B = {"vocab": 32000, "hidden": 4096, "layers": 32, "heads": 32, "kv_heads": 8}
ARCHITECTURE_COUNTS["gpt2"] = [
    ({"vocab": 50257, "hidden": 768, "layers": 12, "heads": 12}, 124_439_808),
    ({"vocab": 50257, "hidden": 1024, "layers": 24, "heads": 16}, 354_823_168),
    ({"vocab": 50257, "hidden": 1280, "layers": 36, "heads": 20}, 774_030_080),
    ({"vocab": 50257, "hidden": 1600, "layers": 48, "heads": 25}, 1_557_611_200),
    # GPT2ForSequenceClassification of GPT-2 small, 2 labels (transformers on the meta device)
    ({"vocab": 50257, "hidden": 768, "layers": 12, "heads": 12, "head": "seq-cls"}, 124_441_344),
]
ARCHITECTURE_COUNTS["llama"] = [
    (  # LLaMA-7B
        {"vocab": 32000, "hidden": 4096, "layers": 32, "heads": 32, "intermediate": 11008},
        6_738_415_616,
    ),
    (  # a reward model on LLaMA-7B: LlamaForSequenceClassification, num_labels 1
        {
            "vocab": 32000,
            "hidden": 4096,
            "layers": 32,
            "heads": 32,
            "intermediate": 11008,
            "head": "seq-cls",
            "labels": 1,
        },
        6_607_347_712,
    ),
    ({"vocab": 32000, "hidden": 4096, "layers": 32, "heads": 32}, 6_738_415_616),
    ({**_LLAMA2_70B, "intermediate": 28672}, 68_976_648_192),  # Llama-2-70B
    ({**_MISTRAL_7B, "intermediate": 14336}, 7_241_732_096),  # Mistral-7B
    ({**_MISTRAL_7B, "intermediate": 14336, "experts": 8}, 46_702_792_704),  # Mixtral-8x7B
    (  # Llama-3-8B
        {**_MISTRAL_7B, "vocab": 128256, "intermediate": 14336},
        8_030_261_248,
    ),
    (  # Qwen2-0.5B: q, k and v biases, a tied head
        {
            "vocab": 151936,
            "hidden": 896,
            "layers": 24,
            "heads": 14,
            "kv_heads": 2,
            "intermediate": 4864,
            "attention_bias": "qkv",
            "tie_weights": True,
        },
        494_032_768,
    ),
    (  # Qwen3-0.6B: head_dim 128 of its own, q and k norms
        {
            "vocab": 151936,
            "hidden": 1024,
            "layers": 28,
            "heads": 16,
            "kv_heads": 8,
            "head_dim": 128,
            "intermediate": 3072,
            "qk_norm": True,
            "tie_weights": True,
        },
        596_049_920,
    ),
    (  # Gemma-2-2B: four norms per block, head_dim 256
        {
            "vocab": 256000,
            "hidden": 2304,
            "layers": 26,
            "heads": 8,
            "kv_heads": 4,
            "head_dim": 256,
            "intermediate": 9216,
            "sandwich_norm": True,
            "activation": "gelu_tanh",
            "tie_weights": True,
        },
        2_614_341_888,
    ),
    (  # Phi-3-mini: fused projections
        {
            "vocab": 32064,
            "hidden": 3072,
            "layers": 32,
            "heads": 32,
            "intermediate": 8192,
            "fused_qkv": True,
            "fused_gate_up": True,
        },
        3_821_079_552,
    ),
]
ARCHITECTURE_COUNTS["gpt-neox"] = [
    ({"vocab": 50304, "hidden": 512, "layers": 6, "heads": 8}, 70_426_624),  # Pythia-70M
    ({"vocab": 50304, "hidden": 768, "layers": 12, "heads": 12}, 162_322_944),  # Pythia-160M
]
ARCHITECTURE_COUNTS["falcon"] = [
    # Falcon-7B (one key and value head, one LayerNorm per block, head tied), as
    # transformers' FalconForCausalLM counts it
    ({"vocab": 65024, "hidden": 4544, "layers": 32, "heads": 71}, 6_921_720_704),
    # FalconForSequenceClassification of Falcon-7B: a score of 2 labels, no bias
    ({"vocab": 65024, "hidden": 4544, "layers": 32, "heads": 71, "head": "seq-cls"}, 6_921_729_792),
    (  # Falcon-40B: the new decoder, 8 key and value heads, ln_attn and ln_mlp
        {
            "vocab": 65024,
            "hidden": 8192,
            "layers": 60,
            "heads": 128,
            "kv_heads": 8,
            "new_decoder_architecture": True,
        },
        41_303_293_952,
    ),
    (  # Falcon-RW-1B: ALiBi, a key and value per head, biases, attention then MLP
        {
            "vocab": 50304,
            "hidden": 2048,
            "layers": 24,
            "heads": 32,
            "multi_query": False,
            "parallel_attn": False,
            "bias": True,
            "alibi": True,
        },
        1_311_625_216,
    ),
]
_BERT_BASE: dict[str, Any] = {"vocab": 30522, "hidden": 768, "layers": 12, "heads": 12}
# T5: the shared embedding V·H (both stacks' embed_tokens and lm_head, tied); an encoder
# block 4·H·A·D + 2·H·I + 2·H, a decoder block 8·H·A·D + 2·H·I + 3·H; the relative
# position bias R·A in block 0 of each stack; a final norm H per stack. t5-base:
_T5_BASE = {"vocab": 32128, "hidden": 768, "layers": 12, "heads": 12, "intermediate": 3072}
# BART: the shared embedding V·H (tied to both stacks' embed_tokens and lm_head); per
# stack a position table (C + 2)·H and layernorm_embedding 2·H; an encoder layer
# 4·(H² + H) + 2·H·I + I + H + 4·H, a decoder layer 8·(H² + H) + 2·H·I + I + H + 6·H.
# bart-large (V=50265, H=1024, 12 + 12 layers, I=4096, C=1024):
_BART_LARGE = {"vocab": 50265, "hidden": 1024, "layers": 12, "heads": 16, "intermediate": 4096}
ARCHITECTURE_COUNTS["bart"] = [
    (
        _BART_LARGE,
        50265 * 1024
        + 2 * (1026 * 1024 + 2 * 1024)
        + 12 * (4 * (1024 * 1024 + 1024) + 2 * 1024 * 4096 + 4096 + 1024 + 4 * 1024)
        + 12 * (8 * (1024 * 1024 + 1024) + 2 * 1024 * 4096 + 4096 + 1024 + 6 * 1024),
    ),
    (_BART_LARGE, 406_291_456),  # facebook/bart-large, BartForConditionalGeneration
    # mbart-large-50: its own layer norm per stack (2·H each) and a vocabulary of 250,054
    ({**_BART_LARGE, "vocab": 250054, "layout": "mbart"}, 610_879_488),
]

# Whisper: the stem N·H·3 + H and H·H·3 + H; the encoder's positions P·H; an encoder layer
# 4·H² + 3·H (k_proj without bias) + 2·H·I + I + H + 4·H, a decoder layer 8·H² + 6·H +
# 2·H·I + I + H + 6·H; the token embedding V·H (proj_out tied) and C·H positions; a final
# layer_norm 2·H per stack. openai/whisper-tiny (V=51865, H=384, 4 + 4 layers, I=1536,
# N=80, P=1500, C=448):
_WHISPER_TINY = {"vocab": 51865, "hidden": 384, "layers": 4, "heads": 6}
ARCHITECTURE_COUNTS["whisper"] = [
    (
        _WHISPER_TINY,
        (80 * 384 * 3 + 384)
        + (384 * 384 * 3 + 384)
        + 1500 * 384
        + 4 * (4 * 384 * 384 + 3 * 384 + 2 * 384 * 1536 + 1536 + 384 + 4 * 384)
        + 2 * 384
        + 51865 * 384
        + 448 * 384
        + 4 * (8 * 384 * 384 + 6 * 384 + 2 * 384 * 1536 + 1536 + 384 + 6 * 384)
        + 2 * 384,
    ),
]

ARCHITECTURE_COUNTS["t5"] = [
    (
        _T5_BASE,
        32128 * 768
        + 12 * (4 * 768 * 768 + 2 * 768 * 3072 + 2 * 768)
        + 12 * (8 * 768 * 768 + 2 * 768 * 3072 + 3 * 768)
        + 2 * (32 * 12 + 768),
    ),
    (_T5_BASE, 222_903_552),  # t5-base, T5ForConditionalGeneration
]


ARCHITECTURE_COUNTS["bert"] = [
    ({"vocab": 30522, "hidden": 768, "layers": 12, "heads": 12}, 109_482_240),  # BERT-base
    ({"vocab": 30522, "hidden": 1024, "layers": 24, "heads": 16}, 335_141_888),  # BERT-large
    (  # RoBERTa-base
        {"vocab": 50265, "hidden": 768, "layers": 12, "heads": 12, "layout": "roberta"},
        124_645_632,
    ),
    # BERT-base's task classes, as transformers builds them on the meta device
    ({**_BERT_BASE, "head": "seq-cls"}, 109_483_778),  # BertForSequenceClassification
    ({**_BERT_BASE, "head": "pretraining"}, 110_106_428),  # BertForPreTraining
    ({**_BERT_BASE, "head": "nsp"}, 109_483_778),  # BertForNextSentencePrediction
    ({**_BERT_BASE, "head": "multiple-choice"}, 109_483_009),  # BertForMultipleChoice
    ({**_BERT_BASE, "head": "token-cls", "labels": 9}, 108_898_569),  # ...ForTokenClassification
    ({**_BERT_BASE, "head": "qa"}, 108_893_186),  # BertForQuestionAnswering
    (  # RobertaForSequenceClassification of RoBERTa-base: classifier.dense and out_proj
        {"vocab": 50265, "hidden": 768, "layers": 12, "heads": 12, "layout": "roberta"}
        | {"head": "seq-cls"},
        124_647_170,
    ),
]
# DeepSeek-V2-Lite and GLM-4.5-Air (transformers' classes built on the meta device from
# their sizes)
_V2_LITE = {
    "vocab": 102400,
    "hidden": 2048,
    "layers": 27,
    "heads": 16,
    "intermediate": 10944,
    "moe_intermediate": 1408,
    "experts": 64,
    "experts_per_token": 6,
    "shared_experts": 2,
    "dense_layers": 1,
    "correction_bias": False,
}
ARCHITECTURE_COUNTS["deepseek"] = [(_V2_LITE, 15_706_484_224)]
ARCHITECTURE_COUNTS["glm4-moe"] = [
    (  # GLM-4.5-Air's sizes with 32 heads of H / A = 128
        {
            "vocab": 151552,
            "hidden": 4096,
            "layers": 46,
            "heads": 32,
            "kv_heads": 8,
            "intermediate": 10944,
            "moe_intermediate": 1408,
            "experts": 128,
            "experts_per_token": 8,
        },
        103_764_578_304,
    ),
    (  # GLM-4.5-Air's
        {
            "vocab": 151552,
            "hidden": 4096,
            "layers": 46,
            "heads": 96,
            "kv_heads": 8,
            "head_dim": 128,
            "intermediate": 10944,
            "moe_intermediate": 1408,
            "experts": 128,
            "experts_per_token": 8,
            "dense_layers": 1,
            "attention_bias": True,
        },
        106_852_245_504,
    ),
]
ARCHITECTURE_COUNTS["olmo2"] = [
    (  # OLMo-2-1124-7B (transformers' Olmo2ForCausalLM built from its config.json)
        {"vocab": 100352, "hidden": 4096, "layers": 32, "heads": 32, "intermediate": 11008},
        7_298_617_344,
    ),
]
ARCHITECTURE_COUNTS["granite"] = [
    (  # granite-3.0-2b (transformers' GraniteForCausalLM built from its config.json)
        {
            "vocab": 49155,
            "hidden": 2048,
            "layers": 40,
            "heads": 32,
            "kv_heads": 8,
            "intermediate": 8192,
            "tie_weights": True,
        },
        2_533_531_648,
    ),
]
ARCHITECTURE_COUNTS["cohere"] = [
    (  # c4ai-command-r-v01 (transformers' CohereForCausalLM built from its config.json)
        {"vocab": 256000, "hidden": 8192, "layers": 40, "heads": 64, "intermediate": 22528},
        34_980_831_232,
    ),
]
ARCHITECTURE_COUNTS["cohere2"] = [
    (  # Command R7B's sizes (transformers' Cohere2ForCausalLM built from them on the meta
        # device; its other fields at Cohere2Config's defaults)
        {
            "vocab": 256000,
            "hidden": 4096,
            "layers": 32,
            "heads": 32,
            "kv_heads": 8,
            "intermediate": 14336,
        },
        8_028_033_024,
    ),
]
ARCHITECTURE_COUNTS["pixtral"] = [
    (  # PixtralVisionConfig's defaults: PixtralVisionModel built from them on the meta device
        {"hidden": 1024, "layers": 24, "heads": 16, "intermediate": 4096},
        403_489_792,
    ),
]
ARCHITECTURE_COUNTS["mistral3"] = [
    (  # Mistral-Small-3.1-24B's sizes (Mistral3Config's sub-config defaults, its head
        # untied): Mistral3ForConditionalGeneration built from them on the meta device
        {
            "vocab": 131072,
            "hidden": 5120,
            "layers": 40,
            "heads": 32,
            "kv_heads": 8,
            "head_dim": 128,
            "intermediate": 32768,
            "tie_weights": False,
        },
        24_011_361_280,
    ),
]
ARCHITECTURE_COUNTS["mllama"] = [
    (  # MllamaConfig's sub-config defaults (Llama-3.2-11B-Vision's sizes, its tiles 448
        # pixels): MllamaForConditionalGeneration built from them on the meta device
        {
            "vocab": 128256,
            "hidden": 4096,
            "layers": 40,
            "heads": 32,
            "kv_heads": 8,
            "intermediate": 14336,
        },
        10_642_941_475,
    ),
]
ARCHITECTURE_COUNTS["qwen2-vl"] = [
    (  # Qwen2-VL-7B-Instruct's sizes (its vision tower at Qwen2VLVisionConfig's defaults):
        # Qwen2VLForConditionalGeneration built from them on the meta device
        {
            "vocab": 152064,
            "hidden": 3584,
            "layers": 28,
            "heads": 28,
            "kv_heads": 4,
            "intermediate": 18944,
        },
        8_291_375_616,
    ),
]
ARCHITECTURE_COUNTS["gemma3"] = [
    (  # gemma-3-1b's sizes (transformers' Gemma3ForCausalLM built from them on the meta
        # device; its other fields at Gemma3TextConfig's defaults)
        {
            "vocab": 262144,
            "hidden": 1152,
            "layers": 26,
            "heads": 4,
            "kv_heads": 1,
            "head_dim": 256,
            "intermediate": 6912,
        },
        999_885_952,
    ),
    (  # by hand, per layer: q, k, v, o (4·H² with D = H / A), q_norm and k_norm (D), the
        # MLP 3·H·I, four norms; the embedding (the head) and the final norm
        {"vocab": 100, "hidden": 64, "layers": 2, "heads": 4, "intermediate": 32},
        2 * (4 * 64 * 64 + 2 * 16 + 3 * 64 * 32 + 4 * 64) + 100 * 64 + 64,
    ),
]
ARCHITECTURE_COUNTS["phi"] = [
    (  # Phi-1 and Phi-1.5 (microsoft/phi-1, phi-1_5): 1,418,270,720
        {"vocab": 51200, "hidden": 2048, "layers": 24, "heads": 32, "intermediate": 8192},
        1_418_270_720,
    ),
    (  # Phi-2 (microsoft/phi-2): 2,779,683,840
        {"vocab": 51200, "hidden": 2560, "layers": 32, "heads": 32, "intermediate": 10240},
        2_779_683_840,
    ),
    (  # by hand: 12·L·H² + 11·L·H (one norm per layer) + V·H (embedding)
        # + V·H + V (the head, biased) + 2·H (final norm)
        {"vocab": 100, "hidden": 64, "layers": 2, "heads": 4},
        12 * 2 * 64**2 + 11 * 2 * 64 + 2 * 100 * 64 + 100 + 2 * 64,
    ),
]
ARCHITECTURE_COUNTS["starcoder2"] = [
    (  # StarCoder2-3B (bigcode/starcoder2-3b), by hand: 30 layers of 95,979,008, the
        # embedding 49152·3072 and the final norm; the head tied
        {
            "vocab": 49152,
            "hidden": 3072,
            "layers": 30,
            "heads": 24,
            "kv_heads": 2,
            "intermediate": 12288,
        },
        30 * 95_979_008 + 49152 * 3072 + 2 * 3072,
    ),
    (
        {
            "vocab": 49152,
            "hidden": 3072,
            "layers": 30,
            "heads": 24,
            "kv_heads": 2,
            "intermediate": 12288,
        },
        3_030_371_328,
    ),
]
ARCHITECTURE_COUNTS["gpt-oss"] = [
    (  # by hand, per layer: sinks A, four biased projections 4·(H² + H), the router
        # E·H + E, E experts of 3·H·I + 2·I + H, two norms; the embedding, head, final norm
        {"vocab": 100, "hidden": 64, "layers": 2, "heads": 4, "intermediate": 32, "experts": 4},
        2 * (4 + 4 * (64 * 64 + 64) + 4 * 64 + 4 + 4 * (3 * 64 * 32 + 2 * 32 + 64) + 2 * 64)
        + 2 * 100 * 64
        + 64,
    ),
    (  # gpt-oss-20b (transformers' GptOssForCausalLM built from its config.json)
        {
            "vocab": 201088,
            "hidden": 2880,
            "layers": 24,
            "heads": 64,
            "kv_heads": 8,
            "head_dim": 64,
            "intermediate": 2880,
            "experts": 32,
        },
        20_914_757_184,
    ),
    (  # gpt-oss-120b (the same)
        {
            "vocab": 201088,
            "hidden": 2880,
            "layers": 36,
            "heads": 64,
            "kv_heads": 8,
            "head_dim": 64,
            "intermediate": 2880,
            "experts": 128,
        },
        116_829_156_672,
    ),
]
ARCHITECTURE_COUNTS["mamba2"] = [
    (  # by hand, the defaults (head_dim 64, state 128, 8 groups, expand 2, kernel 4): heads
        # 2·256 / 64 = 8, I = 512, x·B·C 512 + 2·8·128 = 2560; per layer the norm, dt_bias,
        # A_log and D, conv1d with its bias, in_proj (2·I + 2·G·N + M rows), the gated
        # norm, out_proj; the embedding, head and final norm
        {"vocab": 100, "hidden": 256, "layers": 2},
        2 * (256 + 3 * 8 + 2560 * 4 + 2560 + (512 + 2560 + 8) * 256 + 512 + 256 * 512)
        + 2 * 100 * 256
        + 256,
    ),
    (  # the same by hand with smaller sizes: heads 2·64 / 16 = 8, I = 128, x·B·C 192
        {"vocab": 100, "hidden": 64, "layers": 2, "head_dim": 16, "state_size": 16, "groups": 2},
        2 * (64 + 3 * 8 + 192 * 4 + 192 + (128 + 192 + 8) * 64 + 128 + 64 * 128)
        + 2 * 100 * 64
        + 64,
    ),
    (  # transformers' Mamba2Config() defaults, Mamba2ForCausalLM on the meta device
        {"vocab": 32768, "hidden": 4096, "layers": 64, "heads": 128, "groups": 8},
        7_285_403_648,
    ),
]
ARCHITECTURE_COUNTS["falcon-h1"] = [
    (  # by hand, the mixer's defaults (width 2·H = 128 over 8 heads, state 256, 1 group, 4
        # taps, no norm): per layer the MLP 3·H·I, dt_bias, A_log and D, conv1d (x·B·C =
        # 128 + 2·256 = 640 channels) with its bias, in_proj (2·S + 2·G·N + M = 776 rows),
        # out_proj, the attention's four H × H projections, two norms; the embedding, the
        # head and the final norm
        {"vocab": 100, "hidden": 64, "layers": 2, "heads": 4, "intermediate": 96, "mamba_heads": 8},
        2 * (3 * 64 * 96 + 3 * 8 + 640 * 4 + 640 + 776 * 64 + 64 * 128 + 4 * 64 * 64 + 2 * 64)
        + 2 * 100 * 64
        + 64,
    ),
    (  # transformers' FalconH1Config() defaults, FalconH1ForCausalLM on the meta device
        {
            "vocab": 128000,
            "hidden": 4096,
            "layers": 32,
            "heads": 32,
            "kv_heads": 8,
            "intermediate": 14336,
            "mamba_heads": 128,
            "mamba_inner": 1024,
        },
        8_514_961_408,
    ),
]
# totals of transformers' classes built from the same sizes on the meta device
_QWEN15_MOE = {
    "vocab": 151936,
    "hidden": 2048,
    "layers": 24,
    "heads": 16,
    "moe_intermediate": 1408,
    "experts": 60,
    "experts_per_token": 4,
    "shared_intermediate": 5632,
    "intermediate": 5632,
    "attention_bias": "qkv",
}
ARCHITECTURE_COUNTS["qwen-moe"] = [
    (  # Qwen3-MoE: 128 experts of 768, 8 per token, head_dim 128 of its own, q and k norms
        {
            "vocab": 151936,
            "hidden": 2048,
            "layers": 48,
            "heads": 32,
            "kv_heads": 4,
            "head_dim": 128,
            "moe_intermediate": 768,
            "experts": 128,
            "experts_per_token": 8,
            "qk_norm": True,
        },
        30_532_122_624,
    ),
    (_QWEN15_MOE, 14_315_784_192),  # Qwen2-MoE: 60 experts and a shared expert
    (  # Qwen2MoeForSequenceClassification, layers 0 and 1 dense, 1 label
        {**_QWEN15_MOE, "dense_layers": (0, 1), "head": "seq-cls", "labels": 1},
        12_966_281_216,
    ),
]
ARCHITECTURE_COUNTS["mamba"] = [
    (  # by hand, per block: the norm H; the mixer at D = 2·H = 32, N = 16, K = 4,
        # R = ⌈16 / 16⌉ = 1: A_log D·N, D, conv1d D·K + D, in_proj 2·D·H, x_proj
        # (R + 2·N)·D, dt_proj D·R + D, out_proj H·D; the embedding (tied head), norm_f
        {"vocab": 100, "hidden": 16, "layers": 2},
        2 * (16 + 32 * 16 + 32 + 32 * 4 + 32 + 2 * 32 * 16 + 33 * 32 + 32 + 32 + 16 * 32)
        + 100 * 16
        + 16,
    ),
    (  # state-spaces/mamba-130m-hf (transformers' MambaForCausalLM of its sizes)
        {"vocab": 50280, "hidden": 768, "layers": 24},
        129_135_360,
    ),
]
ARCHITECTURE_COUNTS["jamba"] = [
    (  # Jamba-v0.1's sizes, JambaConfig's defaults (transformers' JambaForCausalLM)
        {
            "vocab": 65536,
            "hidden": 4096,
            "layers": 32,
            "heads": 32,
            "kv_heads": 8,
            "intermediate": 14336,
        },
        51_570_323_328,
    ),
]
ARCHITECTURE_ROWS = [
    (c, args, total) for c, rows in ARCHITECTURE_COUNTS.items() for args, total in rows
]


@pytest.mark.parametrize(
    ("command", "args", "expected"),
    ARCHITECTURE_ROWS,
    ids=[f"{c}-{i}" for i, (c, _, _) in enumerate(ARCHITECTURE_ROWS)],
)
def test_architecture_total(command: str, args: dict[str, Any], expected: int) -> None:
    from shapecalc.architectures import get

    assert get(command)(**args).model().total == expected


ARCHITECTURE_COUNTS["qwen3-next"] = [
    (  # Qwen3-Next-80B-A3B: Qwen3NextConfig's defaults (transformers' class on the meta
        # device: 79,674,391,296)
        {
            "vocab": 151936,
            "hidden": 2048,
            "layers": 48,
            "heads": 16,
            "kv_heads": 2,
            "head_dim": 256,
            "moe_intermediate": 512,
            "shared_intermediate": 512,
            "experts": 512,
            "experts_per_token": 10,
        },
        79_674_391_296,
    ),
    (  # by hand: 2 layers, interval 2 (layer 0 linear, 1 full), no experts, dense MLPs of
        # 12; linear: dt_bias and A_log 4 each, conv1d (2·2·3 + 4·5)·2, in_proj_qkvz
        # (2·6 + 2·20)·8, in_proj_ba 8·8, norm 5, out_proj 8·20; full: q_proj 2·2·4·8,
        # k_proj and v_proj 4·8 each, o_proj 8·8, q_norm and k_norm 4 each; per layer
        # the MLP 3·8·12 and two norms 2·8; embedding and head 2·10·8 and the final norm
        {
            "vocab": 10,
            "hidden": 8,
            "layers": 2,
            "heads": 2,
            "kv_heads": 1,
            "head_dim": 4,
            "linear_key_heads": 2,
            "linear_value_heads": 4,
            "linear_key_dim": 3,
            "linear_value_dim": 5,
            "conv_kernel": 2,
            "full_attention_interval": 2,
            "moe_intermediate": 6,
            "shared_intermediate": 6,
            "experts": 0,
            "intermediate": 12,
        },
        (4 + 4 + (2 * 2 * 3 + 4 * 5) * 2 + (2 * 6 + 2 * 20) * 8 + 8 * 8 + 5 + 8 * 20)
        + (2 * 2 * 4 * 8 + 4 * 8 * 2 + 8 * 8 + 4 + 4)
        + 2 * (3 * 8 * 12 + 2 * 8)
        + 2 * 10 * 8
        + 8,
    ),
]

# CLIP: openai/clip-vit-base-patch32 (CLIPConfig's defaults) and clip-vit-large-patch14-336
# (transformers' CLIPModel built from their sizes on the meta device), and one by hand
ARCHITECTURE_COUNTS["clip"] = [
    (
        {
            "hidden": 768,
            "layers": 12,
            "heads": 12,
            "intermediate": 3072,
            "vision_hidden": 1024,
            "vision_layers": 24,
            "vision_heads": 16,
            "vision_intermediate": 4096,
            "image_size": 336,
            "patch_size": 14,
            "projection": 768,
        },
        427_944_193,
    ),
    ({}, 151_277_313),
    (  # by hand: a layer is 4 projections 4·(4·4 + 4), 2 norms 2·2·4, fc1 4·6 + 6, fc2
        # 6·4 + 4 (154); text: tokens 10·4, positions 5·4, a layer, final norm 2·4; vision:
        # class 4, patches 4·3·2·2, positions (4/2)² + 1 rows of 4, pre norm 2·4, a layer,
        # post norm 2·4; projections 4·3 each; logit_scale 1
        {
            "vocab": 10,
            "hidden": 4,
            "layers": 1,
            "heads": 2,
            "intermediate": 6,
            "context": 5,
            "vision_hidden": 4,
            "vision_layers": 1,
            "vision_heads": 2,
            "vision_intermediate": 6,
            "image_size": 4,
            "patch_size": 2,
            "projection": 3,
        },
        (10 * 4 + 5 * 4 + 154 + 2 * 4)
        + (4 + 4 * 3 * 2 * 2 + 5 * 4 + 2 * 4 + 154 + 2 * 4)
        + 2 * 4 * 3
        + 1,
    ),
]

# SigLIP: google/siglip-base-patch16-224 (SiglipConfig's defaults) and
# siglip-so400m-patch14-384 (transformers' SiglipModel built from their sizes), and one by
# hand
ARCHITECTURE_COUNTS["siglip"] = [
    (
        {
            "hidden": 1152,
            "layers": 27,
            "heads": 16,
            "intermediate": 4304,
            "vision_hidden": 1152,
            "vision_layers": 27,
            "vision_heads": 16,
            "vision_intermediate": 4304,
            "image_size": 384,
            "patch_size": 14,
        },
        877_960_498,
    ),
    ({}, 203_155_970),
    (  # by hand: a layer 154 as CLIP's; text: tokens, positions, a layer, final norm, head
        # 4·4 + 4; vision: patches 4·3·2·2 + 4 (a bias), positions (4/2)² rows, a layer,
        # post norm, the pooling head: probe 4, attention 3·4·4 + 3·4 + 4·4 + 4, norm 2·4,
        # MLP 4·6 + 6 + 6·4 + 4; logit_scale and logit_bias 1 each
        {
            "vocab": 10,
            "hidden": 4,
            "layers": 1,
            "heads": 2,
            "intermediate": 6,
            "context": 5,
            "vision_hidden": 4,
            "vision_layers": 1,
            "vision_heads": 2,
            "vision_intermediate": 6,
            "image_size": 4,
            "patch_size": 2,
        },
        (10 * 4 + 5 * 4 + 154 + 2 * 4 + 4 * 4 + 4)
        + (4 * 3 * 2 * 2 + 4 + 4 * 4 + 154 + 2 * 4)
        + (4 + 3 * 4 * 4 + 3 * 4 + 4 * 4 + 4 + 2 * 4 + 4 * 6 + 6 + 6 * 4 + 4)
        + 2,
    ),
]

# LLaVA: llava-hf/llava-1.5-7b-hf (its text_config's sizes, its vision_config
# LlavaConfig's own: CLIP ViT-L/14 at 336; transformers' class built on the meta device),
# and one by hand
ARCHITECTURE_COUNTS["llava"] = [
    (
        {"vocab": 32064, "hidden": 4096, "layers": 32, "heads": 32, "intermediate": 11008},
        7_063_427_072,
    ),
    (  # by hand: the CLIP vision tower of test_clip's hand count without its projection
        # (242), a projector 2·4 × 4 + 4 and 4 × 4 + 4 (feature_layers 2), a LLaMA of one
        # layer: embedding 10·4, q k v o 4·4·4, MLP 3·4·6, two norms and the final 3·4,
        # lm_head 10·4
        {
            "vocab": 10,
            "hidden": 4,
            "layers": 1,
            "heads": 2,
            "intermediate": 6,
            "vision_hidden": 4,
            "vision_layers": 1,
            "vision_heads": 2,
            "vision_intermediate": 6,
            "image_size": 4,
            "patch_size": 2,
            "feature_layers": 2,
        },
        242 + (8 * 4 + 4 + 4 * 4 + 4) + (10 * 4 + 4 * 4 * 4 + 3 * 4 * 6 + 3 * 4) + 10 * 4,
    ),
]
