"""``shapecalc fit``: every line of the account in exact bytes against the cost and the
quantization core, the largest context and the most sequences as the largest that fit
(one more does not), tensor parallelism's split, the speed bounds' arithmetic, vLLM's
arithmetic against its own code (loaded from the wheel where it is here) and against
numbers its startup log printed for a published model, the hardware table, and the CLI
(exit status, JSON schema, 80 and 200 columns)."""

from __future__ import annotations

import ast
import itertools
import json
import logging
import sys
import types
import zipfile
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from shapecalc.analysis.cost import analyze
from shapecalc.analysis.engines import LlamaCpp, Vllm
from shapecalc.analysis.fit import COMMON_FORMATS, Fit, answer
from shapecalc.analysis.hardware import ACCELERATORS, accelerator, custom
from shapecalc.architectures import get
from shapecalc.cli.app import cli
from shapecalc.core.errors import ShapecalcError

SCHEMA = Path(__file__).resolve().parent.parent / "docs" / "schema" / "fit.schema.json"
WHEEL = sorted(Path("/tmp/pkgs").glob("vllm-*.whl")) if Path("/tmp/pkgs").is_dir() else []


def llama(**sizes: Any) -> Any:
    base = dict(vocab=1000, hidden=64, layers=2, heads=4, kv_heads=2, intermediate=128)
    return get("llama")(**{**base, **sizes}).model()


@st.composite
def llamas(draw: Any) -> Any:
    heads = draw(st.sampled_from([2, 4, 8]))
    kv = draw(st.sampled_from([h for h in (1, 2, 4, 8) if heads % h == 0]))
    head_dim = draw(st.sampled_from([8, 16]))
    return llama(
        vocab=draw(st.integers(16, 2000)),
        hidden=heads * head_dim,
        layers=draw(st.integers(1, 4)),
        heads=heads,
        kv_heads=kv,
        intermediate=draw(st.integers(8, 300)),
    )


def gemma3(**sizes: Any) -> Any:
    base = dict(
        vocab=500,
        hidden=64,
        layers=6,
        heads=4,
        kv_heads=2,
        head_dim=16,
        intermediate=96,
        sliding_window=32,
    )
    return get("gemma3")(**{**base, **sizes}).model()


# -- the account, line by line ----------------------------------------------------------------
@settings(max_examples=15)
@given(llamas(), st.integers(1, 4), st.integers(1, 300), st.sampled_from(["bf16", "fp32"]))
def test_every_line_is_the_cost_s_bytes(model: Any, batch: int, seq_len: int, dtype: str) -> None:
    fit = Fit(model, custom(1.0), dtype=dtype, batch=batch, seq_len=seq_len)
    account = fit.account()
    cost = analyze(model, batch=batch, seq_len=seq_len, dtype=dtype, training="none")
    lines = {line.label: line for line in account.lines}
    assert lines["weights"].bytes == model.bytes(dtype)
    assert lines["inference state"].bytes == cost.state_at(seq_len)
    assert lines["inference state"].bytes == cost.state_bytes
    peak = cost.inference_peak()
    step = cost.decode()
    assert peak is not None and step is not None
    decoded = step.inference_peak()
    assert decoded is not None
    assert lines["activations, prefill"].bytes == peak.bytes
    assert lines["activations, decode step"].bytes == decoded.bytes
    held = model.bytes(dtype) + cost.state_bytes + max(peak.bytes, decoded.bytes)
    assert account.total == held
    assert account.fits == (held <= 10**9)


def test_sliding_layers_cap_at_their_window_and_state_space_stays_constant() -> None:
    model = gemma3()
    fit = Fit(model, custom(10.0), dtype="bf16")
    short, long = fit.state(1, 16), fit.state(1, 4000)
    cost = analyze(model, batch=1, seq_len=4000, dtype="bf16", training="none")
    assert long == cost.state_at(4000)
    groups = {g.kind: g for g in cost.state_groups()}
    assert "sliding attention" in groups and "full attention" in groups
    # past the window only the full layers grow: the difference is theirs alone
    full_per_token = analyze(model, batch=1, seq_len=1, dtype="bf16", training="none")
    full = next(g for g in full_per_token.state_groups() if g.kind == "full attention")
    assert fit.state(1, 4001) - long == full.total  # one more position: the full layers'
    assert short is not None and short < long
    mamba = get("mamba")(vocab=100, hidden=32, layers=2).model()
    m = Fit(mamba, custom(1.0), dtype="bf16")
    assert m.state(1, 10) == m.state(1, 100_000)


# -- the largest context and the most sequences ---------------------------------------------------
@settings(max_examples=10)
@given(llamas(), st.integers(1, 3), st.integers(5, 40))
def test_the_largest_context_is_the_largest_that_fits(model: Any, batch: int, mb: int) -> None:
    fit = Fit(model, custom(mb / 1000), dtype="bf16", batch=batch)
    t = fit.largest_context()
    if t is None:
        assert not fit.fits(batch, 1)
        return
    assert fit.fits(batch, t)
    assert not fit.fits(batch, t + 1)  # no model context here: memory is the limit


def test_the_largest_context_past_a_window_and_the_most_sequences() -> None:
    fit = Fit(gemma3(), custom(0.004), dtype="bf16", batch=2, seq_len=100)
    t = fit.largest_context()
    assert t is not None and t > 32  # past the window: only the full layers grow
    assert fit.fits(2, t) and not fit.fits(2, t + 1)
    b = fit.most_sequences()
    assert b is not None and fit.fits(b, 100) and not fit.fits(b + 1, 100)


def test_the_model_s_own_context_bounds_the_search() -> None:
    model = get("gpt2")(vocab=100, hidden=32, layers=1, heads=2, context=64).model()
    fit = Fit(model, custom(1.0), dtype="fp32")
    assert fit.context == 64
    assert fit.largest_context() == 64


# -- tensor parallel ----------------------------------------------------------------------------
def test_tensor_parallel_splits_matrices_and_replicates_norms_and_kv_heads() -> None:
    model = llama(kv_heads=2, heads=8, hidden=64)
    fit = Fit(model, custom(1.0), dtype="bf16", batch=1, seq_len=64)
    rows = [r for r in model.rows() if not r.tied_to]
    split = sum(r.param.nbytes(2) for r in rows if len(r.param.shape) >= 2)
    whole = sum(r.param.nbytes(2) for r in rows if len(r.param.shape) < 2)
    assert split + whole == model.bytes("bf16")
    for n in (2, 4, 8):
        weights, replicated = fit.weights(n)
        assert replicated == whole
        assert weights == -(-split // n) + whole
    total = fit.state(1, 64, 1)
    assert total is not None
    assert fit.state(1, 64, 2) == total // 2  # one KV head each
    assert fit.state(1, 64, 4) == total // 2  # 2 KV heads over 4 GPUs: each keeps one
    assert fit.split_refused(3)  # 8 heads do not split in 3
    assert "attention heads" in fit.split_refused(16)


def test_the_fewest_gpus_is_the_first_that_fits() -> None:
    model = llama(layers=4, hidden=128, heads=8, kv_heads=8, vocab=4000, intermediate=512)
    one = Fit(model, custom(1.0), dtype="fp32").account(1, 64, 1).total
    fit = Fit(model, custom(one * 0.4 / 10**9), dtype="fp32", seq_len=64)
    n, skipped = fit.fewest_gpus()
    assert n is not None and n > 1
    assert fit.fits(1, 64, n)
    assert all(not fit.fits(1, 64, k) for k in range(1, n) if not fit.split_refused(k))
    assert all(why for _, why in skipped)


# -- quantizations ------------------------------------------------------------------------------
def test_every_format_known_at_run_time_with_its_exact_bytes() -> None:
    # imported here: at collection the quantized layer would join the layer registry
    from shapecalc.quant import METHODS, method_class, parse_weights, quantize

    model = llama(hidden=256, heads=4, kv_heads=4, intermediate=512)
    fit = Fit(model, custom(0.004), dtype="bf16", seq_len=16)
    choices = fit.quantizations()
    names = [a for m in METHODS for a in (method_class(m).aliases or {m: {}})]
    assert sorted(c.name for c in choices) == sorted(names)
    sized = [c for c in choices if c.bytes is not None]
    assert [c.bytes for c in sized] == sorted(c.bytes for c in sized)
    for c in sized:
        assert c.bytes == quantize(model, parse_weights(c.name)).bytes("bf16")


def _moe() -> Any:
    return get("qwen-moe")(
        vocab=300,
        hidden=64,
        layers=3,
        heads=4,
        kv_heads=2,
        intermediate=96,
        experts=8,
        experts_per_token=2,
        moe_intermediate=32,
        shared_intermediate=48,
    ).model()


@settings(max_examples=8, deadline=None)
@given(
    model=st.one_of(llamas(), st.just(None)),
    gpus=st.sampled_from([1, 2]),
    engine=st.sampled_from([None, "llama.cpp"]),
    share=st.floats(0.05, 0.9),
)
def test_a_format_priced_without_building_it_is_the_built_format(
    model: Any, gpus: int, engine: str | None, share: float
) -> None:
    """The formats are priced without building the quantized model where the method can
    (a GGUF mix's tensors from its type plan) and with the model's costs shared: each
    format's bytes and verdict equal those of a Fit of the quantized model built whole,
    with costs of its own."""
    from dataclasses import replace

    from shapecalc.quant import parse_weights, quantize

    model = _moe() if model is None else model
    if model.arguments.get("heads", 1) % gpus or model.arguments.get("kv_heads", 1) % gpus:
        gpus = 1
    dtype_bytes = 2
    memory = max(1, round(model.total * dtype_bytes * share))
    fit = Fit(
        model,
        custom(memory / 1e9),
        dtype="bf16",
        seq_len=16,
        gpus=gpus,
        engine=None if engine is None else LlamaCpp(),
    )
    verdicts = set()
    for choice in fit.quantizations():
        if choice.bytes is None:
            continue
        built = quantize(model, parse_weights(choice.name))
        whole = replace(fit, model=built, _costs={}, _accounts={})
        assert choice.bytes == built.bytes("bf16"), choice.name
        assert choice.fits == whole.fits(), choice.name
        verdicts.add(choice.fits)
    assert verdicts  # some format priced


def test_the_common_formats_are_formats() -> None:
    from shapecalc.analysis.fit import COMMON_FORMATS
    from shapecalc.quant import METHODS, method_class

    names = {a for m in METHODS for a in (method_class(m).aliases or {m: {}})}
    assert set(COMMON_FORMATS) <= names
    fit = Fit(llama(hidden=256, heads=4, kv_heads=4, intermediate=512), custom(0.001))
    assert sorted(c.name for c in fit.quantizations(COMMON_FORMATS)) == sorted(COMMON_FORMATS)


# -- speed --------------------------------------------------------------------------------------
def test_decode_bound_reads_the_weights_and_the_state() -> None:
    model = llama()
    hw = custom(1.0, bandwidth_gbs=100, tflops=10)
    fit = Fit(model, hw, dtype="bf16", batch=2, seq_len=50, efficiency=(0.5, 0.25))
    speed = fit.speed()
    embedding = next(r for r in model.rows() if r.name == "model.embed_tokens.weight")
    assert speed.weights_read == model.bytes("bf16") - embedding.param.nbytes(2)
    assert speed.state_read == fit.state(2, 50)
    assert speed.decode_tokens_per_s == pytest.approx(
        2 * 100e9 * 0.5 / (speed.weights_read + speed.state_read)
    )
    # written out: llama() is V=1000, H=64, L=2, 4 heads of 16, 2 KV heads, I=128; at
    # B=2, T=50: the projections per position q 64·64, k and v 64·32 each, o 64·64, the
    # MLP 3·64·128; the head 64·1000 on the last position of each sequence; attention's
    # scores and values 2 × 4 heads × 16 per causal pair, 50·51/2 pairs
    b, t, layers = 2, 50, 2
    projections = 64 * 64 + 2 * 64 * 32 + 64 * 64 + 3 * 64 * 128
    attention = b * 4 * 2 * 16 * (t * (t + 1) // 2)
    macs = layers * (b * t * projections + attention) + b * 64 * 1000
    assert speed.prefill_flops == 2 * macs
    assert speed.prefill_tokens_per_s == pytest.approx(b * t * 10e12 * 0.25 / (2 * macs))
    # the report's FLOPs (FlopCounterMode's count) keep all T × T pairs
    cost = analyze(model, batch=2, seq_len=50, dtype="bf16", training="none")
    head = next(c for c in cost.layers if c.name == "lm_head")
    full = layers * b * 4 * 2 * 16 * t * t
    assert cost.macs - head.macs + head.macs // t == macs - layers * attention + full


def test_the_prefill_bound_counts_a_sliding_window_s_pairs() -> None:
    """A sliding layer's scores and values over its window: query i with the last
    min(i, W) positions; written out for Gemma 3's pattern (five sliding, one global)."""
    model = get("gemma3")(
        vocab=500,
        hidden=32,
        layers=6,
        heads=2,
        kv_heads=1,
        head_dim=8,
        intermediate=64,
        sliding_window=7,
    ).model()
    t = 20
    fit = Fit(model, custom(1.0, tflops=1), dtype="fp32", seq_len=t)
    cost = analyze(model, batch=1, seq_len=t, dtype="fp32", training="none")
    window_pairs = sum(min(i, 7) for i in range(1, t + 1))  # 7·8/2 + 13·7 = 119
    assert window_pairs == 119
    per_pair = 2 * 2 * 8  # scores and values, 2 heads of 8
    full = 6 * per_pair * t * t
    causal = 5 * per_pair * window_pairs + 1 * per_pair * (t * (t + 1) // 2)
    head = next(c for c in cost.layers if c.name == "lm_head")
    assert fit.speed().prefill_flops == 2 * (cost.macs - head.macs + head.macs // t - full + causal)


def test_a_mixture_reads_its_top_k_experts() -> None:
    model = get("qwen-moe")(
        vocab=100,
        hidden=32,
        layers=2,
        heads=4,
        kv_heads=2,
        head_dim=8,
        moe_intermediate=16,
        experts=8,
        experts_per_token=2,
    ).model()
    fit = Fit(model, custom(1.0, 100), dtype="bf16", seq_len=4)
    speed = fit.speed()
    routed = Fraction(0)
    for layer in model.layers:
        if layer.spec.routed:
            n = sum(p.nbytes(2) for p in layer.spec.params()) * layer.copies
            routed += n - n * Fraction(2, 8)
    assert routed > 0
    embedding = sum(
        r.param.nbytes(2) for r in model.rows() if r.name.endswith("embed_tokens.weight")
    )
    assert speed.weights_read == model.bytes("bf16") - embedding - routed


# -- vLLM -------------------------------------------------------------------------------------
def test_vllm_on_qwen3_14b_as_its_startup_log_printed() -> None:
    """LMCache issue #1739 (github.com/LMCache/LMCache/issues/1739), vLLM on one GPU
    serving Qwen3-14B (40 layers, 8 KV heads of 128, bf16): "Available KV cache memory:
    6.51 GiB", "GPU KV cache size: 42,656 tokens", "Maximum concurrency for 32,768 tokens
    per request: 1.30x". Our page (from the model's own state per position) and blocks:
    the log's tokens are the blocks of an available memory that rounds to 6.51 GiB, and
    its concurrency follows."""
    model = get("llama")(
        vocab=151936,
        hidden=5120,
        layers=40,
        heads=40,
        kv_heads=8,
        head_dim=128,
        intermediate=17408,
    ).model()
    fit = Fit(model, custom(80.0), dtype="bf16")
    pages = Vllm().pages(fit, 1)
    assert pages.page == 2 * 16 * 8 * 128 * 2  # kv_cache_interface.py:63
    blocks = 42_656 // 16
    low, high = int(6.505 * 2**30), int(6.515 * 2**30)
    assert pages.num_blocks(low) <= blocks <= pages.num_blocks(high)
    assert pages.tokens(blocks) == 42_656
    assert f"{pages.concurrency(blocks, 32_768, 8192):.2f}" == "1.30"


def test_vllm_account_gives_the_rest_to_the_cache() -> None:
    model = llama(layers=4, hidden=128, heads=8, kv_heads=4)
    fit = Fit(model, accelerator("l4"), dtype="bf16", seq_len=2048, engine=Vllm())
    account = fit.account()
    lines = {line.label: line.bytes for line in account.lines}
    requested = int(accelerator("l4").memory * 0.9)
    available = requested - (
        lines["weights"] + lines["activations, profiling forward"] + lines["sampler logits"]
    )
    page = 2 * 16 * 4 * 16 * 2
    blocks = available // page // 4
    assert lines["KV cache"] == blocks * page * 4
    assert (
        lines["activations, profiling forward"] == fit.activations(1, 2048)[0][0]
    )  # 2048: < 70 GiB
    log = Vllm().summary(fit, 2048, 1)
    assert log["num_blocks"] == blocks
    assert log["max_concurrency"] == blocks / (2048 // 16)
    assert fit.most_sequences() == int(blocks / 128)


def _load_vllm() -> Any:
    """vLLM's kv_cache_interface.py and kv_cache_utils.py from the wheel, unchanged, with
    the few vllm modules they import at the top stood in for (config and logger as plain
    objects; cdiv, get_dtype_size and GiB_bytes taken from the wheel's own utils source)."""
    wheel = zipfile.ZipFile(WHEEL[-1])
    source = {
        n: wheel.read(n).decode()
        for n in (
            "vllm/utils/__init__.py",
            "vllm/v1/kv_cache_interface.py",
            "vllm/v1/core/kv_cache_utils.py",
        )
    }
    utils_tree = ast.parse(source["vllm/utils/__init__.py"])
    wanted = [
        node
        for node in utils_tree.body
        if (isinstance(node, ast.FunctionDef) and node.name in ("cdiv", "get_dtype_size"))
        or (
            isinstance(node, ast.Assign)
            and any(getattr(t, "id", "") == "GiB_bytes" for t in node.targets)
        )
    ]
    import torch

    saved = {k: v for k, v in sys.modules.items() if k == "vllm" or k.startswith("vllm.")}
    modules: dict[str, types.ModuleType] = {}

    def module(name: str) -> types.ModuleType:
        m = types.ModuleType(name)
        m.__path__ = []  # type: ignore[attr-defined]
        modules[name] = m
        sys.modules[name] = m
        return m

    try:
        for name in ("vllm", "vllm.v1", "vllm.v1.core", "vllm.v1.metrics"):
            module(name)
        module("vllm.envs")
        module("vllm.config").VllmConfig = object  # type: ignore[attr-defined]
        module("vllm.logger").init_logger = logging.getLogger  # type: ignore[attr-defined]
        utils = module("vllm.utils")
        utils.torch = torch  # type: ignore[attr-defined]
        exec(
            compile(ast.Module(body=wanted, type_ignores=[]), "vllm/utils/__init__.py", "exec"),
            utils.__dict__,
        )
        utils.sha256_cbor = lambda x: b""  # type: ignore[attr-defined]
        module("vllm.v1.metrics.stats").PrefixCacheStats = object  # type: ignore[attr-defined]
        module("vllm.v1.request").Request = object  # type: ignore[attr-defined]
        for name in ("vllm/v1/kv_cache_interface.py", "vllm/v1/core/kv_cache_utils.py"):
            m = module(name[:-3].replace("/", "."))
            exec(compile(source[name], name, "exec"), m.__dict__)
        return modules["vllm.v1.kv_cache_interface"], modules["vllm.v1.core.kv_cache_utils"]
    finally:
        for k in [k for k in sys.modules if k == "vllm" or k.startswith("vllm.")]:
            del sys.modules[k]
        sys.modules.update(saved)


@pytest.mark.skipif(
    not WHEEL, reason="vLLM's wheel is not in /tmp/pkgs (it does not install CPU-only)"
)
@pytest.mark.parametrize("sliding", [False, True])
def test_vllm_s_own_code_agrees(sliding: bool) -> None:
    import torch

    interface, utils = _load_vllm()
    model = (
        gemma3(sliding_window=40) if sliding else llama(layers=6, hidden=128, heads=8, kv_heads=4)
    )
    fit = Fit(model, accelerator("l4"), dtype="bf16", seq_len=1000, engine=Vllm())
    pages = Vllm().pages(fit, 1)
    specs: dict[str, Any] = {}
    for g in fit.cost(1, 1).state_groups():
        shape = g.tensors[0][1]
        kv, head = shape[1], shape[3]
        for i in range(int(g.layers)):
            name = f"{g.kind}.{i}"
            if g.kind == "sliding attention":
                specs[name] = interface.SlidingWindowSpec(
                    block_size=16,
                    num_kv_heads=kv,
                    head_size=head,
                    dtype=torch.bfloat16,
                    sliding_window=g.sliding_window,
                )
            else:
                specs[name] = interface.FullAttentionSpec(
                    block_size=16, num_kv_heads=kv, head_size=head, dtype=torch.bfloat16
                )
    assert {s.page_size_bytes for s in specs.values()} == {pages.page}
    config = types.SimpleNamespace(
        model_config=types.SimpleNamespace(max_model_len=1000),
        parallel_config=types.SimpleNamespace(decode_context_parallel_size=1),
        cache_config=types.SimpleNamespace(num_gpu_blocks_override=None),
        scheduler_config=types.SimpleNamespace(max_num_batched_tokens=2048),
    )
    if sliding:
        groups = utils._get_kv_cache_groups_uniform_page_size(specs)
    else:
        groups = utils._get_kv_cache_groups_uniform_spec(specs)
    for available in (10**6, 3 * 10**7 + 12345, 987_654_321):
        kv_config = utils.get_kv_cache_config_from_groups(config, groups, specs, available)
        assert pages.num_blocks(available) == kv_config.num_blocks
        assert pages.tokens(kv_config.num_blocks) == kv_config.num_blocks // len(groups) * 16
        assert pages.concurrency(kv_config.num_blocks, 1000, 2048) == pytest.approx(
            utils.get_max_concurrency_for_kv_cache_config(config, kv_config)
        )
    assert pages.needed(1000, 2048) == utils.max_memory_usage_bytes(config, specs.values())


# -- llama.cpp ----------------------------------------------------------------------------------
def test_llama_cpp_pads_the_context_and_keeps_f16() -> None:
    model = llama(layers=3, heads=4, kv_heads=2, hidden=64)
    fit = Fit(model, custom(1.0), dtype="fp32", batch=2, seq_len=300, engine=LlamaCpp())
    kv = fit.account().line("KV cache")
    assert kv is not None
    # src/llama-context.cpp: n_ctx = GGML_PAD(2 × 300, 256) = 768; two streams (not
    # unified) of n_ctx_seq = GGML_PAD(768 / 2, 256) = 512 cells
    cells = 2 * 512
    assert kv.bytes == 3 * cells * 2 * 2 * 16 * 2  # layers × cells × (k, v) × kv heads × dim × f16
    one = Fit(model, custom(1.0), dtype="fp32", seq_len=1000, engine=LlamaCpp()).account()
    line = one.line("KV cache")
    assert line is not None and line.bytes == 3 * 1024 * 2 * 2 * 16 * 2  # 1000 -> 1024 cells


def test_llama_cpp_s_output_buffer_is_one_row_of_logits_per_sequence() -> None:
    """src/llama-context.cpp (ggml-org/llama.cpp 4c7103b9): ``output_reserve(n_seq_max)``,
    ``logits_size = n_vocab*n_outputs_max`` floats, the embeddings only when asked: for
    Llama-3-8B at n_ctx 4096 it logs "CPU output buffer size = 0.49 MiB"."""
    model = llama(vocab=128256, hidden=64, layers=2, heads=4, kv_heads=2)
    for batch in (1, 3):
        fit = Fit(model, custom(100.0), seq_len=4096 // batch, batch=batch, engine=LlamaCpp())
        out = fit.account().line("output buffer")
        assert out is not None and out.bytes == 128256 * batch * 4
    one = Fit(model, custom(100.0), seq_len=4096, engine=LlamaCpp()).account()
    line = one.line("output buffer")
    assert line is not None and f"{line.bytes / 2**20:.2f} MiB" == "0.49 MiB"


# -- hardware -----------------------------------------------------------------------------------
def test_the_table_cites_every_entry_and_refuses_unknown_names() -> None:
    for a in ACCELERATORS.values():
        assert a.source.startswith("https://") and a.memory > 0 and a.bandwidth > 0
        assert all(d in ("fp32", "tf32", "bf16", "fp16", "fp8", "int8", "fp4") for d in a.peak)
    assert accelerator("H100").name == "h100-sxm"
    with pytest.raises(ShapecalcError, match="did you mean"):
        accelerator("h10")


def test_names_match_ignoring_case_spaces_hyphens_and_underscores() -> None:
    for spelled in ("rtx4090", "RTX 4090", "rtx_4090", "Rtx-4090"):
        assert accelerator(spelled).name == "rtx-4090"
    assert accelerator("mi300").name == "mi300x"  # only the X is listed
    with pytest.raises(ShapecalcError, match=r"did you mean mi300x\?"):
        accelerator("mi3000")
    with pytest.raises(ShapecalcError, match=r"did you mean h100-sxm, h100-pcie, h100-nvl\?"):
        accelerator("h1000")


#: each accelerator's memory as its source gives it: nvidia-smi's total in MiB (the
#: printout cited in the table), else the datasheet's capacity in GiB
REPORTED_MIB = {
    "h100-sxm": 81559,  # NVIDIA/nccl#1264: "0MiB /  81559MiB", NVIDIA H100 80GB HBM3
    "a100-80gb": 81920,  # modal-labs/modal-client#2797: "A100 80GB: 81920MiB"
    "l40s": 46068,  # ibid.
    "l4": 23034,  # ibid.
    "a10": 23028,  # ibid.
    "rtx-4090": 24564,  # RLinf/RLinf#255: "507MiB /  24564MiB"
    "rtx-3090": 24576,  # noonghunna/club-3090#1128: "22598MiB /  24576MiB"
    "rtx-5090": 32607,  # noonghunna/club-3090#1261: "29024MiB /  32607MiB"
}
DATASHEET_GIB = {
    "h100-pcie": 80,
    "h200": 141,
    "b200": 180,
    "mi300x": 192,
    "mi325x": 256,
    "tpu-v5e": 16,
    "tpu-v5p": 95,
    "tpu-v6e": 32,
    "m2-ultra-192gb": 192,
    "m3-max-128gb": 128,
    "m4-max-128gb": 128,
    "m3-ultra-512gb": 512,
}


def test_memory_is_the_driver_s_total_or_binary_gigabytes() -> None:
    assert set(REPORTED_MIB) | set(DATASHEET_GIB) | {"h100-nvl", "a100-40gb"} == set(ACCELERATORS)
    for name, mib in REPORTED_MIB.items():
        a = ACCELERATORS[name]
        assert (a.memory, a.memory_rule) == (mib * 1024 * 1024, "reported"), name
        assert a.memory_source.startswith("https://github.com/"), name
    for name, gib in DATASHEET_GIB.items():
        a = ACCELERATORS[name]
        assert (a.memory, a.memory_rule) == (gib * 1024**3, "GiB"), name
    # fastfetch-cli/fastfetch#1658: an H100 NVL's "total": 99961274368
    assert ACCELERATORS["h100-nvl"].memory == 99961274368
    # bottlerocket-os/bottlerocket#3873, CUDA's deviceQuery on an A100-SXM4-40GB: "40339
    # MBytes (42298834944 bytes)" (torch's total; nvidia-smi shows 40,960 MiB)
    assert ACCELERATORS["a100-40gb"].memory == 42298834944
    # vLLM's startup logs on an H100 80GB print total_gpu_memory 79.1-79.6 GiB
    assert 79.1 <= ACCELERATORS["h100-sxm"].memory / 2**30 <= 79.7
    # --memory-gb stays decimal, as given
    assert custom(80).memory == 80 * 10**9


# -- the command line ---------------------------------------------------------------------------
LLAMA = [
    "llama",
    "--vocab",
    "1000",
    "--hidden",
    "64",
    "--layers",
    "2",
    "--heads",
    "4",
    "--kv-heads",
    "2",
    "--intermediate",
    "128",
]


def run(args: list[str], width: int = 80) -> Any:
    return CliRunner().invoke(
        cli, ["fit", *args], env={"COLUMNS": str(width)}, prog_name="shapecalc"
    )


def test_exit_status_fits_does_not_fit_and_bad_input() -> None:
    assert run([*LLAMA, "--gpu", "l4"]).exit_code == 0
    assert run([*LLAMA, "--memory-gb", "0.0001"]).exit_code == 1
    bad = run([*LLAMA, "--gpu", "h1000"])
    assert bad.exit_code == 2 and "did you mean" in bad.output and "Does it fit" in bad.output
    assert len(bad.output.strip().splitlines()) == 1 and len(bad.output.strip()) <= 200
    for args in (
        ["--gpu", "l4", "--memory-gb", "3"],
        ["--memory-gb", "-1"],
        ["--gpu", "l4", "--gpus", "3"],
        ["--gpu", "l4", "--efficiency", "2"],
        ["--gpu", "l4", "--batch", "0"],
        [],
    ):
        result = run([*LLAMA, *args])
        assert result.exit_code == 2, (args, result.output)
        assert "Traceback" not in result.output
        assert len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize("width", [80, 200])
def test_the_table_fits_the_terminal(width: int) -> None:
    for extra in ([], ["--engine", "vllm"], ["--engine", "llama.cpp"], ["--frontier", "--plot"]):
        result = run([*LLAMA, "--gpu", "l4", "--seq-len", "512", *extra], width)
        assert result.exit_code == 0, result.output
        # at most 100 columns however wide the terminal: the bytes beside their labels
        assert max(len(line) for line in result.output.splitlines()) <= min(width, 100)
        total = next(line for line in result.output.splitlines() if "│ total" in line)
        assert len(total) <= min(width, 100)


def test_the_frontier_plot_draws_the_context_on_a_log_scale() -> None:
    """Every batch its own bar length: contexts halving with each doubled batch make bars
    shrinking by equal steps on a log scale (on a linear one, batches from 64 up are all
    one block)."""
    result = run([*LLAMA, "--gpu", "l4", "--frontier", "--plot"], 80)
    assert result.exit_code == 0, result.output
    assert "log scale" in result.output
    bars = [line for line in result.output.splitlines() if line.lstrip().startswith("B=")]
    lengths = [line.count("█") for line in bars]
    assert len(lengths) == 11 and lengths == sorted(lengths, reverse=True)
    assert len(set(lengths)) == 11  # each batch distinct
    steps = [a - b for a, b in itertools.pairwise(lengths)]
    assert max(steps) - min(steps) <= 1  # equal steps: log scale


def test_json_validates_against_its_schema() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    for extra in ([], ["--engine", "vllm", "--frontier"], ["--memory-gb", "0.0001"]):
        result = run(
            [*LLAMA, "--gpu", "l4", *extra, "--format", "json"]
            if "--memory-gb" not in extra
            else [*LLAMA, *extra, "--format", "json"]
        )
        data = json.loads(result.output)
        jsonschema.validate(data, schema)
        assert result.exit_code == (0 if data["fits"] else 1)


def test_answer_agrees_with_its_parts() -> None:
    fit = Fit(llama(), accelerator("l4"), dtype="bf16", seq_len=512)
    a = answer(fit)
    assert a.largest_context == fit.largest_context()
    assert a.most_sequences == fit.most_sequences()
    assert a.fits


def test_vllm_pages_a_latent_cache_as_its_mla_spec() -> None:
    """vllm/v1/kv_cache_interface.py:152: an MLA page is block_size × 1 × head_size ×
    dtype bytes, head_size = kv_lora_rank + qk_rope_head_dim; replicated on every GPU."""
    model = get("deepseek")(
        vocab=100,
        hidden=64,
        layers=2,
        heads=4,
        intermediate=96,
        kv_lora_rank=32,
        rope_dim=8,
        nope_dim=16,
        value_dim=16,
        moe_intermediate=16,
        experts=4,
        experts_per_token=2,
        dense_layers=1,
    ).model()
    fit = Fit(model, custom(1.0), dtype="bf16", seq_len=64)
    assert Vllm().pages(fit, 1).page == 16 * 1 * (32 + 8) * 2
    assert Vllm().pages(fit, 2).page == 16 * 1 * (32 + 8) * 2


def test_vllm_refuses_a_mamba_state_it_cannot_split_in_one_line() -> None:
    """Mamba layers are modelled (tests/test_engines_vllm_hybrid.py); vLLM's
    mamba2_state_shape divides the Mamba-2 heads by the tensor-parallel size
    (vllm/distributed/utils.py divide asserts it)."""
    flags = ["--vocab", "100", "--hidden", "48", "--layers", "2", "--heads", "4"]
    flags += ["--intermediate", "64", "--mamba-heads", "3", "--gpu", "l4", "--engine", "vllm"]
    result = run(["falcon-h1", *flags, "--gpus", "2"])
    assert result.exit_code == 2 and "Mamba-2 heads (3)" in result.output
    assert len(result.output.strip().splitlines()) == 1
    fine = run(["falcon-h1", *flags])
    assert fine.exit_code == 0 and "GPU KV cache size" in fine.output


@pytest.mark.parametrize("command", ["gemma3", "mamba", "qwen-moe", "deepseek", "gpt-oss"])
def test_families_fit_80_columns(command: str) -> None:
    example = get(command).example.split()
    result = run([command, *example, "--gpu", "h100"], 80)
    assert result.exit_code in (0, 1), result.output
    assert max(len(line) for line in result.output.splitlines()) <= 80


def test_fit_hf_takes_the_config_s_dtype_and_context(tmp_path: Path) -> None:
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": 1000,
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "intermediate_size": 128,
        "max_position_embeddings": 2048,
        "torch_dtype": "float32",
        "tie_word_embeddings": False,
    }
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    data = json.loads(run(["hf", str(path), "--gpu", "l4", "--format", "json"]).output)
    assert data["setting"]["dtype"] == "fp32"
    assert data["largest_context"] == 2048  # the whole context fits on 24 GB
    weights = data["account"]["lines"][0]
    assert weights["label"] == "weights" and weights["bytes"] == 4 * data["model"]["parameters"]
    assert (
        json.loads(
            run(["hf", str(path), "--gpu", "l4", "--dtype", "bf16", "--format", "json"]).output
        )["setting"]["dtype"]
        == "bf16"
    )


def test_vllm_on_llama_3_1_8b_as_its_startup_log_printed() -> None:
    """vllm-project/vllm issue #10517 (github.com/vllm-project/vllm/issues/10517), vLLM
    (V0) serving meta-llama/Llama-3.1-8B-Instruct on an RTX 3090: "kv_cache_size=3.81GiB",
    "# GPU blocks: 1952", "Maximum concurrency for 20000 tokens per request: 1.56x". A block
    of all 32 layers (V0's cache_block_size) is 32 of our pages; 1952 of them is 3.8125
    GiB, which the log rounds to 3.81."""
    model = get("llama")(
        vocab=128256, hidden=4096, layers=32, heads=32, kv_heads=8, intermediate=14336
    ).model()
    pages = Vllm().pages(Fit(model, custom(24.0), dtype="bf16"), 1)
    assert pages.page * 32 == 2 * 1024 * 1024
    low, high = int(3.805 * 2**30), int(3.815 * 2**30)
    assert pages.num_blocks(low) <= 1952 <= pages.num_blocks(high)
    assert f"{pages.concurrency(1952, 20_000, 2048):.2f}" == "1.56"


def test_formats_are_priced_when_asked_or_when_the_model_does_not_fit() -> None:
    """The weights formats (every GGUF mix, bitsandbytes, GPTQ...) cost most of an answer:
    priced with --formats, or when the model does not fit as it is."""
    fits = json.loads(run([*LLAMA, "--gpu", "l4", "--format", "json"]).output)
    assert fits["fits"] and not fits["quantizations"]
    asked = json.loads(run([*LLAMA, "--gpu", "l4", "--formats", "--format", "json"]).output)
    assert asked["fits"] and asked["quantizations"]
    assert asked["all_formats"]
    tight = json.loads(run([*LLAMA, "--memory-gb", "0.0005", "--format", "json"]).output)
    assert not tight["fits"] and not tight["all_formats"]
    assert sorted(q["name"] for q in tight["quantizations"]) == sorted(COMMON_FORMATS)
    every = json.loads(
        run([*LLAMA, "--memory-gb", "0.0005", "--formats", "--format", "json"]).output
    )
    assert len(every["quantizations"]) > len(tight["quantizations"])
    text = run([*LLAMA, "--memory-gb", "0.0005"]).output
    assert "--formats prices every one" in " ".join(text.split())
    assert "--formats prices" not in " ".join(
        run([*LLAMA, "--memory-gb", "0.0005", "--formats"]).output.split()
    )


# -- what a newcomer tripped over --------------------------------------------------------------
def _config(tmp_path: Path, **extra: Any) -> Path:
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": 1024,
        "hidden_size": 256,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "intermediate_size": 512,
        "max_position_embeddings": 2048,
        "torch_dtype": "float16",
        "tie_word_embeddings": False,
        **extra,
    }
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


def test_fit_hf_prices_the_config_s_quantization_as_hf_does(tmp_path: Path) -> None:
    from shapecalc.adapters.hf_config import hf_model
    from shapecalc.quant import from_config, quantize

    awq = {"quant_method": "awq", "bits": 4, "group_size": 128, "version": "gemm"}
    path = _config(tmp_path, quantization_config=awq)
    data = json.loads(run(["hf", str(path), "--gpu", "l4", "--format", "json"]).output)
    weights = data["account"]["lines"][0]
    found = hf_model(str(path))
    quantized = quantize(found.model(), from_config(awq))
    assert weights["bytes"] == quantized.bytes("fp16")
    assert "AWQ" in weights["rule"]
    hf = json.loads(
        CliRunner().invoke(cli, ["hf", str(path), "--memory", "--format", "json"]).output
    )
    assert hf["quantization"]["method"] == "awq"
    for plain in (["--weights", "none"], ["--allow-field", "quantization_config"]):
        unquantized = json.loads(
            run(["hf", str(path), "--gpu", "l4", "--format", "json", *plain]).output
        )
        assert unquantized["account"]["lines"][0]["bytes"] == 2 * found.model().total


def test_a_context_past_the_model_s_is_refused_and_never_fits(tmp_path: Path) -> None:
    path = _config(tmp_path)
    past = run(["hf", str(path), "--gpu", "l4", "--seq-len", "2049"])
    assert past.exit_code == 2
    assert len(past.stderr.splitlines()) == 1
    assert "--seq-len 2,049 is past the model's context, 2,048" in past.stderr
    # the default context is the model's own when shorter than 4,096
    data = json.loads(run(["hf", str(path), "--gpu", "l4", "--format", "json"]).output)
    assert data["setting"]["seq_len"] == 2048
    fit = Fit(llama(), custom(80), max_context=2048)
    assert fit.fits(1, 2048) and not fit.fits(1, 2049)
    assert fit.most_sequences(2049) is None and fit.fewest_gpus(1, 2049)[0] is None
    assert fit.largest_context() == 2048


def test_tensors_stored_in_a_dtype_of_their_own_do_not_train() -> None:
    from shapecalc.quant import parse_weights, quantize

    model = llama(hidden=256, heads=4, kv_heads=4, intermediate=512)
    for weights in ("nf4", "int8", "gptq", "awq", "fp8", "q8_0"):
        quantized = quantize(model, parse_weights(weights))
        frozen = [r for r in quantized.rows() if r.param.dtype and r.param.trainable]
        assert not frozen, (weights, frozen[:1])
        if weights == "q8_0":  # GGUF stores every tensor: nothing trains, no backward
            assert quantized.trainable == 0
            with pytest.raises(ShapecalcError, match=r"nothing in .* is trainable"):
                analyze(quantized, batch=1, seq_len=8, dtype="bf16", training="adam")
            continue
        cost = analyze(quantized, batch=1, seq_len=8, dtype="bf16", training="adam")
        gradients = next(m for m in cost.memory if m.label == "gradients")
        assert gradients.bytes == 2 * quantized.trainable
        assert quantized.trainable < model.trainable


def test_weights_none_and_formats_when_the_model_fits() -> None:
    plain = json.loads(run([*LLAMA, "--gpu", "l4", "--format", "json"]).output)
    none = json.loads(run([*LLAMA, "--gpu", "l4", "--weights", "none", "--format", "json"]).output)
    assert none["account"] == plain["account"]
    text = " ".join(run([*LLAMA, "--gpu", "l4", "--formats"]).output.split())
    assert "the model fits as it is (bf16), unquantized" in text
    assert "the least quantized that fits" not in text
    dtype = run([*LLAMA, "--gpu", "l4", "--weights", "bf16"])
    assert dtype.exit_code == 2 and "give --dtype bf16" in dtype.stderr


def test_an_engine_names_how_quantized_weights_are_stored() -> None:
    from shapecalc.quant import parse_weights, quantize

    model = llama(hidden=256, heads=4, kv_heads=4, intermediate=512)
    for engine in (LlamaCpp(), Vllm()):
        plain = Fit(model, custom(80), engine=engine).account().line("weights")
        assert plain is not None and plain.rule.startswith("as stored at bf16")
        gguf = Fit(quantize(model, parse_weights("q4_k_m")), custom(80), engine=engine)
        line = gguf.account().line("weights")
        assert line is not None and line.rule.startswith("as stored: GGUF Q4_K_M")
        assert "other tensors" not in line.rule  # every tensor of a GGUF mix has its type
        nf4 = Fit(quantize(model, parse_weights("nf4")), custom(80), engine=engine)
        line = nf4.account().line("weights")
        assert line is not None and "bitsandbytes 4-bit" in line.rule
        assert "the other tensors at bf16" in line.rule


@settings(max_examples=10, deadline=None)
@given(model=llamas(), batch=st.integers(1, 4), seq_len=st.integers(2, 64))
def test_tensor_parallel_activations_split_all_but_the_hidden_size(
    model: Any, batch: int, seq_len: int
) -> None:
    """On n GPUs a live tensor of the hidden size is whole on each; any other (heads,
    the MLP's intermediate, logits) is split, rounded up."""
    from shapecalc.core.dims import product

    hidden = model.arguments["hidden"]
    fit = Fit(model, custom(80), seq_len=seq_len, batch=batch)
    cost = fit.cost(batch, seq_len)
    for n in (2, 4):

        def share(shape: Any, n: int = n) -> Any:
            count = product(shape)
            return count if shape[-1] == hidden else -(-count // n)

        expected = cost.inference_peak(share)
        assert expected is not None
        assert fit.peak(batch, seq_len, n) == expected.bytes
        assert fit.peak(batch, seq_len, n) <= fit.peak(batch, seq_len)
    wide = llama(hidden=64, intermediate=4096, heads=4, kv_heads=4)
    many = Fit(wide, custom(80), seq_len=64)
    assert many.peak(1, 64, 4) < many.peak(1, 64)
    line = many.account(1, 64, 4).line("activations, prefill")
    assert line is not None and "over 4 GPUs: the hidden-size tensors whole on each" in line.rule
