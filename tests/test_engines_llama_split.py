"""llama.cpp over several GPUs, split by layer (``-sm layer``, its default).

Truth: the source rule of ggml-org/llama.cpp (commit 00342301d01add50835550e8a916f12097d94517),
worked out here independently of shapecalc:

- ``src/llama-model.cpp``, ``llama_model::load_tensors``: the split points are the
  ``tensor_split`` proportions (or the devices' free memory), summed and normalised in
  ``float``; with every layer offloaded (``n_gpu_layers`` 999, ``i_gpu_start`` 0,
  ``act_gpu_layers = n_layer + 1``) layer ``il`` goes to
  ``std::upper_bound(splits, splits + n, float(il - i_gpu_start) / act_gpu_layers)``, the
  output layer as ``il = n_layer``; the input layer always on the CPU; a tied output the
  token embedding created again in the output layer's buffer (``TENSOR_DUPLICATED``).
  Computed here with numpy's float32 and ``searchsorted(side="right")`` (upper_bound).
- ``src/llama-kv-cache.cpp``, ``llama_kv_cache::llama_kv_cache``: layer ``il``'s
  ``cache_k_l%d``/``cache_v_l%d`` (n_embd_k_gqa × kv_size × n_stream, f16) in the buffer
  of ``model.dev_layer(il)``.
- the weights per layer from transformers' own model (built on the meta device): every
  parameter named ``model.layers.<il>.`` on the device of ``il``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from shapecalc.analysis.engines import LlamaCpp
from shapecalc.analysis.fit import Fit
from shapecalc.analysis.hardware import custom
from shapecalc.analysis.llama_split import layer_devices, split_points
from shapecalc.architectures import get
from shapecalc.cli.app import cli
from shapecalc.core.errors import ShapecalcError

SCHEMA = Path(__file__).resolve().parent.parent / "docs" / "schema" / "fit.schema.json"


def source_rule(n_layer: int, devices: int, ts: tuple[float, ...] = ()) -> list[int]:
    """load_tensors' device of each layer and of the output layer, in float32."""
    f = np.float32
    given_ = [f(x) for x in ts[:devices]] + [f(0)] * max(0, devices - len(ts))
    if all(x == 0 for x in given_):
        given_ = [f(1)] * devices  # identical GPUs: equal free memory
    splits = []
    total = f(0)
    for x in given_:
        total = f(total + x)
        splits.append(total)
    points = np.array([f(s / total) for s in splits], dtype=np.float32)
    act = f(n_layer + 1)
    return [int(np.searchsorted(points, f(f(il) / act), side="right")) for il in range(n_layer + 1)]


# -- where the layers go ------------------------------------------------------------------------
def test_worked_examples_of_the_split() -> None:
    # 32 layers on 2 GPUs: il / 33 < 0.5 for il <= 16: 17 layers, then 15 and the output
    d = layer_devices(32, 2)
    assert d[:17] == (0,) * 17 and d[17:] == (1,) * 16
    # -ts 3,1: split points (0.75, 1); il / 33 < 0.75 for il <= 24: 25 layers and 7
    d = layer_devices(32, 2, (3, 1))
    assert d.count(0) == 25 and d[25:] == (1,) * 8
    # a fraction equal to a split point goes past it (upper_bound): 3 layers on 2 GPUs,
    # layer 2 at 2 / 4 = 0.5 is on the second
    assert layer_devices(3, 2) == (0, 0, 1, 1)
    # 80 layers on 3 GPUs: float(27) / 81 rounds to float(1 / 3), the first split point,
    # so layer 27 is on the second GPU; likewise 54 on the third: 27, 27, 26 layers
    d = layer_devices(80, 3)
    assert (d.count(0), d.count(1), d.count(2) - 1) == (27, 27, 26)
    assert split_points((), 3) == (np.float32(1 / 3), np.float32(2 / 3), 1.0)
    # a zero proportion leaves a GPU empty; proportions past the devices are not read
    assert 1 not in layer_devices(10, 3, (1, 0, 1))
    assert layer_devices(10, 2, (1, 1, 5)) == layer_devices(10, 2)


@settings(max_examples=60, deadline=None)
@given(
    n_layer=st.integers(1, 130),
    devices=st.integers(1, 8),
    ts=st.lists(st.sampled_from([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 7.0, 0.1]), max_size=9),
)
def test_the_split_is_the_source_rule_in_float32(
    n_layer: int, devices: int, ts: list[float]
) -> None:
    assert list(layer_devices(n_layer, devices, tuple(ts))) == source_rule(
        n_layer, devices, tuple(ts)
    )


# -- each GPU's account ---------------------------------------------------------------------
def _hf_layer_bytes(model: Any, itemsize: int) -> tuple[dict[int, int], int, int, bool]:
    """Per layer, the input layer's and the output layer's bytes, from transformers'
    LlamaForCausalLM built on the meta device."""
    import torch
    import transformers

    args = model.arguments
    config = transformers.LlamaConfig(
        vocab_size=args["vocab"],
        hidden_size=args["hidden"],
        num_hidden_layers=args["layers"],
        num_attention_heads=args["heads"],
        num_key_value_heads=args["kv_heads"],
        intermediate_size=args["intermediate"],
        tie_word_embeddings=bool(args.get("tie_weights")),
    )
    with torch.device("meta"):
        hf = transformers.LlamaForCausalLM(config)
    layers: dict[int, int] = {}
    inputs = output = 0
    for name, p in hf.named_parameters():  # tied tensors once, as torch lists them
        n = p.numel() * itemsize
        if name.startswith("model.layers."):
            il = int(name.split(".")[2])
            layers[il] = layers.get(il, 0) + n
        elif name == "model.embed_tokens.weight":
            inputs += n
        else:
            output += n
    tied = hf.lm_head.weight is hf.model.embed_tokens.weight
    return layers, inputs, output, tied


@settings(max_examples=6, deadline=None)
@given(
    layers=st.integers(1, 9),
    gpus=st.integers(1, 4),
    ts=st.lists(st.sampled_from([0.0, 1.0, 2.0, 3.0]), max_size=4),
    tied=st.booleans(),
    batch=st.integers(1, 3),
    seq_len=st.integers(1, 700),
)
def test_each_gpu_holds_its_layers_weights_and_cache(
    layers: int, gpus: int, ts: list[float], tied: bool, batch: int, seq_len: int
) -> None:
    if ts and not any(ts[:gpus]):
        ts = []
    model = get("llama")(
        vocab=300,
        hidden=32,
        layers=layers,
        heads=4,
        kv_heads=2,
        intermediate=48,
        tie_weights=tied,
    ).model()
    engine = LlamaCpp(tensor_split=tuple(ts))
    fit = Fit(model, custom(10.0), dtype="bf16", batch=batch, seq_len=seq_len, engine=engine)
    per_layer, inputs, output, is_tied = _hf_layer_bytes(model, 2)
    assert is_tied == tied
    where = source_rule(layers, gpus, tuple(ts))
    # src/llama-context.cpp: n_ctx = GGML_PAD(B × T, 256), each stream pad(n_ctx / B, 256)
    n_ctx = -(-batch * seq_len // 256) * 256
    cells = n_ctx if batch == 1 else -(-(n_ctx // batch) // 256) * 256
    devices = engine.devices(fit, batch, seq_len, gpus)
    assert len(devices) == gpus
    for device in devices:
        mine = [il for il in range(layers) if where[il] == device.index]
        holds_output = where[layers] == device.index
        assert list(device.layers) == mine
        assert device.output == holds_output
        weights = sum(per_layer[il] for il in mine)
        if holds_output:  # output_norm and output; a tied head: token_embd copied here
            weights += output + (inputs if tied else 0)
        line = device.line("weights")
        assert line is not None and line.bytes == weights
        # cache_k_l<il>, cache_v_l<il>: n_embd_k_gqa (2 heads × 8) × cells × streams, f16
        kv = device.line("KV cache")
        assert kv is not None and kv.bytes == len(mine) * 2 * (2 * 8) * cells * batch * 2
        assert (device.line("output buffer") is not None) == holds_output
    # the input layer is on no GPU; the account is the fullest GPU's
    assert sum(d.line("weights").bytes for d in devices) == (  # type: ignore[union-attr]
        sum(per_layer.values()) + output + (inputs if tied else 0)
    )
    assert fit.account(batch, seq_len, gpus).total == max(d.total for d in devices)


def test_the_output_buffer_is_host_memory_and_not_in_the_total() -> None:
    """output_reserve allocates the logits in the output device's host buffer
    (``ggml_backend_dev_host_buffer_type(output_dev)``): "CUDA_Host output buffer"."""
    model = get("llama")(vocab=5000, hidden=32, layers=2, heads=4, intermediate=48).model()
    account = Fit(model, custom(1.0), seq_len=256, engine=LlamaCpp()).account()
    out = account.line("output buffer")
    assert out is not None and out.host and out.bytes == 5000 * 4
    assert account.total == sum(x.bytes for x in account.lines if x.label != "output buffer")


def test_sliding_layers_keep_their_window_on_their_own_gpu() -> None:
    """Gemma 3's sliding layers keep min(n_ctx_seq, pad(n_swa + n_ubatch, 256)) cells
    (src/llama-kv-cache-iswa.cpp, size_swa), each on its layer's device."""
    model = get("gemma3")(
        vocab=500,
        hidden=64,
        layers=6,
        heads=4,
        kv_heads=2,
        head_dim=16,
        intermediate=96,
        sliding_window=32,
    ).model()
    engine = LlamaCpp()
    fit = Fit(model, custom(10.0), seq_len=4000, engine=engine)
    where = source_rule(6, 2)
    full = {5}  # sliding_window_pattern 6: every sixth layer is global
    swa = -(-(32 + 512) // 256) * 256
    for device in engine.devices(fit, 1, 4000, 2):
        mine = [il for il in range(6) if where[il] == device.index]
        cells = sum(4096 if il in full else swa for il in mine)
        kv = device.line("KV cache")
        assert kv is not None and kv.bytes == cells * 2 * 2 * 16 * 2


def test_a_gguf_mix_is_placed_by_its_tensors_names() -> None:
    """A Q4_K_M file's tensors, as llama.cpp names them: ``blk.N.*`` on N's device,
    ``output*`` on the output layer's, ``token_embd`` on the CPU; bytes by gguf-py's
    GGML_QUANT_SIZES."""
    import gguf

    from shapecalc.quant import parse_weights, quantize
    from shapecalc.quant.gguf import gguf_tensors, tensor_types

    base = get("llama")(
        vocab=1024, hidden=256, layers=5, heads=4, kv_heads=2, intermediate=512
    ).model()
    model = quantize(base, parse_weights("q4_k_m"))
    engine = LlamaCpp(tensor_split=(2, 1))
    fit = Fit(model, custom(10.0), seq_len=512, engine=engine)
    made, _ = gguf_tensors(base)
    plan = tensor_types(
        [(t.name, t.ne) for t in made], "q4_k_m", arch="llama", n_layer=5, n_head=4, n_head_kv=2
    )
    where = source_rule(5, 2, (2, 1))
    expected = [0, 0]
    for t in made:
        block, size = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType[plan[t.name][1]]]
        nbytes = int(np.prod(t.ne[1:])) * t.ne[0] // block * size
        if t.name.startswith("blk."):
            expected[where[int(t.name.split(".")[1])]] += nbytes
        elif not t.name.startswith("token_embd"):
            expected[where[5]] += nbytes
    got = [d.line("weights").bytes for d in engine.devices(fit, 1, 512, 2)]  # type: ignore[union-attr]
    assert got == expected and all(got)


def test_decode_reads_the_gpus_in_turn() -> None:
    model = get("llama")(vocab=1000, hidden=64, layers=4, heads=4, intermediate=96).model()
    one = Fit(model, custom(1.0, 1000.0, 100.0), engine=LlamaCpp())
    two = Fit(model, custom(1.0, 1000.0, 100.0), engine=LlamaCpp(), gpus=2)
    assert two.speed().decode_bytes == one.speed().decode_bytes
    assert two.speed().decode_tokens_per_s == one.speed().decode_tokens_per_s
    assert "in turn" in two.speed().rule_decode


def test_bad_proportions_are_refused() -> None:
    model = get("llama")(vocab=1000, hidden=64, layers=4, heads=4, intermediate=96).model()
    with pytest.raises(ShapecalcError, match="tensor-split"):
        Fit(model, custom(1.0), engine=LlamaCpp(tensor_split=(-1.0, 1.0)), gpus=2).account()


# -- the command ----------------------------------------------------------------------------
LLAMA = [
    "llama",
    "--vocab",
    "32000",
    "--hidden",
    "512",
    "--layers",
    "8",
    "--heads",
    "8",
    "--intermediate",
    "1024",
    "--memory-gb",
    "1",
    "--engine",
    "llama.cpp",
]


def run(args: list[str], width: int = 80) -> Any:
    return CliRunner().invoke(
        cli, ["fit", *args], env={"COLUMNS": str(width)}, prog_name="shapecalc"
    )


@pytest.mark.parametrize("width", [80, 200])
def test_the_command_splits_by_layer(width: int) -> None:
    result = run([*LLAMA, "--gpus", "2", "--tensor-split", "3,1", "--flash-attn", "off"], width)
    assert result.exit_code == 0, result.output
    # -ts 3,1 over 8 layers: il / 9 < 0.75 for il <= 6; without flash attention the
    # scores of GPU 1's ubatch outweigh GPU 2's logits
    assert "GPU 1 of 2: layers 0–6 of 8" in result.output
    # with it (-fa auto, the default) the f16 mask is smaller than the logits
    flash = run([*LLAMA, "--gpus", "2", "--tensor-split", "3,1"], width)
    assert "GPU 2 of 2: layer 7 of 8, the output layer" in flash.output
    assert all(len(line) <= width for line in result.output.splitlines())
    data = json.loads(run([*LLAMA, "--gpus", "3", "--format", "json"]).output)
    import jsonschema

    jsonschema.validate(data, json.loads(SCHEMA.read_text()))
    assert any(x["host"] and not x["counted"] for x in data["account"]["lines"])


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (["--gpus", "2", "--tensor-split", "1,1,1"], "3 proportions for --gpus 2"),
        (["--gpus", "2", "--tensor-split", "x,1"], "proportions"),
        (["--gpus", "2", "--tensor-split", "0,0"], "not all 0"),
    ],
)
def test_bad_tensor_splits_are_one_line(extra: list[str], says: str) -> None:
    result = run([*LLAMA, *extra])
    assert result.exit_code == 2
    assert says in result.output and "--tensor-split" in result.output
    assert len(result.output.strip().splitlines()) == 1
    other = run([a for a in LLAMA if a not in ("--engine", "llama.cpp")] + extra)
    assert other.exit_code == 2 and "--engine llama.cpp" in other.output


def test_flash_attention_is_on_by_default_as_llama_cpp_s_auto() -> None:
    """common.h's flash_attn_type defaults to LLAMA_FLASH_ATTN_TYPE_AUTO, which
    llama-context.cpp keeps on where the device supports it (every GPU backend): the
    compute buffer's attention term is the f16 mask, n_ubatch × n_ctx × 2 bytes, not the
    fp32 scores of every head; --flash-attn off prices the scores."""
    one = [a for a in LLAMA if a != "llama.cpp"][:-1]  # without --engine llama.cpp
    base = [*one, "--engine", "llama.cpp", "--format", "json"]

    def buffer(extra: list[str]) -> int:
        data = json.loads(run([*base, *extra]).output)
        return next(x["bytes"] for x in data["account"]["lines"] if x["label"] == "compute buffer")

    ubatch, cells, heads, vocab = 512, 4096, 8, 32000
    assert buffer([]) == buffer(["--flash-attn", "auto"]) == buffer(["--flash-attn", "on"])
    assert buffer([]) == max(ubatch * cells * 2, ubatch * vocab * 4)
    assert buffer(["--flash-attn", "off"]) == max(ubatch * cells * heads * 4, ubatch * vocab * 4)
    refused = run([*one, "--flash-attn", "on"])
    assert refused.exit_code == 2 and "--flash-attn" in refused.output
    assert len(refused.output.strip().splitlines()) == 1
