"""The experts of a mixture-of-experts MLP and the router of DeepSeek-V3's and GLM-4.5's
mixtures, apart from :mod:`shapecalc.layers.transformers`' other layers, so that a model
of these loads only what it builds. Import them from :mod:`shapecalc.layers.transformers`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

from shapecalc.core.choices import EXPERT_LAYOUTS
from shapecalc.core.dims import Dim, dim_str, known, product
from shapecalc.core.frozen import frozen
from shapecalc.core.spec import LayerSpec, Param, Shape, Stored, Work
from shapecalc.layers._shapes import check_features, one_input

__all__ = ["EXPERT_NAMES", "Experts", "TopkRouter", "grouped_moments"]

#: how checkpoint files name one expert's three matrices, in the order they list them:
#: (name, which projection)
EXPERT_NAMES: dict[str, tuple[tuple[str, str], ...]] = {
    "numbered": (("w1", "gate"), ("w2", "down"), ("w3", "up")),
    "gated": (("gate_proj", "gate"), ("up_proj", "up"), ("down_proj", "down")),
}


def grouped_moments(
    visits: Dim, hidden: Dim, experts: Dim, gating: Dim, weighting: Dim
) -> tuple[tuple[Stored, ...], ...]:
    """The two fullest moments inside transformers 5's default experts forward
    (``grouped_mm_experts_forward`` in ``transformers/integrations/moe.py``), every visit (a
    token at one of its top_k experts) a row, each local kept until the call returns:
    the routing (the sorted expert ids and their order, int64; the weights gathered; the
    ids as 4-byte numbers for the count per expert, the counts and their running sum per
    expert), the tokens gathered per visit (visits, H), and either the gating (``gating``
    numbers per visit: the gate-up projection's output and the activation's temporaries)
    or the weighting (``weighting`` per visit: the down projection's output, it weighted,
    that back in token order, and the order's inverse, int64)."""
    routing = (
        Stored("sorted expert ids and their order per visit (int64)", (visits, 2), itemsize=8),
        Stored("routing weight per visit", (visits, 1)),
        Stored("the expert ids counted (4 bytes each)", (visits, 1), itemsize=4),
        Stored("tokens per expert and their running sum", (experts, 2), itemsize=4),
        Stored("the token gathered per visit", (visits, hidden)),
    )
    return (
        (*routing, Stored("the gate-up projection and its gating", (visits, gating))),
        (
            *routing,
            Stored("the inverse order (int64)", (visits, 1), itemsize=8),
            Stored("the experts' outputs, weighted, back in token order", (visits, weighting)),
        ),
    )


@frozen
class Experts(LayerSpec):
    """The experts of a mixture-of-experts MLP (Mixtral): ``num_experts`` SwiGLU MLPs
    of ``intermediate_size``, each token sent to ``top_k`` of them by the router.

    ``layout="fused"`` names them as ``transformers`` 5 builds them: ``gate_up_proj``
    (E, 2·I, H) and ``down_proj`` (E, H, I), with no ``.weight``; ``"checkpoint"`` as
    checkpoint files store them, each expert a module of its own, named as ``naming``
    says: Mixtral's ``{e}.w1.weight`` (I, H) the gate, ``{e}.w2.weight`` (H, I) the down
    and ``{e}.w3.weight`` (I, H) the up projection (``"numbered"``), or
    ``{e}.gate_proj.weight``, ``{e}.up_proj.weight`` and ``{e}.down_proj.weight``
    (``"gated"``: Qwen MoE, DeepSeek, GLM). The same numbers either way: 3·E·H·I.

    Inputs: the tokens (…, H) and the router's logits (…, E)."""

    num_experts: Dim
    hidden_size: Dim
    intermediate_size: Dim
    top_k: Dim = 2
    layout: str = "fused"
    naming: str = "numbered"

    kind: ClassVar[str] = "Experts"
    family: ClassVar[str] = "transformers"
    summary: ClassVar[str] = "the SwiGLU experts of a mixture of experts"
    size_fields: ClassVar[dict[str, int]] = {
        "num_experts": 1,
        "hidden_size": 1,
        "intermediate_size": 1,
        "top_k": 1,
    }

    def __post_init__(self) -> None:
        self._check_fields()
        self._check_choice("layout", EXPERT_LAYOUTS)
        self._check_choice("naming", tuple(EXPERT_NAMES))
        k, e = known(self.top_k), known(self.num_experts)
        if k is not None and e is not None and k > e:
            self._fail(
                "top_k",
                self.top_k,
                "top_k must be at most num_experts",
                f"{k} > {e}",
                "num_experts",
            )

    routed: ClassVar[bool] = True

    def active(self) -> Dim:
        """The top_k experts a token is sent to: 3·H·I each."""
        return self.top_k * 3 * self.hidden_size * self.intermediate_size

    def params(self) -> Iterator[Param]:
        e, h, i = self.num_experts, self.hidden_size, self.intermediate_size
        if self.layout == "fused":
            yield Param(
                "gate_up_proj",
                (e, 2 * i, h),
                f"every expert's gate and up projections, stacked: {dim_str(e)} × "
                f"(2 × {dim_str(i)} × {dim_str(h)})",
            )
            yield Param(
                "down_proj",
                (e, h, i),
                f"every expert's down projection: {dim_str(e)} × ({dim_str(h)} × {dim_str(i)})",
            )
            return
        n = known(e)
        numbers = range(n) if n is not None else None
        last = dim_str(e - 1).replace(" ", "")
        shapes = {"gate": (i, h), "up": (i, h), "down": (h, i)}
        for name, part in EXPERT_NAMES[self.naming]:
            shape = shapes[part]
            what = f"{part} projection" + (f" ({name})" if name[0] == "w" else "")
            yield Param(
                f"{{0..{last}}}.{name}.weight",
                shape,
                f"one expert's {what}, stored (out, in); one per expert, {dim_str(e)} experts",
                repeat=e,
                layers=numbers,
            )

    def output_shapes(self, *inputs: Shape) -> tuple[Shape, ...]:
        """The tokens (…, H) and the router's logits (…, E) -> (…, H)."""
        if len(inputs) != 2:
            self._fail_shape(f"takes the tokens and the router's logits, got {inputs}", inputs)
        tokens, logits = inputs
        check_features(self, tokens, -1, self.hidden_size, "hidden_size")
        check_features(self, logits, -1, self.num_experts, "num_experts")
        return (tokens,)

    def work(self, *inputs: Shape) -> Work:
        """Each token through top_k experts: 3·H·I MACs per expert it visits. Elementwise:
        the router's softmax (5 per logit) and top-k (1 per logit), SiLU (2) and the gate
        times up (1) per intermediate number, the weighted sum of the experts' outputs (2
        per output number and expert). Kept, as autograd keeps them in transformers' eager
        loop over the experts: the softmax of the logits and the top-k choices (int64);
        per visit (a token at one of its experts) the token gathered, the expert's output
        and its weighted output (3·H), the gate and up outputs, SiLU's output and the down
        projection's input (4·I), the routing weight, and the token's row and slot (int64)."""
        outputs = self.output_shapes(*inputs)
        tokens = product(inputs[0][:-1])
        visits = tokens * self.top_k
        h, i = self.hidden_size, self.intermediate_size
        return Work(
            outputs,
            macs=visits * 3 * h * i,
            other=tokens * 6 * self.num_experts + visits * (3 * i + 2 * h),
            other_rule="router softmax and top-k (6 per logit), SiLU and gate·up (3 per "
            "intermediate number), weighted sum (2 per output number and expert)",
            saved=(
                Stored("softmax of the router's logits", (tokens, self.num_experts)),
                Stored("the experts chosen", (tokens, self.top_k), itemsize=8),
                Stored(
                    "the token, the expert's output and the weighted output per visit",
                    (visits, 3 * h),
                ),
                Stored(
                    "gate, up, SiLU(gate) and the down projection's input per visit",
                    (visits, 4 * i),
                ),
                Stored("routing weight per visit", (visits, 1)),
                Stored("the token's row and slot per visit", (visits, 2), itemsize=8),
            ),
            moments=grouped_moments(visits, h, self.num_experts, 4 * i, 3 * h),
        )


@frozen
class TopkRouter(LayerSpec):
    """The router of a mixture whose gate holds more than a linear layer (DeepSeek-V3,
    GLM-4.5): ``weight`` (E, H), a score per expert for each token, and with
    ``correction_bias`` the buffer ``e_score_correction_bias`` (E,), added to the scores
    to choose the experts (not to weigh them), set by load balancing rather than trained.
    Output: the scores (…, E)."""

    hidden_size: Dim
    num_experts: Dim
    correction_bias: bool = True

    kind: ClassVar[str] = "TopkRouter"
    family: ClassVar[str] = "transformers"
    summary: ClassVar[str] = "a score per expert for each token"
    size_fields: ClassVar[dict[str, int]] = {"hidden_size": 1, "num_experts": 1}
    bool_fields: ClassVar[tuple[str, ...]] = ("correction_bias",)

    def __post_init__(self) -> None:
        self._check_fields()

    def params(self) -> Iterator[Param]:
        h, e = self.hidden_size, self.num_experts
        yield Param(
            "weight",
            (e, h),
            f"a score per expert: {dim_str(h)} in -> {dim_str(e)} out, stored (out, in)",
        )

    def buffers(self) -> Iterator[Param]:
        if self.correction_bias:
            yield Param(
                "e_score_correction_bias",
                (self.num_experts,),
                "added to each expert's score to choose, not to weigh: set by load "
                "balancing, not trained",
                trainable=False,
            )

    def output_shapes(self, *inputs: Shape) -> tuple[Shape, ...]:
        """(*, H) -> (*, E)."""
        shape = one_input(self, inputs)
        check_features(self, shape, -1, self.hidden_size, "hidden_size")
        return ((*shape[:-1], self.num_experts),)

    def work(self, *inputs: Shape) -> Work:
        """H·E MACs per token (the scores, in fp32 as transformers computes them)."""
        outputs = self.output_shapes(*inputs)
        return Work(
            outputs,
            macs=product(inputs[0][:-1]) * self.hidden_size * self.num_experts,
            saved=(Stored("input", inputs[0], of="input"),),
        )
