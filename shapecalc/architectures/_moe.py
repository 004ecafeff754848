"""What DeepSeek's mixture of experts shares with the models that copy it (GLM-4.5): a few
dense layers first, then in every layer a router choosing the top k of E routed experts for
each token, beside shared experts that every token goes through. ``deepseek.py`` and
``glm4_moe.py`` build their blocks with :class:`SharedExpertsLM`; the names are those
``transformers`` gives them (``mlp.experts``, ``mlp.gate``, ``mlp.shared_experts``).
"""

from __future__ import annotations

from typing import Any

from shapecalc.architectures._transformer import TransformerLM, check_top_k
from shapecalc.core.choices import EXPERT_LAYOUTS
from shapecalc.core.declare import Built, choice, size
from shapecalc.core.dims import Dim, count_str, dim_str, known, shape_str
from shapecalc.core.errors import InvalidArgumentError
from shapecalc.core.flow import chain, multiply, parallel, residual, summed
from shapecalc.core.model import Model
from shapecalc.core.tree import Block, Leaf, Repeat, part_holds, split_name
from shapecalc.layers._activation import SiLU
from shapecalc.layers._embedding import Embedding
from shapecalc.layers._experts import Experts, TopkRouter
from shapecalc.layers._linear import Linear
from shapecalc.layers._norm import LlamaRMSNorm

__all__ = [
    "SharedExpertsLM",
    "dense_layers",
    "expert_groups",
    "experts",
    "experts_per_token",
    "gated_mlp",
    "moe_intermediate",
    "moe_layout",
    "mtp_notes",
    "shared_experts",
    "topk_groups",
]

#: the config fields of the mixture every member reads alike
MOE_KEYS: dict[str, str] = {
    "moe_intermediate": "moe_intermediate_size",
    "experts": "n_routed_experts",
    "experts_per_token": "num_experts_per_tok",
    "shared_experts": "n_shared_experts",
    "dense_layers": "first_k_dense_replace",
    "expert_groups": "n_group",
    "topk_groups": "topk_group",
}


def mtp_notes(config: Any, arguments: Any) -> list[str]:
    """Notes on what a config says its checkpoint holds beyond the model (the
    multi-token prediction layers) and on fields transformers does not read."""
    lines = []
    mtp = config.get("num_nextn_predict_layers", config.get("num_mtp_layers"))
    if isinstance(mtp, int) and not isinstance(mtp, bool) and mtp > 0:
        lines.append(
            f"num_nextn_predict_layers {mtp}: the checkpoint holds {mtp} multi-token "
            f"prediction layer(s) after the last (model.layers.{arguments['layers']}...), which "
            "transformers does not load and this count leaves out"
        )
    freq = config.get("moe_layer_freq")
    if freq not in (None, 1):
        lines.append(
            f"moe_layer_freq {freq}: transformers does not read it (every layer from "
            "first_k_dense_replace on has experts), nor does this count"
        )
    return lines


def moe_intermediate() -> Any:
    return size("M", "Each expert's intermediate size (moe_intermediate_size).")


def experts() -> Any:
    return size("E", "Routed experts per mixture layer (n_routed_experts).", solvable=False)


def experts_per_token() -> Any:
    return size("k", "Routed experts each token is sent to (num_experts_per_tok).", solvable=False)


def shared_experts() -> Any:
    return size(
        "Ns",
        "Shared experts, which every token goes through: one MLP of moe_intermediate · "
        "n_shared_experts (n_shared_experts).",
        1,
        solvable=False,
    )


def dense_layers(default: int) -> Any:
    return size(
        "F",
        "The first layers with a dense MLP instead of experts (first_k_dense_replace).",
        default,
        minimum=0,
        names=False,
        solvable=False,
    )


def expert_groups() -> Any:
    return size(
        "G",
        "Groups of experts for group-limited routing (n_group); unset: no groups.",
        None,
        unset=None,
        solvable=False,
        names=False,
    )


def topk_groups() -> Any:
    return size(
        "Gk",
        "Groups a token's experts are chosen from (topk_group).",
        None,
        unset=None,
        solvable=False,
        names=False,
    )


def moe_layout() -> Any:
    return choice(
        EXPERT_LAYOUTS,
        "How the routed experts are named: as transformers 5 holds them (experts."
        "gate_up_proj, experts.down_proj), or as checkpoint files store them "
        "(experts.{e}.gate_proj.weight, ...).",
        "fused",
    )


def gated_mlp(hidden: Dim, inner: Dim, *, bias: bool = False, what: str = "gated MLP") -> Block:
    """``down_proj(SiLU(gate_proj(x)) · up_proj(x))``, as transformers' ``*MLP``."""
    children = {
        "gate_proj": Leaf(Linear(hidden, inner, bias=bias), role="gate"),
        "up_proj": Leaf(Linear(hidden, inner, bias=bias), role="up"),
        "down_proj": Leaf(Linear(inner, hidden, bias=bias), role="down"),
    }
    flow = chain(multiply(("gate_proj", SiLU()), "up_proj"), "down_proj")
    return Block("MLP", children, flow=flow, description=what)


class SharedExpertsLM(TransformerLM):
    """A decoder whose first ``dense_layers`` layers have a dense MLP of intermediate size
    I and the others a mixture: routed experts, a router and shared experts."""

    moe_intermediate: Dim
    experts: Dim
    experts_per_token: Dim
    shared_experts: Dim
    dense_layers: int
    expert_groups: int | None
    topk_groups: int | None
    moe_layout: str

    #: the router holds DeepSeek-V3's e_score_correction_bias (and routes by sigmoid)
    correction_bias: bool = True
    #: the MLPs' biases (DeepSeek-V2's mlp_bias); the routed experts never have any
    mlp_bias: bool = False

    # -- the tree -------------------------------------------------------------------------
    def _attention(self) -> Block:
        """The family's attention block."""
        raise NotImplementedError

    def _layer(self, mlp: Block) -> Block:
        """A decoder layer: RMSNorm and attention, RMSNorm and ``mlp``, each residual."""
        h = self.hidden
        children: dict[str, Any] = {
            "self_attn": self._attention(),
            "mlp": mlp,
            "input_layernorm": LlamaRMSNorm(h),
            "post_attention_layernorm": LlamaRMSNorm(h),
        }
        flow = chain(
            residual("input_layernorm", "self_attn"),
            residual("post_attention_layernorm", "mlp"),
        )
        return Block("DecoderLayer", children, flow=flow)

    def build(self) -> Built:
        """The token embedding, the dense layers then the mixture layers, a final RMSNorm
        and the head."""
        h, v = self.hidden, self.vocab
        inner: Any = self.intermediate  # the families require it
        dense = self._layer(gated_mlp(h, inner, bias=self.mlp_bias))
        body = Block(
            "Model",
            {
                "embed_tokens": Leaf(Embedding(v, h), "one H-vector per token", "token embedding"),
                "layers": self.stack(dense, self._layer(self.mixture())),
                "norm": Leaf(LlamaRMSNorm(h), role="final norm"),
            },
            flow=chain("embed_tokens", "layers", "norm"),
        )
        return self.causal_lm("ForCausalLM", "model", body, "embed_tokens", "head")

    # -- checks ---------------------------------------------------------------------------
    def _refuse(self, field: str, value: Any, rule: str, detail: str) -> None:
        raise InvalidArgumentError(
            f"{rule} ({detail})", layer=self.owner(), field=field, value=value, rule=rule
        )

    def check_experts(self) -> None:
        """transformers' rules for the mixture: k of E, the dense layers within the stack,
        the groups dividing the experts."""
        e = known(self.experts)
        check_top_k(self.owner(), self.experts, self.experts_per_token)
        layers = known(self.layers)
        if layers is not None and self.dense_layers > layers:
            self._refuse(
                "dense_layers",
                self.dense_layers,
                "dense_layers <= layers (the first layers are dense)",
                f"{self.dense_layers} > {layers}",
            )
        g, gk = self.expert_groups, self.topk_groups
        if (g is None) != (gk is None):
            self._refuse(
                "topk_groups" if g is not None else "expert_groups",
                gk if g is not None else g,
                "expert_groups and topk_groups are set together (group-limited routing)",
                "one is unset",
            )
        if g is None or gk is None:
            return
        if gk > g:
            self._refuse(
                "topk_groups", gk, "topk_groups <= expert_groups (groups chosen)", f"{gk} > {g}"
            )
        if e is not None and e % g:
            self._refuse(
                "expert_groups",
                g,
                "expert_groups must divide experts (each group an equal share)",
                f"{e} % {g} = {e % g}",
            )
        if self.correction_bias and e is not None and e // g < 2:
            self._refuse(
                "expert_groups",
                g,
                "experts / expert_groups >= 2 (a group scores by its two best experts)",
                f"{e} / {g} = {e // g}",
            )

    @classmethod
    def consistent_experts(cls, out: dict[str, Any]) -> dict[str, Any]:
        """Drawn arguments made to agree: k of E, the dense layers within the stack, groups
        that divide the experts, two experts or more per group."""
        # fewer dense layers than mixture layers, as published models have them (the
        # mixture's run is then the longest, with the layers as a number or a letter)
        out["dense_layers"] = min(out["dense_layers"], (out["layers"] - 1) // 2)
        g, gk = out.get("expert_groups"), out.get("topk_groups")
        if g is None or gk is None:
            out["expert_groups"] = out["topk_groups"] = None
        else:
            least = 2 if out.get("correction_bias", cls.correction_bias) else 1
            out["experts"] = max(out["experts"], least)
            g = max(1, min(g, out["experts"] // least))
            out["experts"] -= out["experts"] % g
            out["expert_groups"], out["topk_groups"] = g, min(gk, g)
        out["experts_per_token"] = min(out["experts_per_token"], out["experts"])
        return out

    # -- the tree -------------------------------------------------------------------------
    def mixture(self) -> Block:
        """``mlp`` of a mixture layer: the routed experts, the router (``gate``) and the
        shared experts, summed."""
        h, m = self.hidden, self.moe_intermediate
        routed = Experts(
            self.experts,
            h,
            m,
            self.experts_per_token,
            layout=self.moe_layout,
            naming="gated",
        )
        router = TopkRouter(h, self.experts, correction_bias=self.correction_bias)
        children = {
            "experts": Leaf(routed, role="routed experts"),
            "gate": Leaf(router, "a score per expert", "router"),
            "shared_experts": gated_mlp(
                h, m * self.shared_experts, bias=self.mlp_bias, what="shared experts"
            ),
        }
        flow = summed(chain(parallel((), "gate"), "experts"), "shared_experts")
        what = (
            f"{dim_str(self.experts)} routed experts, {dim_str(self.experts_per_token)} per "
            f"token, and {dim_str(self.shared_experts)} shared"
        )
        return Block("MoE", children, flow=flow, description=what)

    def stack(self, dense: Block, mixture: Block) -> Block:
        """``layers``: the first ``dense_layers`` with ``dense``, the rest with
        ``mixture``, numbered as transformers' ModuleList numbers them."""
        first = self.dense_layers
        entries: list[Repeat] = []
        if first:
            entries.append(Repeat(dense, first))
        rest = self.layers - first
        if known(rest) != 0:
            entries.append(Repeat(mixture, rest, start=first))
        return Block("ModuleList", tuple(entries))

    # -- explanation ----------------------------------------------------------------------
    def blocks(self, model: Model, stack: str) -> list[tuple[str, list[str]]]:
        """Every matrix of the first block, and of the first mixture block when the first
        is dense (``stack``: the layers' full name)."""
        out = [("Every matrix of the first block", self.block_lines(model, stack))]
        if not self.dense_layers or known(self.layers) == self.dense_layers:
            return out
        prefix = split_name(stack)
        lines = []
        for row in model.rows():
            parts = split_name(row.name)
            if parts[: len(prefix)] != prefix or len(parts) <= len(prefix) + 1:
                continue
            if not part_holds(parts[len(prefix)], self.dense_layers):
                continue
            one, formula = row.param.size, row.template.size
            same = count_str(one) == dim_str(formula)
            lines.append(
                f"{'.'.join(parts[len(prefix) + 1 :])} {shape_str(row.shape)}: {count_str(one)}"
                + ("" if same else f" = {dim_str(formula)}")
                + f" ({row.role})"
            )
        return [*out, ("Every matrix of a mixture block", lines)]

    def expert_lines(self) -> list[str]:
        """What the experts are, the shared experts, and why active and total differ."""
        h, m, e, k = self.hidden, self.moe_intermediate, self.experts, self.experts_per_token
        s = self.shared_experts
        one = 3 * h * m
        lines = [
            f"The first {self.dense_layers} layer(s) have a dense MLP of I = "
            f"{dim_str(self.inner)}; every later layer has a mixture of experts instead.",
            f"A routed expert is a small gated MLP of M = {dim_str(m)}: gate and up map H to "
            f"M, down maps M back, 3·H·M = {count_str(one)} numbers. Each mixture layer has "
            f"E = {dim_str(e)} of them; the router (gate, E × H) scores them for each token "
            f"and sends it to the k = {dim_str(k)} best"
            + (
                f", chosen within the {self.topk_groups} best of {self.expert_groups} groups"
                if self.expert_groups is not None
                else ""
            )
            + ".",
            f"The shared experts are one gated MLP of M · Ns = {dim_str(m * s)} that every "
            "token goes through, beside the routed ones: knowledge every token needs, kept "
            "out of the routed experts.",
        ]
        if self.correction_bias:
            lines.append(
                "The router's e_score_correction_bias (a buffer of E, not a parameter) is added "
                "to the scores to choose experts, not to weigh them: it balances the load "
                "without an auxiliary loss."
            )
        return lines
