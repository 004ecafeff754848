"""A LoRA (or DoRA, or QLoRA) model's activations on one rank of a tensor-, pipeline-,
context- or expert-parallel run, by Korthikanti et al.'s terms
(:func:`shapecalc.analysis.model_parallel.activation_bytes`) changed where a frozen base
and its adapters keep other tensors than a trained model.

**A frozen base keeps no linear layer's input.** A trained linear layer keeps its input
for its weight's gradient; its input's gradient takes the weight alone. Megatron-LM runs
a frozen parallel linear layer through ``LinearWithFrozenWeight``, which saves the weight
and not the input (megatron/core/tensor_parallel/layers.py, lines 410-427 and 1173-1174,
1511-1512 at d98e8a6; the trained path saves the rank's un-gathered input, line 604);
PyTorch's ``linear`` saves its input only when the weight needs a gradient. So of
Korthikanti's terms a frozen base drops the query, key and value's input (p·s·b·h), the
output projection's (p·s·b·a·d/t), the MLP's input (p·s·b·h) and the down projection's
(the product of a gated MLP, or the activation's output, p·s·b·F/t). Everything else is
kept: the norms', softmax's, dropout's, the activation's and the attention's own tensors
are what the gradient needs on its way back to the adapters of the layers before.

**Each adapter keeps** (peft's ``LoraParallelLinear.forward``, tuners/lora/tp_layer.py
of peft 0.21.2, and ``lora.Linear.forward`` at one rank: ``lora_B(lora_A(dropout(x)))``,
dropout 0 an ``nn.Identity``):

- lora_A's input, the layer's input cast to the adapters' float32 (peft's
  ``_cast_input_dtype``; ``LoraParallelLinear`` forces ``params_dtype`` to float32): a
  copy of 4 bytes a number for each adapted layer when the activations are 16-bit, else
  the layer's input itself, one tensor for the layers that share it. A column-parallel
  layer's lora_A is whole and runs on the rank's tokens (s/t of them with sequence
  parallelism: the base gathers its own); a row-parallel layer's lora_A is a
  RowParallelLinear on the rank's a·d/t or F/t inputs;
- lora_A's output, r wide, float32: lora_B's input (a ColumnParallelLinear keeps the
  un-gathered s/t·b·r with sequence parallelism; a row-parallel lora_A's output is
  reduced, or reduce-scattered to s/t, before the whole lora_B);
- DoRA (peft's ``DoraLinearLayer.forward``, tuners/lora/dora.py; at one tensor-parallel
  rank, as ``LoraParallelLinear`` refuses DoRA): the detached weight norm, m/‖·‖ and
  m/‖·‖ − 1 (float32, one per output each), the base layer's output (p) and the
  adapter's (float32); on transformers' Conv1D with float32 activations also W + s·B·A,
  (out, in) float32 (peft's ``transpose`` makes a Parameter's transpose a Parameter,
  so the norm keeps its input).

At one rank (no tensor, pipeline, context or expert parallelism) the adapters' tensors
are the single-device account's (:class:`shapecalc.adapt.lora.Lora`'s, whose lora_A
input is a :attr:`~shapecalc.core.spec.Stored.cast` tensor); the tests compare the two.

In a mixture's layer with its experts frozen (LoRA on the attention or the shared expert)
the router's input (the MLP's input), each visit's gathered token (the experts' matmul's
input) and product (their down projection's) and the shared expert's product go; what
transformers' eager Mixtral and Qwen2-MoE layers keep then, with peft, is checked in the
tests. LoRA on a mixture's parameters (peft's ``ParamWrapper``), on a Mamba-2 mixer or on
linear attention is refused in one line.

A token embedding with an adapter keeps the token ids and lora_A's lookup (float32, r
wide); a frozen one keeps nothing, nor does the dropout after it. The first layer is
counted as the others, as the single-device account counts it: ahead of its first adapter
no gradient flows and autograd keeps less there. The adapters compute in their float32
(peft's default, and Megatron's bf16 model with LoraParallelLinear's float32 adapters); a
mixed-precision policy that casts them to 16 bits (FSDP2's ``param_dtype``) would keep the
shared 16-bit input and a 16-bit output instead, which is not told apart here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shapecalc.analysis.parallel_plan import ParallelPlan, plan_error
from shapecalc.core.dims import known
from shapecalc.core.model import Layer, Model

__all__ = ["EXPLAIN", "Adapter", "LoraRuns", "adapted", "lora_runs"]

#: the ``--explain`` rule of a LoRA model's per-rank activations
EXPLAIN = (
    "LoRA's activations per rank: Korthikanti's terms of the frozen base without its linear"
    " layers' inputs (a frozen weight needs no gradient: Megatron's LinearWithFrozenWeight"
    " saves the weight alone), and each adapter's own: lora_A's input in float32 (a copy"
    " per adapted layer at 16 bits, s/t tokens of a column-parallel layer with sequence"
    " parallelism, a·d/t or F/t features of a row-parallel one), lora_A's output (float32,"
    " r wide), DoRA's norm, scales and outputs (and W + s·B·A on a Conv1D at float32), as"
    " the single-device account counts them; a frozen embedding keeps no token ids;"
    " the first layer counted as the others."
)

#: bytes of an adapter's number: peft keeps the adapters in float32 (autocast_adapter_dtype;
#: LoraParallelLinear's ``megatron_config.params_dtype = torch.float32``)
ADAPTER_BYTES = 4
#: the Korthikanti term that is the input of each group of linear layers: (the term, the
#: roles whose input it is, the part of the term that is that input)
_INPUTS = {
    "attention's input": ("query", "key", "value", "query, key and value"),
    "attention output": ("output projection",),
    "MLP's input": ("gate", "up", "gate and up"),
}
_DOWN = ("down",)
#: a mixture's layer: what reads the MLP's input (the router, the experts' gathered
#: tokens, the shared expert and its sigmoid gate), and the shared expert's down
#: projection, whose input is its product
_MIXTURE_INPUT = (
    "router", "experts", "shared expert gate", "shared expert up", "shared expert's sigmoid gate",
)  # fmt: skip
_SHARED_DOWN = ("shared expert down",)
_KNOWN = frozenset(
    {*(r for roles in _INPUTS.values() for r in roles), *_DOWN, *_MIXTURE_INPUT, *_SHARED_DOWN}
)


@dataclass(frozen=True)
class Adapter:
    """How one layer of a run trains: ``frozen``, ``trained`` (a module of
    ``modules_to_save``), ``lora`` (its rank, DoRA) or ``param`` (LoRA on a mixture's
    parameters, peft's ParamWrapper)."""

    state: str
    r: int = 0
    dora: bool = False
    #: output features of the whole layer (DoRA's per-output tensors)
    out: int = 0
    #: input features, and whether the layer is transformers' Conv1D (DoRA on it keeps
    #: W + s·B·A at float32 activations: peft's transpose makes it a Parameter)
    inp: int = 0
    conv1d: bool = False


def adapted(model: Model) -> bool:
    """Whether ``model`` is a LoRA model (peft's frozen base with adapters)."""
    return any(
        type(layer.spec).__name__ in ("Lora", "Frozen", "ParamLora") for layer in model.layers
    )


#: one kept tensor: what it is, its bytes as a formula, its bytes (model_parallel's
#: ActivationLine takes the three; this module does not import it, which imports this)
Line = tuple[str, str, int]


def _line(what: str, formula: str, value: int) -> Line:
    return (what, formula, value)


def _adapter(layer: Layer) -> Adapter:
    spec: Any = layer.spec
    kind = type(spec).__name__
    if kind == "Lora":
        out = inp = 0
        for p in spec.params():
            if p.name == "lora_B.default.weight":
                out = known(p.shape[0]) or 0
            if p.name == "lora_A.default.weight":
                inp = known(p.shape[1]) or 0
        base = spec.layer
        base = base.layer if base.kind == "Quantized" else base
        conv1d = base.kind == "Conv1D"
        return Adapter("lora", known(spec.r) or 0, bool(spec.dora), out, inp, conv1d)
    if kind == "Saved":
        return Adapter("trained")
    if kind == "Frozen":
        return Adapter("frozen")
    if kind == "ParamLora":
        return Adapter("param")
    return Adapter("trained")


@dataclass(frozen=True)
class LoraRuns:
    """Each run's linear layers by role, and the embedding's and the head's state."""

    model: Model
    #: the layer numbers of a run -> role -> its adapter state
    runs: dict[tuple[int, ...], dict[str, Adapter]]
    embedding: Adapter
    head: Adapter

    def layer(
        self, numbers: list[tuple[int, ...]], dense: tuple[Line, ...], shape: Any,
        plan: ParallelPlan, s: int, b: int, p: int,
    ) -> tuple[Line, ...]:  # fmt: skip
        """One layer's kept tensors for one micro-batch on one rank: the dense ``lines``
        (Korthikanti's, :func:`~shapecalc.analysis.model_parallel._layer_lines`) as the
        frozen base and its adapters keep them."""
        states = [self.runs[n] for n in numbers if n in self.runs]
        if any(st != states[0] for st in states):
            raise self._refuse(
                "--lora-targets", "runs of alike layers adapted differently are not told apart"
            )
        roles = states[0] if states else {}
        if plan.recompute == "full":  # each layer's input, the rest recomputed
            return dense
        for role, state in roles.items():
            if state.state == "lora" and role not in _KNOWN:
                raise self._refuse(
                    "--lora-targets",
                    f"an adapter on the {role} layer is outside Korthikanti's terms;"
                    " give --tp, --pp, --cp, --ep 1 and --recompute none or full",
                )
        if shape.mamba is not None or getattr(shape, "gdn", None) is not None:
            what = "a Mamba-2 mixer" if shape.mamba is not None else "linear attention"
            raise self._refuse(
                "--lora-targets",
                f"the per-rank activations of {what} under a frozen base are not"
                " derived here; give --tp, --pp, --cp, --ep 1 and --recompute none or full",
            )
        if any(state.state == "param" for state in roles.values()):
            raise self._refuse(
                "--lora-targets",
                "the per-rank activations of LoRA on a mixture's parameters (peft's"
                " ParamWrapper) are not derived here; give --tp, --pp, --cp, --ep 1 and"
                " --recompute none or full",
            )
        t = plan.tp
        sp = t if plan.sequence_parallel else 1
        split = "/t" if sp > 1 else ""
        tp_ = "/t" if t > 1 else ""
        out: list[Line] = []
        widths = {
            "attention's input": (shape.h, s // sp, split, "h"),
            "attention output": (shape.a * shape.d // t, s, "", f"a·d{tp_}"),
            "MLP's input": (shape.h, s // sp, split, "h"),
            "down": (shape.f // t, s, "", f"F{tp_}"),
        }
        trained_experts = roles.get("experts", Adapter("frozen")).state == "trained"
        for line in dense:
            if line[0] == "MLP's input" and shape.experts:
                width = widths[line[0]]
                out.extend(_group(line[0], line, _MIXTURE_INPUT, roles, width, p, b))
                continue
            if line[0].startswith("tokens, experts' outputs") and not trained_experts:
                # the token each visit gathers is the experts' matmul's input alone
                each = line[2] // 3
                form = line[1].replace("3·", "2·", 1)
                out.append(_line("experts' outputs, weighted (per visit)", form, 2 * each))
                continue
            if line[0].startswith("gate and up outputs, SiLU") and not trained_experts:
                each = line[2] // 4  # the product: the down projection's input
                form = line[1].replace("4·", "3·", 1)
                out.append(_line("gate and up outputs, SiLU (per visit)", form, 3 * each))
                continue
            if line[0] == "shared expert: gate, up, SiLU, product":
                each = line[2] // 4
                form = line[1].replace("4·", "3·", 1)
                out.append(_line("shared expert: gate, up, SiLU", form, 3 * each))
                product = _line("shared expert's product", f"p·s·b·S{tp_}", each)
                width = (shape.shared_f // t, s, "", f"S{tp_}")
                out.extend(_group("shared expert down's input", product, _SHARED_DOWN, roles,
                                  width, p, b))  # fmt: skip
                continue
            if line[0] in _INPUTS:
                width = widths[line[0]]
                out.extend(_group(line[0], line, _INPUTS[line[0]], roles, width, p, b))
                continue
            if line[0] in ("gate and up outputs, product", "activation's input and output"):
                gated = line[0].startswith("gate")
                kept = 2 if gated else 1
                each = line[2] // (3 if gated else 2)
                what = "gate and up outputs" if gated else "activation's input"
                form = f"{kept}·p·s·b·F{tp_}" if gated else f"p·s·b·F{tp_}"
                out.append(_line(what, form, each * kept))
                product = _line(
                    "the product" if gated else "activation's output", f"p·s·b·F{tp_}", each
                )
                out.extend(_group("down projection's input", product, _DOWN, roles,
                                  widths["down"], p, b))  # fmt: skip
                continue
            out.append(line)
        for role, state in roles.items():
            if state.state == "lora":
                rows = s // sp
                out.append(
                    _line(
                        f"{role}: lora_A's output (float32)",
                        f"4·s·b·r{split}",
                        ADAPTER_BYTES * rows * b * state.r,
                    )
                )
                if state.dora:
                    if t > 1:  # LoraParallelLinear refuses DoRA; rank_parameters says so
                        raise plan_error(
                            "--tp", t, "peft's LoraParallelLinear does not support DoRA"
                        )
                    n = state.out
                    tokens = s * b  # one tensor-parallel rank: no sequence split
                    out.append(_line(f"{role}: DoRA's norm, m/‖·‖, m/‖·‖ − 1",
                                              "3·4·out", 3 * ADAPTER_BYTES * n))  # fmt: skip
                    out.append(_line(f"{role}: DoRA's base output", "p·s·b·out",
                                              p * tokens * n))  # fmt: skip
                    out.append(_line(f"{role}: DoRA's adapter output (float32)",
                                              "4·s·b·out", ADAPTER_BYTES * tokens * n))  # fmt: skip
                    if state.conv1d and p == ADAPTER_BYTES:
                        out.append(_line(f"{role}: DoRA's W + s·B·A (float32)", "4·out·in",
                                         ADAPTER_BYTES * n * state.inp))  # fmt: skip
        return tuple(out)

    def ends(
        self, ends: list[Line], plan: ParallelPlan, s: int, b: int, p: int, in_flight: int,
        h: int,
    ) -> list[Line]:  # fmt: skip
        """The embedding's and the head's kept tensors as the frozen base and its
        adapters keep them."""
        t = plan.tp
        sp = t if plan.sequence_parallel else 1
        split = "/t" if sp > 1 else ""
        out: list[Line] = []
        embedding = self.embedding
        for line in ends:
            if line[0] in ("token ids (int64)", "embedding dropout mask"):
                if embedding.state == "frozen":
                    continue  # no gradient: the lookup and its dropout keep nothing
                out.append(line)
            elif line[0] == "head's input":
                head = line
                out.extend(_group("head's input", head, ("head",), {"head": self.head},
                                  (h, s // sp, split, "h"), p, b))  # fmt: skip
                if self.head.state == "lora":
                    out.append(_line("head: lora_A's output (float32)",
                        f"4·s·b·r{split}", ADAPTER_BYTES * s // sp * b * self.head.r))  # fmt: skip
            else:
                out.append(line)
        if embedding.state == "lora":
            out.append(
                _line(
                    "embedding: lora_A's lookup (float32)",
                    "4·s·b·r per micro-batch",
                    ADAPTER_BYTES * s * b * embedding.r * in_flight,
                )
            )
            if embedding.dora:
                raise self._refuse("--lora-targets", "DoRA on an embedding is not derived here")
        return out

    def _refuse(self, flag: str, rule: str) -> Exception:
        from shapecalc.core.errors import InvalidArgumentError

        return InvalidArgumentError(
            f"{flag}: LoRA on {self.model.name}: {rule}",
            layer="parallel",
            field=flag,
            value=self.model.name,
            rule=rule,
        )


def _group(
    what: str, line: Line, roles: tuple[str, ...], states: dict[str, Adapter],
    width: tuple[int, int, str, str], p: int, b: int,
) -> list[Line]:  # fmt: skip
    """The input of a group of linear layers (``roles``) that ``line`` counts: kept when one
    of them is trained, else dropped; and each adapter's lora_A input: that same tensor
    when the activations are float32, else a float32 copy of its own."""
    features, rows, split, letter = width
    here = [states[r] for r in roles if r in states]
    trained = any(st.state == "trained" for st in here)
    lora = [r for r in roles if r in states and states[r].state == "lora"]
    out: list[Line] = []
    if trained:
        out.append(line)
    if lora and p == ADAPTER_BYTES and not trained:
        out.append(_line(f"{what} (lora_A's input)", line[1], line[2]))
    elif lora and p != ADAPTER_BYTES:
        out.append(
            _line(
                f"{what} in float32 for {len(lora)} lora_A",
                f"{len(lora)}·4·s·b·{letter}{split}",
                len(lora) * ADAPTER_BYTES * rows * b * features,
            )
        )
    return out


def lora_runs(model: Model, role_of: Callable[[Layer], str]) -> LoraRuns:
    """The adapter state of each run's linear layers (by their part, ``role_of``: model
    parallelism's reading of a layer's role), the embedding's and the head's."""
    from shapecalc.analysis.cost import layer_part

    runs: dict[tuple[int, ...], dict[str, Adapter]] = {}
    embedding, head = Adapter("frozen"), Adapter("frozen")
    for layer in model.layers:
        state = _adapter(layer)
        if model.head and layer.name == model.head:
            head = state
            continue
        if layer.role == "token embedding":
            embedding = state
            continue
        _, numbers = layer_part(layer.name)
        if numbers is None:
            continue
        key = (numbers,) if isinstance(numbers, int) else tuple(numbers)
        runs.setdefault(key, {})[role_of(layer)] = state
    return LoraRuns(model, runs, embedding, head)
