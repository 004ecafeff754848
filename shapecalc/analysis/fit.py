"""Does a model fit on an accelerator: the memory account at a batch and a context, the
largest context and the most sequences that fit, the fewest GPUs, the quantizations that
fit, and bounds on speed.

Every answer is exact in bytes and found by search over integers with the account
itself, never by a formula solved in floats:

- **The account** (:meth:`Fit.account`) prices, per GPU: the weights (as stored:
  ``Model.bytes``), the inference state at batch × context
  (:meth:`~shapecalc.analysis.cost.Cost.state_at`: sliding layers capped at their window,
  state-space layers constant), the live activations of the prefill and of one decode
  step (:meth:`~shapecalc.analysis.cost.Cost.inference_peak`, the larger held once), and
  an engine's own lines where one is asked for (:mod:`shapecalc.analysis.engines`).
- **Tensor parallel over N GPUs** (Megatron's split, as vLLM shards): every tensor of two
  or more dimensions split N ways (rounded up), one-dimensional tensors (norms, biases)
  replicated; attention's keys and values split by KV head, each GPU keeping at least
  one head (so past N = KV heads the cache is replicated N / KV heads times); latent
  attention's cache replicated (one latent per position, no heads to split); state-space
  and recurrent state split N ways. Activations are counted whole on every GPU (an
  estimate from above: the residual stream is replicated, the MLP's inner activations are
  split). N must divide the attention heads, and divide or be a multiple of the KV heads.
- **The largest context** at a batch: the largest T whose account fits (T + 1 does not),
  by doubling and bisection on the exact account (it grows with T), up to the model's
  own context where it has one (``max_position_embeddings``; a composite model's
  language model's, ``text_config.max_position_embeddings``, its config class's default
  when left out, as transformers builds it; Whisper's decoder's
  ``max_target_positions``), which is also the longest default context.
- **Speed bounds**: decode tokens per second at most B × bandwidth / (bytes read per
  step): the weights (all of them but the rows of the embedding tables not looked up;
  for a mixture the routed experts at top k of E, the least a step can read) and the
  state at that context; prefill at most B × T × peak / FLOPs of the forward (2 per
  multiply-accumulate of the products, the head on the last position only, and causal
  attention's scores and values counted over the T(T+1)/2 causal (query, key) pairs, a
  sliding layer's over its window: the fewest FLOPs a causal kernel such as
  FlashAttention needs, which skips the masked blocks; the model report's FLOPs count all
  T × T, as torch's FlopCounterMode does). Both are bounds: ``efficiency`` factors
  (memory, compute) scale them to what a user expects.

Example:

    >>> from shapecalc.architectures import get
    >>> from shapecalc.analysis.hardware import accelerator
    >>> model = get("llama")(vocab=32000, hidden=4096, layers=32, heads=32,
    ...                      intermediate=11008).model()
    >>> fit = Fit(model, accelerator("rtx-4090"), dtype="bf16", batch=1, seq_len=4096)
    >>> fit.fits(), fit.largest_context()
    (True, 20517)
    >>> fit.fits(1, 20518)
    False
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cached_property
from typing import TYPE_CHECKING, Any

from shapecalc.analysis.fit_account import Account, Line, fit_error
from shapecalc.core.dims import known, product
from shapecalc.core.errors import ShapecalcError, echo
from shapecalc.core.frozen import FrozenMethods, frozen
from shapecalc.core.units import DTYPE_BYTES

if TYPE_CHECKING:
    from shapecalc.analysis.cost import Cost, StateGroup
    from shapecalc.analysis.engines import Engine
    from shapecalc.analysis.hardware import Accelerator
    from shapecalc.analysis.llama_split import LayerBytes
    from shapecalc.core.model import Model
    from shapecalc.core.spec import LayerSpec, Param

__all__ = [
    "COMMON_FORMATS",
    "Account",
    "Answer",
    "Fit",
    "Line",
    "QuantChoice",
    "Speed",
    "answer",
    "fit_error",
]

#: the weights formats ``fit`` prices when a model does not fit as it is and no
#: ``--formats`` asks for all: those most published quantized checkpoints use
COMMON_FORMATS = (
    "fp8",
    "int8",
    "nf4",
    "gptq-int8",
    "gptq-int4",
    "awq",
    "q8_0",
    "q6_k",
    "q5_k_m",
    "q4_k_m",
    "q3_k_m",
    "q2_k",
)
#: the most GPUs :meth:`Fit.fewest_gpus` tries
MOST_GPUS = 64
#: the longest context searched when the model names none
LONGEST = 2**40
#: dtypes of the products a peak is looked up for, by the weights' dtype
COMPUTE_OF = {"fp32": "fp32", "fp16": "fp16", "bf16": "bf16", "fp8": "fp8", "int8": "int8"}


@frozen
class QuantChoice(FrozenMethods):
    """A weights format tried: its name, the weights' exact bytes, whether the model fits,
    or why the format cannot take the model."""

    name: str
    bytes: int | None
    fits: bool
    why: str = ""
    #: the format's quantizer converts no fused experts (3-D tensors, not nn.Linear):
    #: they stay at the model's dtype (bitsandbytes on Jamba, Mixtral, ...)
    experts_kept: bool = False


def _experts_kept(model: Model) -> bool:
    """Whether a quantized model keeps some fused experts unquantized."""
    from shapecalc.layers._experts import Experts

    return any(isinstance(layer.spec, Experts) for layer in model.layers)


@frozen
class Speed(FrozenMethods):
    """Bounds on speed at one batch and context: decode tokens per second at most, prefill
    tokens per second at most, with the bytes and FLOPs behind them."""

    decode_bytes: int
    weights_read: int
    state_read: int
    decode_tokens_per_s: float | None
    prefill_flops: int
    prefill_tokens_per_s: float | None
    compute_dtype: str
    peak: int | None
    bandwidth: int
    rule_decode: str
    rule_prefill: str


def _read(spec: LayerSpec, tie_source: bool) -> tuple[bool, Fraction | None]:
    """(an embedding table's rows looked up, the fraction of a routed expert's tensor read
    per token) for a tensor of ``spec`` (a quantized layer's: of the layer it stores)."""
    inner = getattr(spec, "layer", spec)
    lookup = inner.kind == "Embedding" and not tie_source
    routed: Fraction | None = None
    if inner.routed:
        active, total = known(inner.active()), known(inner.total())
        if active is not None and total:
            routed = Fraction(active, total)
    return lookup, routed


def _read_of(model: Model, source: str, sources: set[str]) -> tuple[bool, Fraction | None]:
    """:func:`_read` of the model's tensor named ``source`` (``model.layers.7.mlp.
    up_proj.weight``): found by the layer's name with its indices as ``#`` where every
    layer so named reads alike (a run's layers), else by :meth:`Model.layer`."""
    layer = source.rpartition(".")[0]
    if source not in sources:
        alike: dict[str, tuple[bool, Fraction | None] | None] = model.memo(
            "fit.reads_alike", lambda: _reads_alike(model)
        )
        found = alike.get(_indexless(layer))
        if found is not None:
            return found
    return _read(model.layer(layer).spec, source in sources)


def _shapes_bytes(shapes: dict[tuple[tuple[int, ...], str], int], size: int) -> tuple[int, int]:
    """(bytes of the matrices, which tensor parallelism splits; bytes of the rest) of
    tensors counted by (shape, dtype), as :attr:`Fit._weight_rows` sums them."""
    from shapecalc.core.spec import Param

    split = whole = 0
    for (shape, dtype), count in shapes.items():
        n = known(Param("", shape, "", dtype=dtype).nbytes(size))
        assert n is not None  # fit refuses symbolic models
        if len(shape) >= 2:
            split += count * n
        else:
            whole += count * n
    return split, whole


def _indexless(name: str) -> str:
    from shapecalc.core.tree import split_name, unnumbered

    return unnumbered(split_name(name))


def _reads_alike(model: Model) -> dict[str, tuple[bool, Fraction | None] | None]:
    """:func:`_read` (no tie source) of each layer name with its indices as ``#``; None
    where layers of that name read differently."""
    out: dict[str, tuple[bool, Fraction | None] | None] = {}
    for layer in model.layers:
        key = _indexless(layer.name)
        read = _read(layer.spec, False)
        out[key] = read if out.get(key, read) == read else None
    return out


@dataclass(eq=False, repr=False)
class Fit:
    """A model against an accelerator at a batch and a context (the defaults of every
    question), in ``dtype``, on ``gpus`` GPUs, under ``engine`` (None: the model's own
    account, as transformers' generate runs it: the whole prompt in one forward)."""

    model: Model
    hardware: Accelerator
    dtype: str = "bf16"
    batch: int = 1
    seq_len: int = 4096
    gpus: int = 1
    engine: Engine | None = None
    #: bytes known to be taken on each GPU (the CUDA context, other processes)
    reserve: int = 0
    #: the dtype of the products for the compute bound (the weights' dtype unless given)
    compute: str | None = None
    #: (memory, compute): the fraction of the bandwidth and of the peak reached
    efficiency: tuple[float, float] = (1.0, 1.0)
    cache: str = "latent"
    #: the model's own context when its arguments do not hold it (a config's
    #: max_position_embeddings): the longest context searched
    max_context: int | None = None
    #: the config field that names :attr:`max_context` (for the messages)
    context_field: str = "max_position_embeddings"
    _costs: dict[tuple[int, int], Cost] = field(default_factory=dict, repr=False)
    _accounts: dict[tuple[int, int, int], Account] = field(default_factory=dict, repr=False)
    #: the tensors a weights format stores, each with the model's tensor it stores, when
    #: the format is priced without building the quantized model (``model`` is then the
    #: model before); None: the model's own rows
    _stored: tuple[tuple[str, Param], ...] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.dtype not in DTYPE_BYTES:
            raise fit_error(
                "dtype", self.dtype, f"--dtype {echo(self.dtype)} is not a dtype", "a dtype"
            )
        for name, value in (("batch", self.batch), ("seq_len", self.seq_len)):
            _positive(name, value)
        _positive("gpus", self.gpus)
        if self.model.symbolic:
            raise fit_error(
                "model", self.model.name, "fit needs every size a number", "numbers, no names"
            )
        if not self.model.input_layout or "T" not in {
            d for shape in self.model.input_layout for d in shape
        }:
            raise fit_error(
                "model",
                self.model.name,
                f"{self.model.name} reads no sequence: fit answers for language models",
                "a model with a sequence input",
            )
        for flag, fraction in zip(("memory", "compute"), self.efficiency, strict=True):
            if not 0 < fraction <= 1:
                raise fit_error(
                    "efficiency",
                    fraction,
                    f"--efficiency: {flag} must be in (0, 1], got {fraction:g}",
                    "a fraction in (0, 1]",
                )
        if self.reserve >= self.hardware.memory:
            from shapecalc.core.units import human_bytes

            raise fit_error(
                "reserve_gb",
                self.reserve / 10**9,
                f"--reserve-gb {self.reserve / 10**9:g}: the reserve must be less than the "
                f"GPU's memory, {human_bytes(self.hardware.memory)} on {self.hardware.title}",
                "less than the GPU's memory",
            )
        check_model = getattr(self.engine, "check_model", None)
        if check_model is not None:
            check_model(self.model)
        self._check_gpus(self.gpus)

    # -- the pieces ---------------------------------------------------------------------
    def cost(self, batch: int, seq_len: int) -> Cost:
        """The model's cost at ``batch`` × ``seq_len`` for inference (computed once)."""
        from shapecalc.analysis.cost import analyze

        key = (batch, seq_len)
        found = self._costs.get(key)
        if found is None:
            found = analyze(
                self.model,
                batch=batch,
                seq_len=seq_len,
                dtype=self.dtype,
                training="none",
                cache=self.cache,
            )
            if len(self._costs) > 4096:
                self._costs.clear()
            self._costs[key] = found
        return found

    @cached_property
    def context(self) -> int | None:
        """The model's own context (max_position_embeddings; a composite model's language
        model's; Whisper's decoder's max_target_positions), where it names one."""
        return self._context[0]

    @cached_property
    def _context(self) -> tuple[int | None, str]:
        args = self.model.arguments
        config = self.model.config
        found: tuple[Any, str] = (self.max_context, self.context_field)
        if found[0] is None:
            found = (args.get("context"), "max_position_embeddings")
        if found[0] is None and args.get("target_positions") is not None:
            found = (args.get("target_positions"), "max_target_positions")
        if found[0] is None and isinstance(config, dict):
            found = (config.get("max_position_embeddings"), "max_position_embeddings")
        value = found[0]
        good = isinstance(value, int) and not isinstance(value, bool) and value > 0
        return (value if good else None), found[1]

    @cached_property
    def heads(self) -> tuple[int | None, int | None]:
        """(attention heads, KV heads) where the model's arguments name them."""
        args = self.model.arguments
        heads = args.get("heads")
        kv = args.get("kv_heads") or heads
        return (
            heads if isinstance(heads, int) else None,
            kv if isinstance(kv, int) else None,
        )

    def _check_gpus(self, gpus: int) -> None:
        why = self.split_refused(gpus)
        if why:
            raise fit_error("gpus", gpus, f"--gpus {gpus}: {why}", "a tensor-parallel size")

    @cached_property
    def by_layer(self) -> LayerBytes:
        """The weights and state by layer, as llama.cpp places them
        (:func:`~shapecalc.analysis.llama_split.layer_bytes`; worked out once)."""
        from shapecalc.analysis.llama_split import layer_bytes

        return layer_bytes(self)

    @cached_property
    def stored_as(self) -> str:
        """How the weights are stored, for an engine's weights line (asked at every step
        of an engine's searches: worked out once)."""
        quantization = self.model.quantization
        if quantization is None:
            return f"as stored at {self.dtype}"
        others = any(not r.param.dtype for r in self.model.rows() if not r.tied_to)
        return f"as stored: {quantization.describe()}" + (
            f", the other tensors at {self.dtype}" if others else ""
        )

    def split_refused(self, gpus: int) -> str:
        """Why the model cannot be split over ``gpus`` GPUs, or ""."""
        heads, kv = self.heads
        if gpus == 1:
            return ""
        if getattr(self.engine, "splits_by_layer", False):
            return ""  # llama.cpp's layer split: any count of GPUs
        if heads is not None and heads % gpus:
            return f"{heads} attention heads do not split over {gpus} GPUs"
        if kv is not None and kv % gpus and gpus % kv:
            return f"{kv} KV heads neither split over {gpus} GPUs nor replicate evenly"
        return self.engine.refuses(self, gpus) if self.engine is not None else ""

    @cached_property
    def _weight_rows(self) -> tuple[tuple[int, bool, bool, Fraction | None], ...]:
        """Per stored tensor: (bytes, split by tensor parallelism, an embedding table's
        rows looked up, the fraction read per token for a routed expert's)."""
        size = DTYPE_BYTES[self.dtype]
        sources = set(self.model.ties.values())
        if self._stored is not None:
            model = self.model
            reads: dict[str, tuple[bool, Fraction | None]] = model.memo("fit.reads", dict)
            sized: dict[tuple[Any, ...], int] = model.memo(f"fit.bytes:{size}", dict)
            out = []
            for source, param in self._stored:
                key = (param.shape, param.dtype, param.repeat)
                n = sized.get(key)
                if n is None:
                    n = known(param.nbytes(size))
                    assert n is not None  # fit refuses symbolic models
                    sized[key] = n
                read = reads.get(source)
                if read is None:
                    read = reads[source] = _read_of(model, source, sources)
                out.append((n, len(param.shape) >= 2, *read))
            return tuple(out)
        specs = {layer.name: layer.spec for layer in self.model.layers}
        rows = []
        for row in self.model.rows():
            if row.tied_to:
                continue
            n = known(row.param.nbytes(size))
            assert n is not None  # fit refuses symbolic models
            spec = specs.get(row.layer)
            read = (False, None) if spec is None else _read(spec, row.name in sources)
            rows.append((n, len(row.param.shape) >= 2, *read))
        return tuple(rows)

    def weight_tensors(self) -> tuple[tuple[str, int], ...]:
        """Each stored tensor's bytes, by the name of the model's tensor it stores (a
        run's name, ``model.layers.{0..31}.mlp.up_proj.weight``, for all of its layers);
        tied tensors once."""
        size = DTYPE_BYTES[self.dtype]
        if self._stored is not None:
            out = []
            for source, param in self._stored:
                n = known(param.nbytes(size))
                assert n is not None  # fit refuses symbolic models
                out.append((source, n))
            return tuple(out)
        rows = []
        for row in self.model.rows():
            if row.tied_to:
                continue
            n = known(row.param.nbytes(size))
            assert n is not None  # fit refuses symbolic models
            rows.append((row.name, n))
        return tuple(rows)

    def weights(self, gpus: int = 1) -> tuple[int, int]:
        """Bytes of weights on each of ``gpus`` GPUs, and the bytes replicated on each."""
        split = sum(n for n, s, _, _ in self._weight_rows if s)
        whole = sum(n for n, s, _, _ in self._weight_rows if not s)
        return -(-split // gpus) + whole, whole if gpus > 1 else 0

    def state_split(self, group: StateGroup, gpus: int) -> int:
        """What one GPU of ``gpus`` keeps of a state group's bytes (all its layers)."""
        total = known(group.total)
        assert total is not None
        if gpus == 1:
            return total
        if group.kind == "latent attention":
            return total
        if "attention" in group.kind and group.tensors:
            shape = group.tensors[0][1]
            kv = known(shape[1]) if len(shape) == 4 else None
            if kv:
                return -(-total // min(gpus, kv))
        return -(-total // gpus)

    # -- the account --------------------------------------------------------------------
    def account(
        self, batch: int | None = None, seq_len: int | None = None, gpus: int | None = None
    ) -> Account:
        """The memory of one GPU at ``batch`` × ``seq_len`` on ``gpus`` GPUs."""
        b = self.batch if batch is None else batch
        t = self.seq_len if seq_len is None else seq_len
        n = self.gpus if gpus is None else gpus
        key = (b, t, n)
        found = self._accounts.get(key)
        if found is None:
            found = self._account(b, t, n)
            if len(self._accounts) > 4096:
                self._accounts.clear()
            self._accounts[key] = found
        return found

    def _account(self, b: int, t: int, n: int) -> Account:
        if self.engine is not None:
            return self.engine.account(self, b, t, n)
        return Account(b, t, n, self.base_lines(b, t, n), self.hardware.memory)

    def base_lines(self, b: int, t: int, n: int) -> tuple[Line, ...]:
        """Weights, buffers, state and the two activation lines at ``b`` × ``t`` on one
        of ``n`` GPUs."""
        cost = self.cost(b, t)
        weights, replicated = self.weights(n)
        rules = {line.label: line.rule for line in cost.memory}
        split = (
            f"; split over {n} GPUs, {replicated:,} bytes of 1-D tensors (norms, biases) "
            "replicated on each"
            if n > 1
            else ""
        )
        lines = [
            Line(
                "weights",
                weights,
                rules.get("weights", f"{DTYPE_BYTES[self.dtype]} bytes each") + split,
            )
        ]
        buffers = known(cost.buffer_bytes)
        if buffers:
            lines.append(Line("buffers", buffers, rules.get("buffers", "buffers at dtype")))
        state = self.state(b, t, n)
        if state is not None:
            lines.append(Line("inference state", state, self.state_rule(b, t, n)))
        prefill, decode = self.activations(b, t, n)
        lines.append(Line("activations, prefill", prefill[0], prefill[1], prefill[0] >= decode[0]))
        lines.append(Line("activations, decode step", decode[0], decode[1], decode[0] > prefill[0]))
        if self.reserve:
            lines.append(Line("reserved", self.reserve, "given: --reserve-gb"))
        return tuple(lines)

    def state(self, b: int, t: int, n: int = 1) -> int | None:
        """Bytes of inference state on one of ``n`` GPUs at ``b`` × ``t``; None without
        (on one GPU :meth:`~shapecalc.analysis.cost.Cost.state_at` of the batch's cost at
        one position, which prices any context: one analysis per batch, not per context)."""
        if n == 1:
            one = self.cost(b, 1)
            if not one.state:
                return None
            at = one.state_at(t)
            if at is None:
                raise fit_error(
                    "seq_len", t, "the inference state cannot be priced per position", "state"
                )
            return at
        cost = self.cost(b, t)
        if not cost.state:
            return None
        return sum(self.state_split(g, n) for g in cost.state_groups())

    def state_rule(self, b: int, t: int, n: int) -> str:
        groups = self.cost(b, t).state_groups()
        parts = []
        for g in groups:
            each = known(g.each)
            window = f", window {g.sliding_window:,}" if g.sliding_window else ""
            parts.append(f"{known(g.layers)} {g.kind}{window}: {each:,} bytes each")
        text = f"at B={b}, T={t:,}: " + "; ".join(parts)
        if n > 1:
            text += (
                f"; over {n} GPUs: keys and values split by KV head (one head at least on "
                "each), latent caches replicated, other state split"
            )
        return text

    def peak(self, b: int, t: int, n: int = 1, *, step: bool = False) -> int:
        """Bytes of the live activations of a forward over ``b`` × ``t`` positions
        (:meth:`~shapecalc.analysis.cost.Cost.inference_peak`) on one of ``n`` GPUs;
        ``step``: one decode step's, at ``t`` = 1 (what :meth:`~shapecalc.analysis.cost.
        Cost.decode` analyses: an encoder-decoder's decoder alone). Under tensor
        parallelism a tensor of the hidden size (the residual, the norms' and the
        row-parallel layers' outputs) is whole on every GPU, the others (the heads, the
        MLP's intermediate, the logits) are split."""
        hidden = self.model.arguments.get("hidden")
        share = None
        if n > 1 and isinstance(hidden, int):

            def share(shape: Any) -> Any:
                count = known(product(shape))
                if count is None or (shape and shape[-1] == hidden):
                    return product(shape)
                return -(-count // n)

        cost = self.cost(b, t)
        key = ("fit.peak", n if share is not None else 1, step)
        value: int | None = cost.memo.get(key)
        if value is not None:
            return value
        peak = (cost.decode_step() if step else cost).inference_peak(share)
        value = None if peak is None else known(peak.bytes)
        if value is None:
            raise fit_error("seq_len", t, "the activations of this model have no number", "numbers")
        cost.memo[key] = value
        return value

    def activations(self, b: int, t: int, n: int = 1) -> tuple[tuple[int, str], tuple[int, str]]:
        """(bytes, rule) of the prefill's and one decode step's live activations on one
        of ``n`` GPUs."""
        rules = {line.label: line.rule for line in self.cost(b, t).memory}
        split = (
            f"; over {n} GPUs: the hidden-size tensors whole on each, the others (heads, "
            "the MLP's intermediate, logits) split"
            if n > 1 and isinstance(self.model.arguments.get("hidden"), int)
            else ""
        )
        return (
            (self.peak(b, t, n), rules.get("activations, prefill", "the prefill's") + split),
            (
                self.peak(b, 1, n, step=True),
                rules.get("activations, decode step", "one decode step's") + split,
            ),
        )

    def total(self, b: int, t: int, n: int) -> int:
        """The bytes one GPU holds at ``b`` × ``t`` on ``n`` GPUs: the sum of
        :meth:`account`'s held lines without writing their rules (what the searches
        ask)."""
        if self.engine is not None:
            return self.account(b, t, n).total
        buffers = known(self.cost(b, 1).buffer_bytes) or 0
        return (
            self.weights(n)[0]
            + buffers
            + (self.state(b, t, n) or 0)
            + max(self.peak(b, t, n), self.peak(b, 1, n, step=True))
            + self.reserve
        )

    # -- the questions ------------------------------------------------------------------
    def fits(
        self, batch: int | None = None, seq_len: int | None = None, gpus: int | None = None
    ) -> bool:
        b = self.batch if batch is None else batch
        t = self.seq_len if seq_len is None else seq_len
        n = self.gpus if gpus is None else gpus
        if self.past_context(t):
            return False
        if self.engine is not None:
            return self.account(b, t, n).fits
        return self.total(b, t, n) <= self.hardware.memory

    def past_context(self, seq_len: int) -> bool:
        """Whether ``seq_len`` positions are more than the model's own context (the model
        cannot take them: nothing fits there)."""
        return self.context is not None and seq_len > self.context

    def check_context(self) -> None:
        """Refuse a context past the model's own in one line."""
        if self.past_context(self.seq_len):
            raise fit_error(
                "seq_len",
                self.seq_len,
                f"--seq-len {self.seq_len:,} is past the model's context, {self.context:,} "
                f"positions ({self._context[1]}): give at most that",
                "at most the model's context",
            )

    def _margin(self, b: int, t: int, n: int) -> int | None:
        """Memory left at ``b`` × ``t`` (negative: short), for the searches; None under an
        engine with a verdict of its own."""
        if self.engine is not None:
            return None
        return self.hardware.memory - self.total(b, t, n)

    def context_limit(self) -> int:
        """The longest context searched: the model's own, else :data:`LONGEST`."""
        return self.context or LONGEST

    def largest_context(self, batch: int | None = None, gpus: int | None = None) -> int | None:
        """The largest context T at ``batch`` that fits (T + 1 does not, or T is the
        model's own context); None when not even one position fits."""
        b = self.batch if batch is None else batch
        n = self.gpus if gpus is None else gpus
        return _largest(
            lambda t: self.fits(b, t, n), self.context_limit(), lambda t: self._margin(b, t, n)
        )

    def most_sequences(self, seq_len: int | None = None, gpus: int | None = None) -> int | None:
        """The largest batch at ``seq_len`` that fits (one more does not); None when not
        even one sequence fits."""
        t = self.seq_len if seq_len is None else seq_len
        n = self.gpus if gpus is None else gpus
        if self.past_context(t):
            return None
        return _largest(lambda b: self.fits(b, t, n), 2**40, lambda b: self._margin(b, t, n))

    def fewest_gpus(
        self, batch: int | None = None, seq_len: int | None = None
    ) -> tuple[int | None, list[tuple[int, str]]]:
        """The fewest GPUs the model fits on at ``batch`` × ``seq_len`` (None: not on
        :data:`MOST_GPUS`, or past the model's context), and the counts skipped with
        why."""
        skipped: list[tuple[int, str]] = []
        if self.past_context(self.seq_len if seq_len is None else seq_len):
            return None, skipped
        for n in range(1, MOST_GPUS + 1):
            why = self.split_refused(n)
            if why:
                skipped.append((n, why))
                continue
            if self.fits(batch, seq_len, n):
                return n, skipped
        return None, skipped

    def quantizations(self, names: Sequence[str] | None = None) -> list[QuantChoice]:
        """Every weights format shapecalc knows (read at run time from
        :data:`shapecalc.quant.METHODS`), or those of ``names`` (as ``--weights`` spells
        them, e.g. :data:`COMMON_FORMATS`), smallest weights first (ties in the order the
        methods declare them), each with its exact bytes and whether the model fits at
        this batch, context and GPU count."""
        from dataclasses import replace

        from shapecalc.quant import METHODS, method_class, parse_weights, quantize, stored_shapes

        base = self.model.unquantized or self.model
        # the state, the activations and the buffers do not depend on how the weights are
        # stored: every format shares the model's costs, and without an engine fits when
        # its weights and the rest of the model's total fit (tests/test_fit.py checks it)
        costs = self._costs if self.model.unquantized is None else {}
        rest: int | None = None
        if self.engine is None:
            plain = (
                self
                if self.model is base and self._stored is None
                else replace(self, model=base, _costs=costs, _accounts={}, _stored=None)
            )
            rest = plain.total(self.batch, self.seq_len, self.gpus) - plain.weights(self.gpus)[0]
        tried: list[tuple[int, int, QuantChoice]] = []
        order = 0
        wanted = None if names is None else set(names)
        for quant_method in METHODS:
            if wanted is not None and not wanted:
                break  # every name found: the methods after are not imported
            try:
                aliases = list(method_class(quant_method).aliases) or [quant_method]
            except ShapecalcError:
                continue
            for name in aliases:
                if wanted is not None:
                    if name not in wanted:
                        continue
                    wanted.discard(name)
                order += 1
                try:
                    quantization = parse_weights(name)
                    shapes = stored_shapes(base, quantization) if rest is not None else None
                    if shapes is not None:  # priced by shape, no tensor named
                        assert rest is not None
                        split, whole = _shapes_bytes(shapes, DTYPE_BYTES[self.dtype])
                        weights = split + whole
                        on_one = -(-split // self.gpus) + whole
                        fits = on_one + rest <= self.hardware.memory
                        tried.append((weights, order, QuantChoice(name, weights, fits)))
                        continue
                    stored = quantization.method.stored_tensors(base, quantization)
                    if stored is None:
                        model = quantize(base, quantization)
                        other = replace(self, model=model, _costs=costs, _accounts={})
                    else:
                        other = replace(
                            self, model=base, _costs=costs, _accounts={}, _stored=stored
                        )
                    weights = sum(n for n, _, _, _ in other._weight_rows)
                    fits = (
                        other.fits()
                        if rest is None
                        else other.weights(self.gpus)[0] + rest <= self.hardware.memory
                    )
                    kept = stored is None and _experts_kept(model)
                    choice = QuantChoice(name, weights, fits, experts_kept=kept)
                except ShapecalcError as err:
                    tried.append((2**63, order, QuantChoice(name, None, False, err.message)))
                    continue
                tried.append((weights, order, choice))
        tried.sort(key=lambda x: (x[0], x[1]))
        return [c for _, _, c in tried]

    # -- speed --------------------------------------------------------------------------
    def speed(
        self, batch: int | None = None, seq_len: int | None = None, gpus: int | None = None
    ) -> Speed:
        """Bounds on decode and prefill speed at ``batch`` × ``seq_len`` on ``gpus`` GPUs
        working in parallel (each reads its share)."""
        b = self.batch if batch is None else batch
        t = self.seq_len if seq_len is None else seq_len
        n = self.gpus if gpus is None else gpus
        # llama.cpp's layer split: a token passes the GPUs one after another, each reading
        # its layers: the step reads every byte at one GPU's bandwidth
        layered = n > 1 and bool(getattr(self.engine, "splits_by_layer", False))
        shares = 1 if layered else n
        read = 0
        skipped_lookup = 0
        for nbytes, split, lookup, routed in self._weight_rows:
            if lookup:
                skipped_lookup += nbytes
                continue
            if routed is not None:
                nbytes = -(-nbytes * routed.numerator // routed.denominator)
            read += -(-nbytes // shares) if split else nbytes
        state = self.state(b, t, shares) or 0
        total = read + state
        bandwidth = self.hardware.bandwidth
        eff_m, eff_c = self.efficiency
        decode = b * bandwidth * eff_m / total if bandwidth and total else None
        cost = self.cost(b, t)
        flops = 2 * _matmul_macs(cost)
        compute = self.compute or COMPUTE_OF.get(self.dtype, "bf16")
        peak = self.hardware.peak_for(compute)
        prefill = b * t * n * peak * eff_c / flops if peak and flops else None
        mixture = any(r is not None for _, _, _, r in self._weight_rows)
        rule_decode = (
            f"B × bandwidth × {eff_m:g} / bytes read per step: the weights"
            + (" (routed experts at top k of E, the least a step reads)" if mixture else "")
            + (", the embedding tables but the rows looked up" if skipped_lookup else "")
            + f", and the state at T={t:,}"
            + (
                f"; split by layer, the {n} GPUs read their layers in turn"
                if layered
                else f"; each of {n} GPUs reads its share"
                if n > 1
                else ""
            )
        )
        rule_prefill = (
            f"B × T × {n} × peak {compute} × {eff_c:g} / FLOPs: 2 per multiply-accumulate "
            "of the forward's products, the head on the last position only, causal "
            "attention's scores and values over the T(T+1)/2 causal pairs (sliding layers "
            "over their window), the fewest a causal kernel computes"
        )
        return Speed(
            total,
            read,
            state,
            decode,
            flops,
            prefill,
            compute,
            peak,
            bandwidth,
            rule_decode,
            rule_prefill,
        )

    def frontier(self, batches: list[int], gpus: int | None = None) -> list[tuple[int, int | None]]:
        """The fit frontier: the largest context at each batch."""
        return [(b, self.largest_context(b, gpus)) for b in batches]


def causal_pairs(t: int, window: int | None = None) -> int:
    """(query, key) pairs a causal kernel computes over ``t`` positions from an empty
    cache: T(T+1)/2, each query with itself and those before; with a sliding ``window``,
    each query with the last ``window`` positions at most (itself among them)."""
    if window is None or window >= t:
        return t * (t + 1) // 2
    return window * (window + 1) // 2 + (t - window) * window


def _matmul_macs(cost: Cost) -> int:
    """Multiply-accumulates of the forward's products with the head on the last position
    only (generate computes its logits there), the attention products of causal layers
    over their causal (query, key) pairs only (:func:`causal_pairs`): the fewest a causal
    kernel (FlashAttention, SDPA with ``is_causal``) computes, where the report's FLOPs,
    as torch's FlopCounterMode counts them, take all T × T."""
    from shapecalc.layers.functional import ScaledDotProductAttention
    from shapecalc.layers.latent import LatentAttention

    head = cost.model.head
    total = 0
    t = (known(cost.seq_len) if cost.seq_len is not None else None) or 1
    for layer in cost.layers:
        macs = known(layer.macs)
        assert macs is not None
        if head and layer.name.split(" ")[0] == head and t > 1:
            macs = macs // t
        spec = layer.spec
        if isinstance(spec, (ScaledDotProductAttention, LatentAttention)) and spec.causal:
            # the products are T × T × (per pair); a causal kernel computes the pairs only
            window = getattr(spec, "window", None)
            assert macs % (t * t) == 0
            macs = macs // (t * t) * causal_pairs(t, window)
        total += macs
    return total


def _positive(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        flag = "--" + name.replace("_", "-")
        raise fit_error(
            name, value, f"{flag} must be a whole number of at least 1, got {echo(value)}", "≥ 1"
        )


def _largest(fits: Any, limit: int, margin: Any = None) -> int | None:
    """The largest x in [1, limit] with fits(x), for fits true up to a point and false
    after; None when fits(1) is false. With ``margin`` (memory left at x, decreasing, its
    sign the verdict) the bracket is narrowed by the secant through its ends (the account
    is nearly linear in the context), halved when that gains too little; the answer is
    the same: the bracket's ends are always one that fits and one that does not."""
    if not fits(1):
        return None
    if fits(limit):
        return limit
    low, high = 1, limit  # fits(low), not fits(high)
    m_low = m_high = None
    if margin is not None:
        m_low, m_high = margin(low), margin(high)
        if m_low is None or m_high is None:
            margin = None
    bisect = False
    while high - low > 1:
        if margin is not None and not bisect and m_low is not None and m_high is not None:
            span = m_low - m_high
            guess = low + (high - low) * m_low // span if span > 0 else (low + high) // 2
            mid = min(max(guess, low + 1), high - 1)
        else:
            mid = (low + high) // 2
        width = high - low
        if fits(mid):
            low = mid
            m_low = margin(mid) if margin is not None else None
            if high - low > 1 and not fits(low + 1):  # the secant lands just below
                return low
        else:
            high = mid
            m_high = margin(mid) if margin is not None else None
        bisect = not bisect and high - low > width // 2  # gained less than half: halve
    return low


@frozen
class Answer(FrozenMethods):
    """Every answer of ``shapecalc fit`` at once: the account at the batch and context,
    the largest context, the most sequences, the fewest GPUs, the formats that fit, the
    speed bounds, what the engine would log, and the frontier when asked."""

    fit: Fit
    account: Account
    largest_context: int | None
    most_sequences: int | None
    fewest_gpus: int | None
    skipped_gpus: tuple[tuple[int, str], ...]
    quantizations: tuple[QuantChoice, ...]
    speed: Speed | None
    engine_log: dict[str, float | int] | None
    frontier: tuple[tuple[int, int | None], ...] = ()
    #: whether :attr:`quantizations` holds every format (else :data:`COMMON_FORMATS`)
    all_formats: bool = True

    @property
    def fits(self) -> bool:
        return self.account.fits


def answer(
    fit: Fit, *, quantizations: bool | Sequence[str] = True, frontier: tuple[int, ...] = ()
) -> Answer:
    """All the answers for ``fit``'s batch, context and GPUs; ``quantizations``: every
    weights format (True), none (False), or those named."""
    account = fit.account()
    gpus, skipped = fit.fewest_gpus()
    speed = fit.speed()
    log = None
    if fit.engine is not None:
        from shapecalc.analysis.engines import Vllm

        if isinstance(fit.engine, Vllm):
            log = fit.engine.summary(fit, fit.seq_len, fit.gpus)
    return Answer(
        fit,
        account,
        fit.largest_context(),
        fit.most_sequences(),
        gpus,
        tuple(skipped),
        tuple(fit.quantizations(None if quantizations is True else quantizations))
        if quantizations
        else (),
        speed,
        log,
        tuple(fit.frontier(list(frontier))) if frontier else (),
        all_formats=quantizations is True,
    )
