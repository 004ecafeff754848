"""Serving engines' own memory accounting, for :class:`~shapecalc.analysis.fit.Fit`.

**vLLM** (read from vLLM 0.11.0's source; file and line cited at each rule):

- ``vllm/v1/worker/gpu_worker.py:183``: requested = total memory ×
  ``gpu_memory_utilization`` (0.9 by default, ``vllm/config/cache.py:43``).
- ``gpu_worker.py:279`` with ``vllm/utils/__init__.py:2859``: the KV cache gets
  requested − (weights + the peak of a profiling forward + non-torch memory). The profiling
  forward runs ``max_num_batched_tokens`` tokens (``vllm/v1/worker/gpu_model_runner.py:
  3392``) and the sampler on ``max_num_seqs`` rows of logits (``_dummy_sampler_run``).
  What is *estimated* here: that peak, as our prefill activations of one sequence of
  ``max_num_batched_tokens`` positions plus ``max_num_seqs`` × V fp32 logits; the
  non-torch memory (NCCL, cuBLAS workspaces) is not known before a run: give it with
  ``reserve``. CUDA graphs are captured after the cache is allocated
  (``gpu_worker.py:344``), out of the 1 − utilization left: not subtracted.
- ``max_num_batched_tokens`` and ``max_num_seqs``: ``vllm serve``'s defaults,
  ``vllm/engine/arg_utils.py:1605``: 8192 and 1024 on a GPU of 70 GiB or more that is not
  an A100, else 2048 and 256.
- KV blocks of ``block_size`` = 16 tokens; a page is one layer's block:
  2 × 16 × KV heads × head size × dtype bytes (``vllm/v1/kv_cache_interface.py:63``), a
  latent cache 16 × (latent + rotary) × bytes (``:152``). One kind of layer:
  num_blocks = available // page // layers (``vllm/v1/core/kv_cache_utils.py:824``);
  several kinds (sliding and full): layers grouped by the smallest count of a kind,
  num_blocks = available // page // group size (``:894``, ``:1058``).
- Logged: ``GPU KV cache size: num_blocks // groups × 16 tokens`` (``:1080``) and
  ``Maximum concurrency for max_model_len tokens per request`` = num_blocks / the blocks
  one request needs at most (``:780``): a full layer cdiv(len, 16), a sliding one
  cdiv(min(window − 1 + max_num_batched_tokens, len), 16) + 1
  (``kv_cache_interface.py:198``).
- Hybrid models (Mamba, Mamba-2 or gated-delta-rule layers beside attention: Jamba,
  Falcon-H1, Qwen3-Next): each Mamba-like layer keeps one page a request, its state as
  ``MambaStateShapeCalculator`` shapes it (``vllm/model_executor/layers/mamba/
  mamba_utils.py``: the convolution's last K − 1 inputs and the SSM state, split by
  tensor parallelism, in the model's dtype); ``HybridAttentionMambaModelConfig``
  (``vllm/model_executor/models/config.py``) raises the attention block to 16 ×
  cdiv(state, 16 × an attention token's page) tokens and pads the Mamba page to the
  attention page; the layers grouped as above (Jamba-v0.1: 4 attention and 28 Mamba
  layers, 8 groups of 4), a request needing cdiv(len, block) blocks and one a Mamba group.
  Mamba layers alone: a block of max_model_len tokens, one a request.
- A model fits when one request of ``max_model_len`` fits (``check_enough_kv_cache_memory``,
  ``kv_cache_utils.py:678``); B sequences fit when B ≤ the maximum concurrency. When it
  does not, vLLM does not start, and its error is what it would log: "No available memory
  for the cache blocks" when the KV cache's share is not positive, else "To serve at least
  one request with the models's max seq len ...".

**llama.cpp** (its context as ggml-org/llama.cpp ``src/llama-context.cpp`` at commit
4c7103b96d720ea6057eec6ac11a49727f9ecd43 builds it, and ``src/llama-kv-cache-iswa.cpp``;
the compute buffer as gpustack's gguf-parser estimates it, which cites llama.cpp line by
line):

- ``n_ctx`` = B × T padded to 256 (``cparams.n_ctx = GGML_PAD(cparams.n_ctx, 256)``);
  with B sequences (``n_seq_max``, the cache not unified: the library's default) each
  sequence's stream holds ``n_ctx_seq`` = pad(n_ctx / B, 256) cells, B streams.
- Keys and values in f16 whatever the weights' type (``cache_type_k``/``cache_type_v``
  default ``f16``); a sliding layer's stream keeps min(n_ctx_seq, pad(n_swa + n_ubatch,
  256)) cells (``size_swa``).
- ``n_batch`` 2048, ``n_ubatch`` 512 (``common/common.h``).
- The output buffer: the context reserves it at start with ``output_reserve(n_seq_max)``:
  ``n_outputs_max`` = max(n_outputs, n_seq_max) = B rows of V fp32 logits (``logits_size
  = n_vocab*n_outputs_max``; the H-wide embeddings only with ``embeddings`` on, off by
  default): for Llama-3-8B at B = 1, 128,256 × 4 bytes, the "output buffer size = 0.49
  MiB" it logs.
- The compute buffer (estimate; llama.cpp measures it by reserving the worst-case graph:
  ``graph_reserve(n_tokens, n_seqs, n_tokens)`` with n_tokens = min(n_ctx, n_ubatch)):
  one ubatch's attention scores in fp32, n_ubatch × n_ctx_seq × heads × 4 bytes (flash
  attention off: ``-fa off``), or its f16 mask n_ubatch × n_ctx_seq × 2 with flash
  attention (``-fa auto``, the default, turns it on where the GPU's backend has it), and the
  ubatch's logits, n_ubatch × V × 4; the larger of the two held.
- Over ``--gpus N`` the layer split (``-sm layer``, llama.cpp's default; ``--tensor-split``
  its ``-ts`` proportions), as :mod:`shapecalc.analysis.llama_split` reads
  ``src/llama-model.cpp``'s ``load_tensors``: every layer offloaded, layer ``il`` on the
  device ``upper_bound(splits, float(il) / (n_layer + 1))``, the output layer as
  ``il = n_layer`` (the last GPU on an even split), the input layer (token embeddings) on
  the CPU, a tied head copied to the output layer's GPU; each layer's keys and values on
  its layer's GPU (``src/llama-kv-cache.cpp``); each GPU a compute buffer of its own (the
  estimate above: the scores where it holds layers, the logits where it holds the output).
  The account is the fullest GPU's; a step reads the GPUs in turn, so the decode bound is
  one GPU's bandwidth over every byte.
- The output buffer is host memory (``output_reserve`` allocates it in the output
  device's host buffer type, "CUDA_Host output buffer"): shown, not counted on a GPU.

**transformers**: the model's own account (``generate``: the whole prompt in one
forward, the cache in the model's dtype, the logits on the last position).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from shapecalc.core.choices import ENGINES
from shapecalc.core.dims import known

if TYPE_CHECKING:
    from shapecalc.analysis.cost import StateGroup
    from shapecalc.analysis.fit import Fit
    from shapecalc.analysis.fit_account import Account, Line
    from shapecalc.core.model import Model

__all__ = [
    "ENGINES",
    "Engine",
    "LlamaCpp",
    "LlamaDevice",
    "Transformers",
    "VLLMPages",
    "Vllm",
    "engine",
]

GiB = 2**30


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


class Engine:
    """An engine's accounting of one GPU's memory."""

    name = ""

    def account(self, fit: Fit, batch: int, seq_len: int, gpus: int) -> Account:
        raise NotImplementedError

    def refuses(self, fit: Fit, gpus: int) -> str:
        """Why the engine cannot run ``fit``'s model on ``gpus`` GPUs, or ""."""
        return ""


@dataclass(frozen=True)
class Transformers(Engine):
    """transformers' generate: the model's own account."""

    name = "transformers"

    def account(self, fit: Fit, batch: int, seq_len: int, gpus: int) -> Account:
        from shapecalc.analysis.fit_account import Account

        return Account(
            batch, seq_len, gpus, fit.base_lines(batch, seq_len, gpus), fit.hardware.memory
        )


#: a KV-cache group of Mamba-like layers (their state, one block a request), among the
#: windows of :attr:`VLLMPages.groups`
MAMBA = -1


@dataclass(frozen=True)
class VLLMPages:
    """vLLM's KV-cache layout for a model: the page of one layer (bytes of a block), the
    attention layers of each kind (their sliding window, None for full attention), the
    Mamba-like layers (one page each per request: ``MambaSpec``), and what follows from
    an available memory."""

    page: int
    #: per kind of attention layer: (layers, sliding window or None)
    kinds: tuple[tuple[int, int | None], ...]
    block_size: int = 16
    #: Mamba-like layers (Mamba, Mamba-2, gated delta rule), and their state's bytes a
    #: request before padding to :attr:`page` (``MambaSpec.page_size_bytes``)
    mamba: int = 0
    mamba_state: int = 0
    #: the attention page of one token (0: no attention layers)
    token_page: int = 0

    @property
    def counts(self) -> list[int]:
        return [n for n, _ in self.kinds] + ([self.mamba] if self.mamba else [])

    @property
    def group_size(self) -> int:
        """Layers per KV-cache group: the smallest count of a kind
        (``_get_kv_cache_groups_uniform_page_size``; all the layers when of one kind)."""
        return min(self.counts)

    @property
    def groups(self) -> list[int | None]:
        """Each group's sliding window (None: full attention; :data:`MAMBA`)."""
        out: list[int | None] = []
        for n, window in self.kinds:
            out.extend([window] * _cdiv(n, self.group_size))
        if self.mamba:
            out.extend([MAMBA] * _cdiv(self.mamba, self.group_size))
        return out

    def num_blocks(self, available: int) -> int:
        """``get_num_blocks``: available // page // layers per group."""
        if available <= 0:
            return 0
        return max(available // self.page // self.group_size, 0)

    def tokens(self, num_blocks: int, max_model_len: int | None = None) -> int:
        """``GPU KV cache size: N tokens``: blocks per group × the smallest block size (a
        Mamba layer's block is max_model_len tokens: needed for Mamba layers alone)."""
        smallest = self.block_size if self.kinds or max_model_len is None else max_model_len
        return num_blocks // len(self.groups) * smallest

    def max_usage(self, window: int | None, max_model_len: int, batched: int) -> int:
        """One layer's most bytes for one request (``max_memory_usage_bytes``): a Mamba
        layer's one page."""
        if window == MAMBA:
            return self.page
        if window is None:
            return _cdiv(max_model_len, self.block_size) * self.page
        tokens = min(window - 1 + batched, max_model_len)
        return (_cdiv(tokens, self.block_size) + 1) * self.page

    def blocks_per_request(self, max_model_len: int, batched: int) -> int:
        """``get_max_concurrency_for_kv_cache_config``'s blocks for one request."""
        size = self.group_size
        usage = size * sum(self.max_usage(w, max_model_len, batched) for w in self.groups)
        return _cdiv(usage, self.page * size)

    def needed(self, max_model_len: int, batched: int) -> int:
        """Bytes one request of ``max_model_len`` needs over every layer
        (``check_enough_kv_cache_memory``)."""
        return sum(
            n * self.max_usage(w, max_model_len, batched) for n, w in self.kinds
        ) + self.mamba * self.max_usage(MAMBA, max_model_len, batched)

    def concurrency(self, num_blocks: int, max_model_len: int, batched: int) -> float:
        return num_blocks / self.blocks_per_request(max_model_len, batched)

    def cache_bytes(self, num_blocks: int) -> int:
        """The KV cache's bytes: a tensor of num_blocks pages per layer of a group."""
        return num_blocks * self.page * self.group_size


@dataclass(frozen=True)
class Vllm(Engine):
    """vLLM's V1 engine (0.11): utilization, KV blocks, concurrency."""

    utilization: float = 0.9
    block_size: int = 16
    max_num_batched_tokens: int | None = None
    max_num_seqs: int | None = None
    #: how the weights' dtype was chosen (``--dtype auto``'s rule), for the account
    dtype_note: str = ""
    #: how max_model_len was taken (vLLM's default from the config), for the account
    length_note: str = ""
    name = "vllm"

    def defaults(self, fit: Fit) -> tuple[int, int]:
        """``vllm serve``'s max_num_batched_tokens and max_num_seqs for this GPU."""
        big = fit.hardware.memory >= 70 * GiB and "a100" not in fit.hardware.name
        tokens = self.max_num_batched_tokens or (8192 if big else 2048)
        seqs = self.max_num_seqs or (1024 if big else 256)
        return tokens, seqs

    def refuses(self, fit: Fit, gpus: int) -> str:
        """A Mamba-like state vLLM cannot split evenly over ``gpus`` GPUs."""
        from shapecalc.core.errors import ShapecalcError

        if gpus == 1 or all(g.grows for g in fit.cost(1, 1).state_groups()):
            return ""
        try:
            mamba_state(fit, gpus)
        except ShapecalcError as err:
            return err.message.removeprefix(f"--gpus {gpus}: ")
        return ""

    def pages(self, fit: Fit, gpus: int) -> VLLMPages:
        """The model's pages on one of ``gpus`` GPUs, from the state per position of each
        kind of attention layer (one position, one sequence) and vLLM's own state of the
        Mamba-like layers (:func:`mamba_state`). With both, as
        ``HybridAttentionMambaModelConfig.verify_and_update_config``
        (``vllm/model_executor/models/config.py``): the attention block raised to
        16 × cdiv(mamba page, 16 × attention page of a token) tokens, and the Mamba page
        padded to the attention page."""
        from shapecalc.analysis.fit_account import fit_error

        groups = fit.cost(1, 1).state_groups()
        kinds: list[tuple[int, int | None]] = []
        token_page = 0
        for g in groups:
            if not g.grows:
                continue
            per_token = _per_gpu(fit, g, gpus)
            if token_page and per_token != token_page:
                raise fit_error(
                    "engine",
                    "vllm",
                    "--engine vllm: layers of different page sizes (vLLM requires one)",
                    "one page size",
                )
            token_page = per_token
            layers = known(g.layers)
            assert layers is not None
            kinds.append((layers, g.sliding_window if g.kind == "sliding attention" else None))
        mamba, state = (0, 0)
        if any(not g.grows for g in groups):
            mamba, state = mamba_state(fit, gpus)
            if any(w is not None for _, w in kinds):
                raise fit_error(
                    "engine",
                    "vllm",
                    "--engine vllm: sliding attention beside Mamba-like layers: not modelled",
                    "full attention beside Mamba-like layers",
                )
        if not kinds and not mamba:
            raise fit_error(
                "engine", "vllm", "--engine vllm: the model keeps no KV cache", "a KV cache"
            )
        block = self.block_size
        if not kinds:  # Mamba layers alone: a block of max_model_len tokens, one a request
            page = state
        else:
            if mamba:
                block = max(block, 16 * _cdiv(state, 16 * token_page))
            page = block * token_page
        return VLLMPages(page, tuple(kinds), block, mamba, state, token_page)

    def account(self, fit: Fit, batch: int, seq_len: int, gpus: int) -> Account:
        from shapecalc.analysis.fit_account import Account, Line

        tokens, seqs = self.defaults(fit)
        memory = fit.hardware.memory
        requested = int(memory * self.utilization)
        weights, replicated = fit.weights(gpus)
        # the dummy run spreads its tokens over requests (gpu_model_runner.py's _dummy_run:
        # num_reqs = min(num_tokens, max_num_seqs)); a model whose context is shorter than
        # max_num_batched_tokens (GPT-2's 1,024) is taken at as few sequences as hold them
        context = fit.context
        rows = -(-tokens // context) if context and tokens > context else 1
        each = -(-tokens // rows)
        profile = fit.activations(rows, each, gpus)[0][0]
        vocab = _vocab(fit)
        logits = min(seqs, tokens) * vocab * 4
        lines = [
            Line(
                "weights",
                weights,
                fit.stored_as
                + (
                    f", split over {gpus} GPUs ({replicated:,} bytes replicated)"
                    if gpus > 1
                    else ""
                )
                + (f"; {self.dtype_note}" if self.dtype_note else ""),
            ),
            Line(
                "activations, profiling forward",
                profile,
                "estimate of vLLM's profile run: our prefill peak at "
                + (
                    f"one sequence of max_num_batched_tokens = {tokens:,} positions"
                    if rows == 1
                    else f"max_num_batched_tokens = {tokens:,} positions as {rows} sequences "
                    f"of {each:,} (the model's context is {context:,})"
                ),
            ),
            Line(
                "sampler logits",
                logits,
                f"estimate: {min(seqs, tokens):,} rows (max_num_seqs) × V = {vocab:,} fp32 "
                "logits of the sampler's profiling run",
            ),
        ]
        if fit.reserve:
            lines.append(Line("non-torch memory", fit.reserve, "given: --reserve-gb"))
        used = sum(line.bytes for line in lines)
        available = requested - used
        pages = self.pages(fit, gpus)
        blocks = pages.num_blocks(available)
        kv = pages.cache_bytes(blocks)
        hybrid = (
            f"; {pages.mamba} Mamba-like layers keep {pages.mamba_state:,} bytes a request, "
            f"padded to the page (the attention block raised to {pages.block_size} tokens)"
            if pages.mamba and pages.kinds
            else f"; {pages.mamba} Mamba-like layers, a page a request"
            if pages.mamba
            else ""
        )
        lines.append(
            Line(
                "KV cache",
                max(kv, 0),
                f"the rest of {self.utilization:g} × memory = {requested:,} bytes: {blocks:,} "
                f"blocks of {pages.block_size if pages.kinds else seq_len:,} tokens, "
                f"{pages.page:,} bytes a layer's page{hybrid}; GPU KV cache size "
                f"{pages.tokens(blocks, seq_len):,} tokens"
                + (
                    f"; max_model_len {seq_len:,}, vLLM's default ({self.length_note})"
                    if self.length_note
                    else ""
                ),
            )
        )
        lines.append(
            Line(
                "left to CUDA graphs and the rest",
                memory - requested,
                f"(1 − {self.utilization:g}) × memory: vLLM captures CUDA graphs after "
                "allocating the cache, from this",
            )
        )
        needed = pages.needed(seq_len, tokens)
        concurrency = pages.concurrency(blocks, seq_len, tokens) if blocks else 0.0
        ok = available > 0 and needed <= available and batch <= concurrency
        return Account(batch, seq_len, gpus, tuple(lines), memory, engine_fits=ok)

    def summary(self, fit: Fit, seq_len: int, gpus: int) -> dict[str, float | int]:
        """What vLLM would log at start: blocks, tokens, maximum concurrency."""
        account = fit.account(1, seq_len, gpus)
        tokens, _ = self.defaults(fit)
        pages = self.pages(fit, gpus)
        kv = account.line("KV cache")
        assert kv is not None
        blocks = kv.bytes // pages.cache_bytes(1)
        # the KV cache's share before it is cut into blocks (negative: the rest outgrew
        # utilization × memory), and what one request of max_model_len needs: vLLM
        # refuses to start unless it is positive and holds that
        # (check_enough_kv_cache_memory, kv_cache_utils.py:678)
        held = sum(line.bytes for line in account.lines[:-2])
        return {
            "kv_cache_memory": int(fit.hardware.memory * self.utilization) - held,
            "kv_cache_needed": pages.needed(seq_len, tokens),
            "num_blocks": blocks,
            "kv_cache_tokens": pages.tokens(blocks, seq_len),
            "max_concurrency": pages.concurrency(blocks, seq_len, tokens) if blocks else 0.0,
            "page_bytes": pages.page,
            "block_size": pages.block_size,
            "max_num_batched_tokens": tokens,
        }


@dataclass(frozen=True)
class LlamaDevice:
    """One GPU under llama.cpp's layer split: its number, the layers it holds, whether
    it holds the output layer, and its lines."""

    index: int
    layers: tuple[int, ...]
    output: bool
    lines: tuple[Line, ...]

    @property
    def total(self) -> int:
        return sum(line.bytes for line in self.lines if line.counted and not line.host)

    def line(self, label: str) -> Line | None:
        return next((line for line in self.lines if line.label == label), None)


#: the families shapecalc counts that llama.cpp does not run, by the model's kind: its
#: architectures are ``LLM_ARCH_NAMES`` in src/llama-arch.cpp (ggml-org/llama.cpp
#: 00395eb, lines 8-151: t5 and t5encoder are there, no whisper)
NOT_IN_LLAMA_CPP = {
    "whisper": "Whisper (no whisper architecture in its src/llama-arch.cpp; whisper.cpp, "
    "another program, does)",
}


@dataclass(frozen=True)
class LlamaCpp(Engine):
    """llama.cpp's context: KV cells padded to 256, f16 cache, output and compute
    buffers; over several GPUs its layer split (:mod:`shapecalc.analysis.llama_split`),
    each GPU holding its layers' weights and cache and a compute buffer."""

    n_batch: int = 2048
    n_ubatch: int = 512
    #: ``-fa auto`` (``common.h``'s default, LLAMA_FLASH_ATTN_TYPE_AUTO) keeps flash
    #: attention on where the device supports it (``llama-context.cpp``'s auto check),
    #: as every GPU backend does
    flash_attention: bool = True
    pad: int = 256
    #: ``--tensor-split``: each GPU's proportion of the layers (empty: even)
    tensor_split: tuple[float, ...] = ()
    name = "llama.cpp"
    #: GPUs take whole layers (``-sm layer``): any count of GPUs, no heads to divide
    splits_by_layer = True

    def check_model(self, model: Model) -> None:
        """Refuse a model of a family llama.cpp does not run (:data:`NOT_IN_LLAMA_CPP`)."""
        from shapecalc.analysis.fit_account import fit_error

        why = NOT_IN_LLAMA_CPP.get(str(model.kind or ""))
        if why:
            raise fit_error(
                "engine",
                self.name,
                f"--engine llama.cpp: llama.cpp does not run {why}",
                "a family llama.cpp runs",
            )
        from shapecalc.quant.gguf import MAX_LAYERS, file_layers

        layers = file_layers(model)
        if layers > MAX_LAYERS:
            raise fit_error(
                "engine",
                self.name,
                f"--engine llama.cpp: llama.cpp loads at most {MAX_LAYERS} layers "
                f"(LLAMA_MAX_LAYERS), and {model.name} has {layers:,}",
                f"at most {MAX_LAYERS} layers",
            )

    def check(self) -> None:
        """Refuse a ``tensor_split`` llama.cpp would not take (on fewer GPUs than it
        names, the proportions past the devices are not read: ``load_tensors`` copies
        ``n_devices()`` of them)."""
        from shapecalc.analysis.fit_account import fit_error

        ts = self.tensor_split
        text = ",".join(f"{p:g}" for p in ts)
        if any(not 0 <= p < float("inf") for p in ts) or (ts and not any(ts)):
            raise fit_error(
                "tensor_split",
                text,
                f"--tensor-split {text}: proportions are numbers 0 or more, not all 0",
                "finite proportions >= 0, not all 0",
            )

    def devices(self, fit: Fit, batch: int, seq_len: int, gpus: int) -> tuple[LlamaDevice, ...]:
        """Each GPU's weights, KV cache and compute buffer at ``batch`` × ``seq_len``."""
        from shapecalc.analysis.fit_account import Line
        from shapecalc.analysis.llama_split import layer_devices

        self.check()
        placed = fit.by_layer
        n_layer = len(placed.layers)
        where = layer_devices(n_layer, gpus, self.tensor_split)
        n_ctx = _cdiv(batch * seq_len, self.pad) * self.pad
        per_seq = n_ctx if batch == 1 else _cdiv(n_ctx // batch, self.pad) * self.pad
        swa_cells: dict[int, int] = {}
        vocab = _vocab(fit)
        heads, _ = fit.heads
        ubatch = min(n_ctx, self.n_ubatch)
        # the worst-case graph's scores: each stream's cells against its share of the ubatch
        scores = (
            ubatch * per_seq * 2 if self.flash_attention else ubatch * per_seq * (heads or 1) * 4
        )
        logits = ubatch * vocab * 4
        out = []
        for device in range(gpus):
            mine = tuple(il for il in range(n_layer) if where[il] == device)
            output = where[n_layer] == device
            weights = sum(placed.layers[il] for il in mine) + (placed.output if output else 0)
            cache = 0
            kinds: dict[tuple[int | None, int], list[int]] = {}
            for il in mine:
                numbers, window = placed.per_position[il]
                if numbers:
                    cells = per_seq
                    if window:
                        swa = swa_cells.setdefault(
                            window, _cdiv(window + self.n_ubatch, self.pad) * self.pad
                        )
                        cells = min(per_seq, swa)
                    cache += numbers * cells * batch * 2
                    kinds.setdefault((window, cells), []).append(numbers)
                cache += placed.fixed[il] * batch
            parts = [
                f"{len(n)} {'sliding' if w else 'full'} layers: {batch} × {c:,} cells × "
                + ("/".join(f"{x:,}" for x in sorted(set(n))))
                + " f16 numbers"
                for (w, c), n in kinds.items()
            ]
            fixed = sum(placed.fixed[il] for il in mine)
            if fixed:
                parts.append(f"state of fixed size {fixed * batch:,} bytes")
            compute = max((scores if mine else 0), (logits if output else 0))
            if gpus == 1:
                where_rule = ""
            else:
                span = (
                    f"layers {mine[0]}–{mine[-1]}"
                    if len(mine) > 1
                    else (f"layer {mine[0]}" if mine else "no layers")
                )
                where_rule = (
                    f"GPU {device + 1} of {gpus}: {span} of {n_layer}"
                    + (", the output layer" if output else "")
                    + "; "
                )
            lines = [
                Line(
                    "weights",
                    weights,
                    where_rule
                    + fit.stored_as
                    + (
                        f"; the input layer ({placed.input:,} bytes) on the CPU"
                        if placed.input
                        else ""
                    ),
                ),
                Line(
                    "KV cache",
                    cache,
                    f"n_ctx = B × T = {batch * seq_len:,} padded to {self.pad}: {n_ctx:,}"
                    + (f", {per_seq:,} cells a sequence" if batch > 1 else "")
                    + ("; " + "; ".join(parts) if parts else ""),
                ),
                Line(
                    "compute buffer",
                    compute,
                    "estimate: the larger of one ubatch's attention "
                    + ("mask (f16, flash attention)" if self.flash_attention else "scores (fp32)")
                    + f" over {per_seq:,} cells"
                    + (" and its logits (fp32)" if output else ""),
                ),
            ]
            if output:
                lines.append(
                    Line(
                        "output buffer",
                        vocab * batch * 4,
                        f"V × n_seq_max = {vocab:,} × {batch} fp32 logits (output_reserve; "
                        "embeddings off), in the output device's host buffer",
                        host=True,
                    )
                )
            if fit.reserve:
                lines.append(Line("reserved", fit.reserve, "given: --reserve-gb"))
            out.append(LlamaDevice(device, mine, output, tuple(lines)))
        return tuple(out)

    def account(self, fit: Fit, batch: int, seq_len: int, gpus: int) -> Account:
        from shapecalc.analysis.fit_account import Account

        devices = self.devices(fit, batch, seq_len, gpus)
        fullest = max(devices, key=lambda d: (d.total, -d.index))
        return Account(batch, seq_len, gpus, fullest.lines, fit.hardware.memory)


def _per_gpu(fit: Fit, group: StateGroup, gpus: int) -> int:
    """Bytes one layer of ``group`` keeps per position, per sequence, on one GPU."""
    each = known(group.each)
    assert each is not None
    if gpus == 1 or group.kind == "latent attention":
        return each
    shape = group.tensors[0][1] if group.tensors else ()
    kv = known(shape[1]) if len(shape) == 4 else None
    return _cdiv(each, min(gpus, kv) if kv else gpus)


def mamba_state(fit: Fit, gpus: int) -> tuple[int, int]:
    """The Mamba-like layers of ``fit``'s model and the bytes of vLLM's state of one of
    them for one request on one of ``gpus`` GPUs (``MambaSpec.page_size_bytes`` before
    padding): the shapes of ``MambaStateShapeCalculator``
    (``vllm/model_executor/layers/mamba/mamba_utils.py``), in the model's dtype
    (``mamba_cache_dtype`` and ``mamba_ssm_cache_dtype`` "auto"):

    - Mamba (``mamba1_state_shape``): conv (K − 1, I / tp), SSM (I / tp, N);
    - Mamba-2 (``mamba2_state_shape``): conv (K − 1, (I + 2·G'·N) / tp), G' the groups
      grown to a multiple of tp (``extra_groups_for_head_shards``), SSM
      (heads / tp, head_dim, N);
    - the gated delta rule (``gated_delta_net_state_shape``): conv
      (K − 1, (2·Kh·Dk + Vh·Dv) / tp), SSM (Vh / tp, Dk, Dv)."""
    from shapecalc.analysis.cost import layer_part
    from shapecalc.analysis.fit_account import fit_error
    from shapecalc.layers.linear_attention import GatedDeltaNet
    from shapecalc.layers.mamba import MambaMixer
    from shapecalc.layers.mamba2 import CausalConv1d, Mamba2Scan

    def number(value: object) -> int:
        n = known(value)  # type: ignore[arg-type]
        assert n is not None  # fit refuses symbolic models
        return n

    def divide(n: int, what: str) -> int:
        if n % gpus:
            raise fit_error(
                "gpus",
                gpus,
                f"--gpus {gpus}: vLLM splits the {what} ({n:,}) over the GPUs evenly",
                "a tensor-parallel size dividing the Mamba state",
            )
        return n // gpus

    cost = fit.cost(1, 1)
    size = cost.itemsize
    scans = {c.name: c.spec for c in cost.layers if isinstance(c.spec, Mamba2Scan)}
    found: dict[str, int] = {}
    for c in cost.layers:
        if not c.state_of(fit.cache) or any(s.per_position for s in c.state_of(fit.cache)):
            continue
        spec = c.spec
        if isinstance(spec, MambaMixer):
            inner = divide(number(spec.intermediate_size), "Mamba inner size")
            numbers = (number(spec.conv_kernel) - 1) * inner + inner * number(spec.state_size)
        elif isinstance(spec, Mamba2Scan):
            heads = divide(number(spec.num_heads), "Mamba-2 heads")
            numbers = heads * number(spec.head_dim) * number(spec.state_size)
        elif isinstance(spec, CausalConv1d):
            scan = scans.get(c.name.rpartition(".")[0])
            if scan is None:
                raise fit_error(
                    "engine", "vllm", f"--engine vllm: {c.name} has no scan", "a Mamba-2 mixer"
                )
            groups, state = number(scan.n_groups), number(scan.state_size)
            extra = 0 if groups % gpus == 0 else gpus - groups
            conv_dim = number(spec.channels) + 2 * extra * state
            numbers = (number(spec.kernel_size) - 1) * divide(conv_dim, "Mamba-2 channels")
        elif isinstance(spec, GatedDeltaNet):
            kh, vh = number(spec.num_key_heads), number(spec.num_value_heads)
            dk, dv = number(spec.key_head_dim), number(spec.value_head_dim)
            conv_dim = divide(2 * kh * dk + vh * dv, "gated delta rule's channels")
            numbers = (number(spec.conv_kernel_size) - 1) * conv_dim
            numbers += divide(vh, "value heads") * dk * dv
        else:
            raise fit_error(
                "engine",
                "vllm",
                f"--engine vllm: {c.name} keeps "
                + (
                    "a cross-attention cache (fixed per request), which shapecalc does not "
                    "price in vLLM's pages"
                    if getattr(spec, "cross", False)
                    else "a state of fixed size that is not one of vLLM's Mamba states"
                ),
                "attention, Mamba, Mamba-2 or gated delta rule layers",
            )
        prefix, _ = layer_part(c.name)  # the layer: a Mamba-2 mixer's conv and scan add up
        found[prefix] = found.get(prefix, 0) + numbers * size
    calls = {
        layer_part(c.name)[0]: number(c.calls)
        for c in cost.layers
        if isinstance(c.spec, (MambaMixer, Mamba2Scan, GatedDeltaNet))
    }
    states = set(found.values())
    if len(states) != 1:
        raise fit_error(
            "engine",
            "vllm",
            "--engine vllm: Mamba-like layers of different state sizes (vLLM requires one)",
            "one Mamba state size",
        )
    return sum(calls.values()), states.pop()


def _vocab(fit: Fit) -> int:
    vocab = fit.model.arguments.get("vocab")
    return vocab if isinstance(vocab, int) else 0


#: the engines ``--engine`` takes


def engine(
    name: str,
    utilization: float = 0.9,
    flash_attention: bool = True,
    tensor_split: tuple[float, ...] = (),
) -> Engine:
    """The engine ``--engine`` names."""
    if name == "vllm":
        return Vllm(utilization=utilization)
    if name == "llama.cpp":
        return LlamaCpp(flash_attention=flash_attention, tensor_split=tensor_split)
    return Transformers()
