"""GLM-4.5's multi-token prediction (MTP) layers in a GGUF mix (``--weights q4_k_m``).

Truth: a GGUF file written here with the ``gguf`` package (llama.cpp's gguf-py), holding
every tensor llama.cpp's converter writes for a tiny Glm4Moe checkpoint: Glm4MoeModel
(convert_hf_to_gguf.py, conversion/glm.py) sets ``block_count`` = num_hidden_layers +
num_nextn_predict_layers and writes the MTP layer ``model.layers.L.*`` (a decoder layer
with experts, and ``eh_proj``, ``enorm``, ``hnorm``, ``embed_tokens``,
``shared_head.head``, ``shared_head.norm``) under gguf-py's names for that block count
(tests/test_gguf_hybrids.py ``converted``); each tensor in the type llama-quantize's mix
gives it (src/llama-quant.cpp: ``qs.n_ffn_down = hparams.n_layer``, the file's
block_count, so the MTP layer counts among the layers; tests/test_gguf.py checks the mix
itself), its bytes as gguf-py's reader reads them back.

llama.cpp loads the MTP layers' tensors with ``TENSOR_SKIP`` (src/models/glm4-moe.cpp:
"skip all tensors in the NextN layers"): they are in the file, not on a GPU.
"""

from __future__ import annotations

from pathlib import Path

import gguf

from shapecalc.analysis.engines import LlamaCpp
from shapecalc.analysis.fit import Fit
from shapecalc.analysis.hardware import custom
from shapecalc.core.storage import GGML_BY_NAME
from shapecalc.quant import parse_weights, quantize
from shapecalc.quant.gguf import gguf_tensors, tensor_types
from tests.test_gguf import Q, _expanded, write
from tests.test_gguf_hybrids import _mine, converted, hf


def test_a_q4_k_m_mix_prices_the_mtp_layer_as_the_file_holds_it(tmp_path: Path) -> None:
    config, model = hf("glm4_moe")
    assert config.num_nextn_predict_layers == 1
    mine = _mine("glm4_moe")
    assert mine.arguments["mtp_layers"] == 1
    q = quantize(mine, parse_weights("q4_k_m"))
    written = converted("glm4_moe", config, model)
    assert any(name.startswith("blk.2.nextn.") for name, _ in written)
    ne = [(name, tuple(reversed(shape))) for name, shape in written]
    block_count = config.num_hidden_layers + config.num_nextn_predict_layers
    plan = tensor_types(
        ne, "q4_k_m", arch="glm4moe", n_layer=block_count, n_head=4, n_head_kv=2, n_expert=4
    )
    tensors = [(name, Q[plan[name][1]], shape) for name, shape in written]
    truth = gguf.GGUFReader(str(write(tmp_path / "glm.gguf", "glm4moe", tensors)))
    params = [t for t in truth.tensors if not t.name.endswith("exp_probs_b.bias")]
    assert sum(int(t.n_bytes) for t in params) == q.bytes("bf16")
    by_name = {t.name: GGML_BY_NAME[t.tensor_type.name].storage for t in truth.tensors}
    stored = {p.name: p.dtype for p in _expanded(q)}
    made, _ = gguf_tensors(mine, mtp=1)
    assert {t.name for t in made} == {t.name for t in params}
    for t in made:
        assert stored[t.source] == by_name[t.name], t.name
    # the MTP layer is one of the file's layers for the mix: layer 1's ffn_down_exps,
    # rows of 32 (Q4_K and Q6_K fall back to Q5_0 and Q8_0), is Q5_0 among 3 layers
    # (use_more_bits(1, 3) is false) where it would be Q8_0 among 2
    assert by_name["blk.1.ffn_down_exps.weight"] == GGML_BY_NAME["Q5_0"].storage
    two = [(n, e) for n, e in ne if not n.startswith("blk.2.")]
    plan_two = tensor_types(
        two, "q4_k_m", arch="glm4moe", n_layer=2, n_head=4, n_head_kv=2, n_expert=4
    )
    assert plan_two["blk.1.ffn_down_exps.weight"][1] == "Q8_0"


def test_the_mtp_layer_is_held_not_run_and_not_loaded_by_llama_cpp() -> None:
    mine = _mine("glm4_moe")
    q = quantize(mine, parse_weights("q4_k_m"))
    plain = quantize(
        mine.config.__class__(**{**mine.arguments, "mtp_layers": 0}).model(),
        parse_weights("q4_k_m"),
    )
    fit = Fit(q, custom(1.0), dtype="bf16", seq_len=64)
    other = Fit(plain, custom(1.0), dtype="bf16", seq_len=64)
    # the forward and its state are the model's own layers'
    assert fit.cost(1, 64).state_groups() == other.cost(1, 64).state_groups()
    assert fit.weights()[0] > other.weights()[0]
    # llama.cpp: n_layer = 3 for the split, the MTP layer's tensors skipped
    engine = LlamaCpp()
    placed = Fit(q, custom(1.0), dtype="bf16", seq_len=64, engine=engine).by_layer
    assert len(placed.layers) == 3 and placed.layers[2] == 0
