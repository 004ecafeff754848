"""GGUF files: the ggml type table, the header reader, the check against the architecture
a file names, and the llama-quantize mixes.

Truth: the ``gguf`` package (llama.cpp's gguf-py): its ``GGML_QUANT_SIZES`` for the
types, ``GGUFWriter`` to write the files (with ``gguf.quants`` quantizing real data where
it can) and ``GGUFReader`` to read them back; ``tensor_mapping.py``'s ``TensorNameMap``
for the names of tiny transformers models converted here. The quant mixes follow
llama.cpp's src/llama-quant.cpp (commit 007dbbf3fd17eefe9b47fee45f48f7ba5e62b714), which
cannot run here: each rule is tested on the cases its lines name.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shapecalc.adapters.gguf import read_gguf
from shapecalc.adapters.gguf_arch import check_gguf, hf_config
from shapecalc.core.storage import GGML_BY_NAME, GGML_TYPES, STORAGE
from shapecalc.quant import parse_weights, quantize
from shapecalc.quant.gguf import gguf_tensors, tensor_types
from tests.test_cli import run

gguf = pytest.importorskip("gguf")
Q = gguf.GGMLQuantizationType

#: types gguf.quants quantizes with numpy
NUMPY_TYPES = ("BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "TQ1_0", "TQ2_0", "MXFP4")


# -- the type table ----------------------------------------------------------------------------
def test_every_ggml_type_is_gguf_pys() -> None:
    assert {t.id for t in GGML_TYPES.values()} == {int(t) for t in gguf.GGML_QUANT_SIZES}
    for qtype, (block, nbytes) in gguf.GGML_QUANT_SIZES.items():
        mine = GGML_TYPES[int(qtype)]
        assert (mine.name, mine.block, mine.block_bytes) == (qtype.name, block, nbytes)
        storage = STORAGE[mine.storage]
        assert storage.block == block and storage.block_bytes == nbytes
        # a row of 3 blocks costs what gguf-py says
        row = gguf.quants.quant_shape_to_byte_shape((2, 3 * block), qtype)
        assert storage.nbytes(3 * block) * 2 == row[0] * row[1]


# -- writing files with gguf-py ---------------------------------------------------------------
def _data(qtype: Any, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """A tensor's data as gguf-py writes it: quantized by gguf.quants where it can,
    else raw bytes of the type's byte shape."""
    if qtype.name in NUMPY_TYPES:
        return np.asarray(
            gguf.quants.quantize(rng.standard_normal(shape).astype(np.float32), qtype)
        )
    if qtype in (Q.F32, Q.F16, Q.F64, Q.I8, Q.I16, Q.I32, Q.I64):
        dtype = {
            Q.F32: np.float32,
            Q.F16: np.float16,
            Q.F64: np.float64,
            Q.I8: np.int8,
            Q.I16: np.int16,
            Q.I32: np.int32,
            Q.I64: np.int64,
        }[qtype]
        return np.zeros(shape, dtype)
    byte_shape = gguf.quants.quant_shape_to_byte_shape(shape, qtype)
    return rng.integers(0, 255, byte_shape, dtype=np.uint8)


def write(
    path: Path,
    arch: str,
    tensors: list[tuple[str, Any, tuple[int, ...]]],
    metadata: dict[str, Any] | None = None,
    alignment: int | None = None,
    seed: int = 0,
) -> Path:
    """A GGUF file of ``tensors`` (name, ggml type, torch shape) written by GGUFWriter."""
    rng = np.random.default_rng(seed)
    writer = gguf.GGUFWriter(str(path), arch)
    if alignment is not None:
        writer.add_custom_alignment(alignment)
    for key, value in (metadata or {}).items():
        if isinstance(value, bool):
            writer.add_bool(key, value)
        elif isinstance(value, int):
            writer.add_uint32(key, value)
        elif isinstance(value, float):
            writer.add_float32(key, value)
        elif isinstance(value, str):
            writer.add_string(key, value)
        else:
            writer.add_array(key, value)
    for name, qtype, shape in tensors:
        data = _data(qtype, shape, rng)
        writer.add_tensor(name, data, raw_shape=data.shape, raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def same_as_gguf_py(path: Path) -> None:
    """Every tensor's name, ne, type, bytes and offset, and the data offset and scalar
    metadata, as gguf.GGUFReader reads them."""
    mine = read_gguf(str(path))
    truth = gguf.GGUFReader(str(path))
    assert mine.data_offset == truth.data_offset
    assert mine.alignment == truth.alignment
    assert len(mine.tensors) == len(truth.tensors)
    for t, r in zip(mine.tensors, truth.tensors, strict=True):
        assert t.name == r.name
        assert list(t.ne) == [int(d) for d in r.shape]
        assert t.type.id == int(r.tensor_type)
        assert t.nbytes == int(r.n_bytes)
        assert mine.data_offset + t.offset == r.data_offset
    for key, field in truth.fields.items():
        if key.startswith("GGUF."):
            continue
        value = mine.metadata[key]
        if field.types[0] == gguf.GGUFValueType.ARRAY:
            assert value.length == len(field.data)
        elif field.types[0] == gguf.GGUFValueType.STRING:
            assert value == field.contents()
        elif field.types[0] in (gguf.GGUFValueType.FLOAT32, gguf.GGUFValueType.FLOAT64):
            assert value == pytest.approx(field.contents())
        else:
            assert value == field.contents()


@st.composite
def files(draw: st.DrawFn) -> tuple[list[tuple[str, Any, tuple[int, ...]]], int | None]:
    types = sorted(gguf.GGML_QUANT_SIZES, key=int)
    n = draw(st.integers(1, 6))
    tensors = []
    for i in range(n):
        qtype = draw(st.sampled_from(types))
        block = gguf.GGML_QUANT_SIZES[qtype][0]
        dims = draw(st.lists(st.integers(1, 3), min_size=0, max_size=3))
        cols = block * draw(st.integers(1, 3))
        tensors.append((f"t{i}.weight", qtype, (*dims, cols)))
    alignment = draw(st.sampled_from([None, 1, 8, 64, 256]))
    return tensors, alignment


@given(drawn=files())
def test_the_reader_reads_what_gguf_py_writes(drawn: Any, tmp_path_factory: Any) -> None:
    tensors, alignment = drawn
    folder = tmp_path_factory.mktemp("gguf")
    meta = {"a.list": [1, 2, 3], "a.words": ["x", "yz"], "a.f": 0.5, "a.b": True, "a.s": "é"}
    path = write(folder / "m.gguf", "llama", tensors, meta, alignment)
    same_as_gguf_py(path)
    f = read_gguf(str(path))
    assert f.parameters == sum(int(np.prod(s)) for _, _, s in tensors)
    assert f.nbytes == sum(t.nbytes for t in f.tensors)


def test_nested_arrays_and_big_endian(tmp_path: Path) -> None:
    writer = gguf.GGUFWriter(str(tmp_path / "be.gguf"), "llama", endianess=gguf.GGUFEndian.BIG)
    writer.add_array("nested", [[1, 2], [3]])
    writer.add_tensor("w", np.zeros((2, 32), np.float32).byteswap())
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    f = read_gguf(str(tmp_path / "be.gguf"))
    assert f.byte_order == "big"
    assert f.metadata["nested"].length == 2
    assert [t.shape for t in f.tensors] == [(2, 32)]


# -- tiny transformers models, converted here as convert_hf_to_gguf.py names them -------------
FAMILIES: dict[str, tuple[str, dict[str, Any]]] = {
    "llama": ("llama", {}),
    "mistral": ("llama", {}),
    "qwen2": ("qwen2", {}),
    "qwen3": ("qwen3", {"head_dim": 16}),
    "gemma": ("gemma", {"head_dim": 16}),
    "gemma2": ("gemma2", {"head_dim": 16}),
    "phi3": ("phi3", {"pad_token_id": None}),
    "starcoder2": ("starcoder2", {}),
    "mixtral": ("llama", {"num_local_experts": 4, "num_experts_per_tok": 2}),
    "qwen2_moe": (
        "qwen2moe",
        {
            "num_experts": 4,
            "num_experts_per_tok": 2,
            "moe_intermediate_size": 32,
            "shared_expert_intermediate_size": 96,
        },
    ),
    "qwen3_moe": (
        "qwen3moe",
        {"num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 32, "head_dim": 16},
    ),
}


def _transformers_model(model_type: str, extra: dict[str, Any]) -> tuple[Any, Any]:
    transformers = pytest.importorskip("transformers")
    torch = pytest.importorskip("torch")
    config = transformers.AutoConfig.for_model(
        model_type,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=96,
        **extra,
    )
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(config)
    return config, model


def convert(model_type: str, tmp_path: Path, qtype: Any = None, tokens: bool = True) -> Path:
    """A tiny transformers model written as llama.cpp's converter writes it: its names
    by gguf-py's TensorNameMap, fused experts split into gate and up, the tied head left
    out, the ``<arch>.*`` sizes and the tokenizer's tokens in the metadata."""
    arch, extra = FAMILIES[model_type]
    config, model = _transformers_model(model_type, extra)
    inv = {v: k for k, v in gguf.MODEL_ARCH_NAMES.items()}
    names = gguf.get_tensor_name_map(inv[arch], config.num_hidden_layers)
    tensors: list[tuple[str, Any, np.ndarray]] = []
    for name, value in model.state_dict().items():
        if name == "lm_head.weight" and config.tie_word_embeddings:
            continue
        array = value.float().numpy()
        parts = [(name, array)]
        if name.endswith("mlp.experts.gate_up_proj"):
            half = array.shape[1] // 2
            base = name[: -len("gate_up_proj")]
            parts = [(base + "gate_proj", array[:, :half]), (base + "up_proj", array[:, half:])]
        for part, data in parts:
            new = names.get_name(part, try_suffixes=(".weight", ".bias"))
            assert new is not None, part
            if not new.endswith((".weight", ".bias")):
                new += ".weight"
            kind = Q.F32 if data.ndim == 1 or qtype is None else qtype
            tensors.append((new, kind, np.ascontiguousarray(data)))
    writer = gguf.GGUFWriter(str(tmp_path / f"{model_type}.gguf"), arch)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_embedding_length(config.hidden_size)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    if "head_dim" in extra:
        writer.add_key_length(extra["head_dim"])
    experts = extra.get("num_experts", extra.get("num_local_experts"))
    if experts:
        writer.add_expert_count(experts)
        writer.add_expert_used_count(extra["num_experts_per_tok"])
    if "moe_intermediate_size" in extra:
        writer.add_expert_feed_forward_length(extra["moe_intermediate_size"])
    if "shared_expert_intermediate_size" in extra:
        writer.add_expert_shared_feed_forward_length(extra["shared_expert_intermediate_size"])
    if tokens:
        writer.add_token_list([f"t{i}" for i in range(config.vocab_size)])
    for name, kind, data in tensors:
        if kind in (Q.F32,):
            writer.add_tensor(name, data.astype(np.float32))
        else:
            q = np.asarray(gguf.quants.quantize(data, kind))
            writer.add_tensor(name, q, raw_shape=q.shape, raw_dtype=kind)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return tmp_path / f"{model_type}.gguf"


@pytest.mark.parametrize("model_type", sorted(FAMILIES))
def test_a_converted_model_agrees_with_its_metadata(model_type: str, tmp_path: Path) -> None:
    path = convert(model_type, tmp_path, Q.Q8_0)
    same_as_gguf_py(path)
    check = check_gguf(read_gguf(str(path)))
    assert check.ok, (check.missing, check.unexpected, check.wrong_shape)
    _, model = _transformers_model(model_type, FAMILIES[model_type][1])
    assert check.expected_total == sum(p.numel() for p in model.parameters())
    result = run(["inspect", str(path)])
    assert result.exit_code == 0, result.output
    assert "The file agrees with its metadata." in result.stdout
    assert "Q8_0" in result.stdout


def test_a_file_without_a_tokenizer_takes_the_vocabulary_from_its_embedding(
    tmp_path: Path,
) -> None:
    """A file written without tokenizer.ggml.tokens (and no <arch>.vocab_size) is still
    checked: the vocabulary is token_embd.weight's rows."""
    path = convert("llama", tmp_path, Q.Q8_0, tokens=False)
    check = check_gguf(read_gguf(str(path)))
    assert check.ok, (check.missing, check.unexpected, check.wrong_shape)
    result = run(["inspect", str(path)])
    assert result.exit_code == 0, result.output
    assert "The file agrees with its metadata." in result.stdout


def test_the_names_are_gguf_pys(tmp_path: Path) -> None:
    """shapecalc's names of every family's tensors are tensor_mapping.py's."""
    from shapecalc.adapters.hf_config import hf_model

    for model_type, (arch, extra) in FAMILIES.items():
        config, _ = _transformers_model(model_type, extra)
        model = hf_model(config.to_dict()).model()
        inv = {v: k for k, v in gguf.MODEL_ARCH_NAMES.items()}
        names = gguf.get_tensor_name_map(inv[arch], config.num_hidden_layers)
        made, unmapped = gguf_tensors(model)
        assert not unmapped
        for t in made:
            source = t.source
            if t.how:  # half of the fused experts: gguf-py knows the stacked halves
                part = "gate_proj" if "gate_exps" in t.name else "up_proj"
                source = source.replace("gate_up_proj", part)
            want = names.get_name(source, try_suffixes=(".weight", ".bias"))
            if want is not None and not want.endswith((".weight", ".bias")):
                want += ".weight"
            assert want == t.name, (model_type, t.source)


def test_every_difference_is_said(tmp_path: Path) -> None:
    path = convert("qwen2", tmp_path)
    f = read_gguf(str(path))
    config = hf_config(f)
    assert config["model_type"] == "qwen2" and config["vocab_size"] == 96
    # a file whose metadata says 3 layers: the third layer's tensors are missing
    writer = gguf.GGUFWriter(str(tmp_path / "bad.gguf"), "qwen2")
    writer.add_block_count(2)
    writer.add_embedding_length(64)
    writer.add_feed_forward_length(128)
    writer.add_head_count(4)
    writer.add_head_count_kv(2)
    writer.add_token_list([f"t{i}" for i in range(96)])
    for t in f.tensors:
        if t.name == "blk.1.attn_v.weight":
            continue
        shape = (3, 64) if t.name == "blk.0.attn_norm.weight" else t.shape
        writer.add_tensor(t.name, np.zeros(shape, np.float32).squeeze())
    writer.add_tensor("blk.0.extra.weight", np.zeros((4, 4), np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    result = run(["inspect", str(tmp_path / "bad.gguf")])
    assert result.exit_code == 1, result.output
    out = result.stdout
    assert re.search(r"missing +blk\.1\.attn_v\.weight \(32, 64\)", out)
    assert re.search(r"unexpected +blk\.0\.extra\.weight \(4, 4\) F32", out)
    assert "wrong shape blk.0.attn_norm.weight" in out
    assert "1 missing, 1 unexpected, 1 of the wrong shape" in out


def test_an_architecture_not_mapped_is_listed_unchecked(tmp_path: Path) -> None:
    path = write(tmp_path / "m.gguf", "rwkv7", [("w.weight", Q.Q4_0, (2, 32))])
    result = run(["inspect", str(path)])
    assert result.exit_code == 0, result.output
    assert "Not checked against an architecture" in result.stdout
    assert "4.5 bits each" in result.stdout


@pytest.mark.parametrize("width", [80, 200])
def test_the_listing_fits(width: int, tmp_path: Path) -> None:
    path = convert("qwen3_moe", tmp_path)
    result = run(["inspect", str(path)], width)
    assert result.exit_code == 0, result.output
    assert max(len(line) for line in result.stdout.splitlines()) <= width
    json_result = run(["inspect", str(path), "--format", "json"], width)
    assert json_result.exit_code == 0


# -- the quant mixes ---------------------------------------------------------------------------
def llama(layers: int = 32, heads: int = 32, kv: int = 8, hidden: int = 256, **kw: Any) -> Any:
    from shapecalc.adapters.hf_config import hf_model

    config = {
        "model_type": "llama",
        "architectures": ["LlamaForCausalLM"],
        "hidden_size": hidden,
        "intermediate_size": 2 * hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv,
        "head_dim": 8,
        "vocab_size": 512,
        "tie_word_embeddings": False,
        **kw,
    }
    return hf_model(config).model()


def types_of(model: Any, mix: str) -> dict[str, str]:
    q = quantize(model, parse_weights(mix))
    return {p.name: p.dtype for p in _expanded(q)}


def _expanded(model: Any) -> list[Any]:
    from shapecalc.core.spec import Param

    out: list[Param] = []
    for row in model.rows():
        name = row.name
        m = re.search(r"\{(\d+)(?:,(\d+))?\.\.(\d+)\}", name)
        if m is None:
            out.append(Param(name, row.shape, "", dtype=row.param.dtype))
            continue
        first, second, last = int(m.group(1)), m.group(2), int(m.group(3))
        step = int(second) - first if second else 1
        for i in range(first, last + 1, step):
            out.append(
                Param(
                    name[: m.start()] + str(i) + name[m.end() :],
                    row.shape,
                    "",
                    dtype=row.param.dtype,
                )
            )
    return out


def use_more_bits(i: int, n: int) -> bool:
    """llama-quant.cpp's lambda, written from its line: i < n/8 || i >= 7n/8 ||
    (i - n/8) % 3 == 2 (C's remainder: negative for a negative dividend)."""
    r = int(np.fmod(i - n // 8, 3))
    return i < n // 8 or i >= 7 * n // 8 or r == 2


def test_q4_k_m_raises_attn_v_and_ffn_down_where_use_more_bits_says() -> None:
    types = types_of(llama(), "q4_k_m")
    for i in range(32):
        more = use_more_bits(i, 32)
        assert types[f"model.layers.{i}.self_attn.v_proj.weight"] == ("Q6_K" if more else "Q4_K")
        assert types[f"model.layers.{i}.mlp.down_proj.weight"] == ("Q6_K" if more else "Q4_K")
        assert types[f"model.layers.{i}.self_attn.q_proj.weight"] == "Q4_K"
        assert types[f"model.layers.{i}.input_layernorm.weight"] == "float32"
    assert types["lm_head.weight"] == "Q6_K"
    assert types["model.embed_tokens.weight"] == "Q4_K"


def test_tied_embeddings_take_the_outputs_type() -> None:
    types = types_of(llama(layers=4, tie_word_embeddings=True), "q4_k_m")
    assert types["model.embed_tokens.weight"] == "Q6_K"
    assert "lm_head.weight" not in types or types["lm_head.weight"] in ("", "Q6_K")


def test_q3_k_m_gives_the_first_two_attn_v_q5_k() -> None:
    types = types_of(llama(layers=8), "q3_k_m")
    got = [types[f"model.layers.{i}.self_attn.v_proj.weight"] for i in range(8)]
    assert got == ["Q5_K", "Q5_K"] + ["Q4_K"] * 6
    assert types["model.layers.3.self_attn.o_proj.weight"] == "Q4_K"
    # ffn_down: Q5_K below n/16 (0 of 8), else Q4_K (not falcon)
    assert {types[f"model.layers.{i}.mlp.down_proj.weight"] for i in range(8)} == {"Q4_K"}


def test_q2_k_and_gqa() -> None:
    assert types_of(llama(layers=2, kv=8), "q2_k")["model.layers.0.self_attn.v_proj.weight"] == (
        "Q4_K"  # n_gqa = 32 / 8 = 4
    )
    assert types_of(llama(layers=2, kv=16), "q2_k")["model.layers.0.self_attn.v_proj.weight"] == (
        "Q3_K"  # n_gqa = 2
    )


def test_rows_not_whole_blocks_fall_back() -> None:
    # hidden 320: rows of 320 are not whole blocks of 256: Q4_K -> Q5_0 (blocks of 32)
    types = types_of(llama(layers=2, hidden=320, heads=8, kv=2), "q4_k_s")
    assert types["model.layers.0.self_attn.q_proj.weight"] == "Q5_0"
    assert types["lm_head.weight"] == "Q8_0"  # nx % qk_k != 0 -> Q8_0
    # ffn_down's rows of 100: not even whole blocks of 32: F16
    types = types_of(llama(layers=2, hidden=320, heads=8, kv=2, intermediate_size=100), "q4_k_s")
    assert types["model.layers.0.mlp.down_proj.weight"] == "float16"
    assert types["model.layers.0.mlp.up_proj.weight"] == "Q5_0"
    # the output in Q8_0 with rows of 80: llama-quantize has no fallback and stops
    result = run(
        [
            "llama",
            "--vocab",
            "512",
            "--hidden",
            "80",
            "--layers",
            "2",
            "--heads",
            "8",
            "--weights",
            "q4_k_s",
        ]
    )
    assert result.exit_code == 2
    assert "no tensor type fallback is defined for type Q8_0" in result.stderr


def test_seventy_b_and_eight_experts() -> None:
    names = [(f"blk.{i}.attn_v.weight", (8192, 1024)) for i in range(80)]
    rule = "80 layers, grouped heads"  # llama's HFType.gguf_70b
    got = tensor_types(
        names, "q4_k_s", arch="llama", seventy_b=rule, n_layer=80, n_head=64, n_head_kv=8
    )
    assert got["blk.0.attn_v.weight"][1] == "Q5_K"  # i < 4
    assert got["blk.10.attn_v.weight"][1] == "Q5_K"  # Q4_K -> Q5_K for 70B
    got = tensor_types(
        names, "q4_k_s", arch="llama", seventy_b=rule, n_layer=80, n_head=64, n_head_kv=64
    )
    assert got["blk.10.attn_v.weight"][1] == "Q4_K"  # 65B: no grouped heads
    moe = [("blk.0.attn_v.weight", (4096, 1024)), ("blk.0.attn_k.weight", (4096, 1024))]
    got = tensor_types(
        moe, "q4_k_m", arch="llama", seventy_b=rule, n_layer=32, n_head=32, n_head_kv=8, n_expert=8
    )
    assert got["blk.0.attn_v.weight"][1] == "Q8_0" and got["blk.0.attn_k.weight"][1] == "Q8_0"


def test_gate_and_up_by_layer_in_iq3_xs_alone() -> None:
    """llama-quant.cpp counts the gate's and up projection's layers: iq3_xs gives
    IQ3_XXS to the layers from n_layer/8 to 7 n_layer/8 and the mix's IQ3_S to the others;
    every other mix gives them its base type."""
    names = [
        (f"blk.{i}.{k}.weight", (4096, 11008)) for i in range(16) for k in ("ffn_gate", "ffn_up")
    ]
    sizes = {"arch": "llama", "n_layer": 16, "n_head": 32, "n_head_kv": 32}
    got = tensor_types(names, "iq3_xs", imatrix=True, **sizes)
    for i in range(16):
        want = "IQ3_XXS" if 2 <= i < 14 else "IQ3_S"
        assert got[f"blk.{i}.ffn_gate.weight"][1] == want
        assert got[f"blk.{i}.ffn_up.weight"][1] == want
    got = tensor_types(names, "q4_k_m", **sizes)
    assert {t for _, t in got.values()} == {"Q4_K"}


def test_the_i_quants_need_an_importance_matrix() -> None:
    result = run(
        [
            "llama",
            "--vocab",
            "512",
            "--hidden",
            "256",
            "--layers",
            "2",
            "--heads",
            "4",
            "--weights",
            "iq2_xxs",
        ]
    )
    assert result.exit_code == 2 and "imatrix=true" in result.stderr
    result = run(
        [
            "llama",
            "--vocab",
            "512",
            "--hidden",
            "256",
            "--layers",
            "2",
            "--heads",
            "4",
            "--weights",
            "iq2_xxs:imatrix=true",
        ]
    )
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("model_type", ["llama", "qwen3_moe", "gemma2"])
@pytest.mark.parametrize("mix", ["q4_0", "q8_0", "q4_k_m", "q3_k_l", "q5_k_s", "q6_k", "iq4_xs"])
def test_the_priced_bytes_are_what_gguf_py_writes(
    model_type: str, mix: str, tmp_path: Path
) -> None:
    """The model priced in a mix costs, tensor by tensor, what a GGUF file of those
    tensors in those types holds: written by GGUFWriter, read by GGUFReader."""
    from shapecalc.adapters.hf_config import hf_model

    config, _ = _transformers_model(model_type, FAMILIES[model_type][1])
    model = hf_model(config.to_dict()).model()
    q = quantize(model, parse_weights(mix))
    made, _ = gguf_tensors(model)
    arch = FAMILIES[model_type][0]
    sizes = {
        "n_layer": 2,
        "n_head": 4,
        "n_head_kv": 2,
        "n_expert": FAMILIES[model_type][1].get("num_experts", 0),
    }
    plan = tensor_types([(t.name, t.ne) for t in made], mix, arch=arch, **sizes)
    tensors = [(t.name, Q[plan[t.name][1]], t.shape) for t in made]
    path = write(tmp_path / "q.gguf", arch, tensors)
    truth = gguf.GGUFReader(str(path))
    assert sum(int(t.n_bytes) for t in truth.tensors) == q.bytes("bf16")
    by_name = {t.name: GGML_BY_NAME[t.tensor_type.name].storage for t in truth.tensors}
    stored = {p.name: p.dtype for p in _expanded(q)}
    for t in made:
        assert stored[t.source] == by_name[t.name], t.name


#: a published GGUF's header, as Ollama's registry shows it (gemma:2b-instruct-v1.1-q4_1,
#: https://registry.ollama.ai/library/gemma:2b-instruct-v1.1-q4_1/blobs/c382eaee8d1f,
#: 1.7 GB): its metadata and the tensors the page lists first (name, type, ne)
GEMMA_2B_METADATA = {
    "gemma.attention.head_count": 8,
    "gemma.attention.head_count_kv": 1,
    "gemma.attention.key_length": 256,
    "gemma.block_count": 18,
    "gemma.embedding_length": 2048,
    "gemma.feed_forward_length": 16384,
}
GEMMA_2B_TENSORS = [
    ("token_embd.weight", "Q6_K", (2048, 256000)),
    ("blk.0.attn_k.weight", "Q4_1", (2048, 256)),
    ("blk.0.attn_norm.weight", "F32", (2048,)),
    ("blk.0.attn_output.weight", "Q4_1", (2048, 2048)),
    ("blk.0.attn_q.weight", "Q4_1", (2048, 2048)),
    ("blk.0.attn_v.weight", "Q4_1", (2048, 256)),
    ("blk.0.ffn_down.weight", "Q4_1", (16384, 2048)),
    ("blk.0.ffn_gate.weight", "Q4_1", (2048, 16384)),
    ("blk.0.ffn_norm.weight", "F32", (2048,)),
    ("blk.0.ffn_up.weight", "Q4_1", (2048, 16384)),
    ("blk.1.attn_k.weight", "Q4_1", (2048, 256)),
    ("blk.1.attn_norm.weight", "F32", (2048,)),
    ("blk.1.attn_output.weight", "Q4_1", (2048, 2048)),
    ("blk.1.attn_q.weight", "Q4_1", (2048, 2048)),
    ("blk.1.attn_v.weight", "Q4_1", (2048, 256)),
]


def test_a_published_gguf_header_is_what_shapecalc_makes() -> None:
    """Gemma 2B in Q4_1 from its published header: shapecalc's names, ne and types for
    each listed tensor are the file's (the tied embedding in Q6_K, norms in F32), and
    the file's size (1.7 GB) is the priced bytes, rounded."""
    from shapecalc.adapters.hf_config import hf_model

    meta = GEMMA_2B_METADATA
    config = {
        "model_type": "gemma",
        "architectures": ["GemmaForCausalLM"],
        "hidden_size": meta["gemma.embedding_length"],
        "intermediate_size": meta["gemma.feed_forward_length"],
        "num_hidden_layers": meta["gemma.block_count"],
        "num_attention_heads": meta["gemma.attention.head_count"],
        "num_key_value_heads": meta["gemma.attention.head_count_kv"],
        "head_dim": meta["gemma.attention.key_length"],
        "vocab_size": 256000,
    }
    model = hf_model(config).model()
    made, unmapped = gguf_tensors(model)
    assert not unmapped
    ne = {t.name: t.ne for t in made}
    plan = tensor_types(
        [(t.name, t.ne) for t in made], "q4_1", arch="gemma", n_layer=18, n_head=8, n_head_kv=1
    )
    for name, qtype, shape in GEMMA_2B_TENSORS:
        assert ne[name] == shape, name
        assert plan[name][1] == qtype, name
    q = quantize(model, parse_weights("q4_1"))
    assert round(q.bytes("bf16") / 1e9, 1) == 1.7


def test_the_json_report_validates(tmp_path: Path) -> None:
    import json

    from tests.test_schema import validator

    path = convert("mixtral", tmp_path, Q.Q8_0)
    result = run(["inspect", str(path), "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    validator("inspect").validate(report)
    gguf_part = report["gguf"]
    assert gguf_part["architecture"] == "llama" and gguf_part["check"]["ok"]
    assert gguf_part["metadata"]["tokenizer.ggml.tokens"] == {"array_of": "string", "length": 96}
    assert gguf_part["parameters"] == report["total"]


def test_qwen2_of_80_layers_is_70b_by_its_class() -> None:
    """qwen2.cpp sets LLM_TYPE_70B for 80 layers whatever the heads; llama.cpp only with
    grouped heads: a config's class names the GGUF architecture."""
    from shapecalc.adapters.hf_config import hf_model

    base = {
        "hidden_size": 256,
        "intermediate_size": 512,
        "num_hidden_layers": 80,
        "num_attention_heads": 4,
        "num_key_value_heads": 4,
        "vocab_size": 512,
    }
    for model_type, cls, want in (
        ("qwen2", "Qwen2ForCausalLM", "Q5_K"),
        ("llama", "LlamaForCausalLM", "Q4_K"),
    ):
        model = hf_model({"model_type": model_type, "architectures": [cls], **base}).model()
        types = types_of(model, "q4_k_s")
        assert types["model.layers.40.self_attn.v_proj.weight"] == want, model_type


def test_the_output_type_reaches_a_tied_embedding() -> None:
    """--output-tensor-type: the outer wrapper sets output.weight's type; a tied
    token_embd takes it inside llama_tensor_get_type_impl; --token-embedding-type first."""
    tied = types_of(llama(layers=2, tie_word_embeddings=True), "q4_k_m:output_type=q8_0")
    assert tied["model.embed_tokens.weight"] == "Q8_0"
    both = "q4_k_m:output_type=q8_0,embedding_type=q5_k"
    assert (
        types_of(llama(layers=2, tie_word_embeddings=True), both)["model.embed_tokens.weight"]
        == "Q5_K"
    )
    untied = types_of(llama(layers=2), "q4_k_m:output_type=q8_0")
    assert untied["lm_head.weight"] == "Q8_0" and untied["model.embed_tokens.weight"] == "Q4_K"
    pure = types_of(llama(layers=8), "q4_k_m:pure=true")
    assert pure["model.layers.0.self_attn.v_proj.weight"] == "Q4_K"
    assert pure["lm_head.weight"] == "Q4_K"


def test_a_shard_of_a_split_file_is_listed_not_checked(tmp_path: Path) -> None:
    meta = {"split.no": 0, "split.count": 3, "llama.block_count": 2}
    path = write(tmp_path / "m-00001-of-00003.gguf", "llama", [("w.weight", Q.F16, (4, 32))], meta)
    result = run(["inspect", str(path)])
    assert result.exit_code == 0, result.output
    assert "shard 1 of 3 (split.count = 3)" in result.stdout


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["lstm", "--vocab", "65", "--hidden", "512", "--layers", "2"], "without a GGUF name"),
        (
            ["llama", "--vocab", "V", "--hidden", "256", "--layers", "2", "--heads", "4"],
            "needs every size as a number",
        ),
    ],
)
def test_a_model_a_mix_cannot_price_is_one_line(args: list[str], said: str) -> None:
    for weights in ("q4_k_m", "gguf:ftype=q6_k"):
        result = run([*args, "--weights", weights])
        assert result.exit_code == 2, result.output
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and said in lines[0], result.stderr


@pytest.mark.parametrize(
    ("weights", "said"),
    [
        ("q4_k_m:bogus=1", "gguf has no setting 'bogus'"),
        ("gguf:ftype=q9", "not a llama-quantize mix"),
        ("q4_k_m:output_type=q9_k", "output_type = 'q9_k' is not a ggml type"),
        ("q4_k_m:imatrix=maybe", "imatrix must be true or false"),
        ("q4_k_m:modules_to_not_convert=lm_head", "modules_to_not_convert"),
        ("q4_k_m:arch=foo", "arch = 'foo' is not a GGUF architecture"),
        ("gptq:bits=8,bits=4", "bits is given twice"),
        ("bf16", "is a dtype, not a weights format: give --dtype bf16"),
        ("F16", "give --dtype fp16"),
    ],
)
def test_bad_settings_are_one_line(weights: str, said: str) -> None:
    result = run(
        [
            "llama",
            "--vocab",
            "512",
            "--hidden",
            "256",
            "--layers",
            "2",
            "--heads",
            "4",
            "--weights",
            weights,
        ]
    )
    assert result.exit_code == 2, result.output
    assert len(result.stderr.splitlines()) == 1 and said in result.stderr, result.stderr


def test_a_fifo_named_gguf_is_refused_without_opening_it(tmp_path: Path) -> None:
    import os

    fifo = tmp_path / "model.gguf"
    os.mkfifo(fifo)
    result = run(["inspect", str(fifo)])
    assert result.exit_code == 2 and "not a regular file" in result.stderr, result.output
    result = run(["inspect", str(tmp_path / "absent.gguf")])
    assert result.exit_code == 2, result.output


def test_the_converter_keeps_routers_and_the_shared_expert_gate_in_f32() -> None:
    """convert_hf_to_gguf.py's prepare_tensors: FFN_GATE_INP and FFN_GATE_INP_SHEXP (and
    position and token-type embeddings, ssm_conv1d) are written in F32 whatever
    --outtype; other 2-D weights in the outtype."""
    from shapecalc.quant.gguf import source_type

    for name in (
        "blk.0.ffn_gate_inp.weight",
        "blk.0.ffn_gate_inp_shexp.weight",
        "position_embd.weight",
        "blk.3.ssm_conv1d.weight",
    ):
        assert source_type(name, (64, 8)) == "F32", name
    assert source_type("blk.0.ffn_up_shexp.weight", (64, 8)) == "F16"


@pytest.mark.parametrize("width", [80, 200])
def test_more_layers_than_llama_cpp_loads_are_refused(width: int) -> None:
    """llama.cpp's loader (which llama-quantize runs) holds at most LLAMA_MAX_LAYERS = 512
    layers (src/llama-hparams.h; llama_model_loader::get_key_or_arr throws "n > N_MAX"):
    a mix of a deeper model, and --engine llama.cpp for one, are refused in one line, at
    once however deep (a walk layer by layer of 10^8 layers would run for hours)."""
    sizes = ["--vocab", "512", "--hidden", "64", "--heads", "4", "--intermediate", "128"]
    priced = run(["llama", *sizes, "--layers", "512", "--weights", "q4_k_m"], width)
    assert priced.exit_code == 0, priced.output
    for layers in ("513", "100000000"):
        deep = ["llama", *sizes, "--layers", layers]
        for command in (
            [*deep, "--weights", "q4_k_m"],
            ["fit", *deep, "--gpu", "h100", "--engine", "llama.cpp"],
        ):
            result = run(command, width)
            assert result.exit_code == 2, result.output
            said = result.stderr.strip()
            assert len(said.splitlines()) == 1 and "at most 512 layers" in said, said
            assert f"{int(layers):,}" in said, said
    formats = run(["fit", "llama", *sizes, "--layers", "100000000", "--gpu", "h100"], width)
    assert formats.exit_code == 1 and "q4_k_m" not in formats.stdout, formats.output
