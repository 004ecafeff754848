"""What the transformer language models share: their sizes, the head arithmetic, and the
words of ``--explain``. ``gpt2.py``, ``llama.py``, ``gpt_neox.py`` and ``bert.py`` declare
one command each; the names of their tensors are those ``transformers`` gives them.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from shapecalc.core.declare import Architecture, Built, choice, layer_kinds, number, size
from shapecalc.core.dims import (
    Dim,
    as_size,
    count_str,
    dim_str,
    floor_div,
    known,
    shape_str,
    symbol,
)
from shapecalc.core.errors import InvalidArgumentError
from shapecalc.core.flow import chain
from shapecalc.core.hfmap import Reference
from shapecalc.core.model import Model
from shapecalc.core.tree import Block, Leaf, ModuleList, Node, cycle, runs, split_name
from shapecalc.layers._function import Select
from shapecalc.layers._linear import Linear

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from fractions import Fraction

__all__ = [
    "HEADS",
    "LABEL_KEYS",
    "NO_TOP_K_RULE",
    "SIZE_KEYS",
    "SLIDING_KINDS",
    "TOP_K_RULE",
    "TransformerLM",
    "WindowRule",
    "Windowed",
    "check_no_top_k",
    "check_top_k",
    "context",
    "dropout",
    "head_classes",
    "heads",
    "hidden",
    "intermediate",
    "labels",
    "layers",
    "listed_numbers",
    "lm_head",
    "rotary_fraction",
    "sliding_window",
    "vocab",
    "window_layer_types",
    "window_notes",
    "windowed_hooks",
]


#: the sizes every transformers decoder and encoder config names alike
SIZE_KEYS: dict[str, str] = {
    "vocab": "vocab_size",
    "hidden": "hidden_size",
    "layers": "num_hidden_layers",
    "heads": "num_attention_heads",
    "intermediate": "intermediate_size",
    "tie_weights": "tie_word_embeddings",
}


#: the rule between a mixture's experts and the experts each token is sent to, in every
#: architecture that has one
TOP_K_RULE = "experts_per_token <= experts (each token goes to the top k of the E experts)"


def check_top_k(owner: str, experts: Dim, top_k: Dim, *, default: bool = False) -> None:
    """Refuse more experts per token than experts (:data:`TOP_K_RULE`); ``default``: the
    user did not give experts_per_token (its default is what exceeds the experts), so the
    error names the experts and says the default is the other side."""
    e, k = known(experts), known(top_k)
    if e is None or k is None or e == 0 or k <= e:
        return
    if default:
        raise InvalidArgumentError(
            f"{TOP_K_RULE}: experts {e} < experts_per_token {k} (its default): give "
            f"--experts-per-token {e} or fewer, or {k} or more experts",
            layer=owner,
            field="experts",
            value=e,
            rule=TOP_K_RULE,
        )
    raise InvalidArgumentError(
        f"{TOP_K_RULE}: experts_per_token {k} > experts {e}",
        layer=owner,
        field="experts_per_token",
        value=k,
        rule=TOP_K_RULE,
    )


def window_notes(config: Any, arguments: Any) -> list[str]:
    """The note on sliding-window attention of a model read from a config: which layers
    slide (from the ``sliding_window`` and ``layer_types`` read), and what transformers'
    cache keeps there; none when no layer slides."""
    window, given, layers = (
        arguments.get("sliding_window"),
        arguments.get("layer_types") or (),
        arguments.get("layers"),
    )
    said: Any = config.get("sliding_window") if isinstance(config, dict) else None
    context: Any = config.get("max_position_embeddings") if isinstance(config, dict) else None
    if window is None and _is_count(said) and _is_count(context) and said > context:
        return [
            f"sliding_window {said:,} is longer than max_position_embeddings {context:,}: "
            "within that context no window fills, every layer keeps every position"
        ]
    if window is None or not isinstance(layers, int):
        return []
    kinds = given or ("sliding_attention",)  # one per layer, or a pattern repeated
    p = len(kinds)
    count = sum(
        -(-(layers - k) // p) for k, kind in enumerate(kinds) if kind == "sliding_attention"
    )
    shown = range(min(layers, 10_000))  # the numbers up to there (a pattern says the rest)
    sliding = [i for i in shown if kinds[i % p] == "sliding_attention"]
    if layers > len(shown) and len(sliding) > 1:
        step = sliding[1] - sliding[0]
        last = sliding[0] + step * (count - 1)
        sliding = [*sliding[:2], last - step, last] if p <= 2 and count > 3 else sliding[:8]
    which = "all" if count == layers else listed_numbers(sliding)
    kept = f"the last {window - 1:,} positions" if window > 1 else "every position"
    return [
        f"sliding_window {window:,}: {count:,} of the {layers:,} layers ({which}) attend "
        f"over the last {window:,} positions; transformers' cache keeps {kept} there, as the "
        "inference state counts"
    ]


def listed_numbers(numbers: list[int]) -> str:
    """``0, 2, ..., 22`` for a progression, else the numbers (the first eight)."""
    if len(numbers) > 3:
        step = numbers[1] - numbers[0]
        if all(b - a == step for a, b in itertools.pairwise(numbers)):
            return f"{numbers[0]}, {numbers[1]}, ..., {numbers[-1]}"
    shown = ", ".join(str(n) for n in numbers[:8])
    return shown + (", ..." if len(numbers) > 8 else "")


#: the rule that experts_per_token needs a mixture, in every architecture where experts may
#: be 0
NO_TOP_K_RULE = "experts_per_token needs experts"


def check_no_top_k(owner: str, experts: Dim, top_k: Dim | None) -> None:
    """Refuse experts per token without experts (:data:`NO_TOP_K_RULE`): with experts 0
    there is no router to choose among them."""
    if experts == 0 and top_k is not None:
        raise InvalidArgumentError(
            f"{NO_TOP_K_RULE}: it chooses among them (experts is 0)",
            layer=owner,
            field="experts_per_token",
            value=top_k,
            rule=NO_TOP_K_RULE,
        )


#: the task heads transformers builds around a decoder body: head -> the class's suffix
HEADS: dict[str, str] = {
    "seq-cls": "ForSequenceClassification",
    "token-cls": "ForTokenClassification",
    "qa": "ForQuestionAnswering",
}

#: the number of labels of a classification head (read only where the head uses it)
LABEL_KEYS: dict[str, str] = {"labels": "num_labels"}


def head_classes(
    prefix: str,
    *kinds: str,
    lm: str = "ForCausalLM",
    body: str = "Model",
    qa_body: str | None = None,
) -> dict[str, dict[str, Any]]:
    """The classes of a decoder type, from its prefix: ``{prefix}{lm}`` (the head scoring
    every token, the default class), ``{prefix}{body}`` and the task heads ``kinds`` (of
    :data:`HEADS`; ``*HEADS`` for all three). ``qa_body`` is the body's name under the
    question-answering class where the architecture lets it differ (Llama's ``transformer``,
    Mistral's ``model``).

        >>> list(head_classes("Olmo2", "seq-cls"))
        ['Olmo2ForCausalLM', 'Olmo2Model', 'Olmo2ForSequenceClassification']
    """
    out: dict[str, dict[str, Any]] = {prefix + lm: {"head": "lm"}, prefix + body: {"head": "none"}}
    for kind in kinds:
        out[prefix + HEADS[kind]] = {"head": kind}
        if kind == "qa" and qa_body is not None:
            out[prefix + HEADS[kind]]["qa_body"] = qa_body
    return out


def vocab() -> Any:
    return size("V", "Vocabulary size: tokens in and out.")


def hidden() -> Any:
    return size("H", "Hidden size (d_model): the length of every token's vector.")


def layers() -> Any:
    return size("L", "Number of transformer blocks (layers).")


def heads() -> Any:
    return size(
        "A",
        "Attention heads: the hidden size is split into this many heads of head_dim.",
        solvable=False,
    )


def intermediate(config: str, default_text: str = "4·H") -> Any:
    return size(
        "I", f"The MLP's inner size ({config}).", None, unset=None, default_text=default_text
    )


def dropout(config: str, default: float) -> Any:
    return number(
        f"Dropout of the embeddings, attention and residuals ({config}); it adds no parameters.",
        default,
        low=0,
        high=1,
        open_high=True,
    )


def lm_head(with_head: str, body: str, *kinds: str) -> Any:
    """The ``head`` choice of a decoder: lm, none, and the task heads ``kinds``."""
    tasks = (
        "; seq-cls: a score per label of the last token (ForSequenceClassification, reward "
        "models); token-cls: a score per label of every token (ForTokenClassification); "
        "qa: a start and an end score per token (ForQuestionAnswering)"
    )
    said = [part for part in tasks.split("; ")[1:] if part.split(":")[0] in kinds]
    return choice(
        ("lm", "none", *kinds),
        f"lm: the body and a head scoring every token ({with_head}); none: the body alone "
        f"({body}), as its checkpoints and embeddings-only uses hold it"
        + "".join(f"; {part}" for part in said)
        + ".",
        "lm",
    )


def labels() -> Any:
    return size(
        "N",
        "Labels of a classification head (num_labels, or the length of id2label; 1 for a "
        "reward model's score).",
        None,
        unset=None,
        default_text="2",
        solvable=False,
    )


def rotary_fraction(config: str, default: float) -> Any:
    return number(
        f"The fraction of each head's numbers turned by rotary positions ({config}).",
        default,
        low=0,
        high=1,
    )


def context(default: int, config: str) -> Any:
    return size(
        "C",
        f"Context length: the positions the position embedding holds ({config}).",
        default,
        solvable=False,
    )


class TransformerLM(Architecture):
    """A stack of L transformer blocks between a token embedding and a head."""

    vocab: Dim
    hidden: Dim
    layers: Dim
    heads: Dim
    intermediate: Dim | None

    explains: ClassVar[str] = (
        "Explain hidden size, heads, head_dim and intermediate size, every matrix of one "
        "block, and where the total comes from."
    )

    # -- the sizes worked out -----------------------------------------------------------
    @property
    def inner(self) -> Dim:
        """The MLP's intermediate size: given, or 4·H."""
        given: Dim = 4 * self.hidden if self.intermediate is None else self.intermediate
        return given

    def hf_values(self) -> dict[str, Any]:
        """The arguments as a config writes them: the intermediate size and the labels
        worked out."""
        out = {**super().hf_values(), "intermediate": self.inner}
        if "labels" in out:
            out["labels"] = self.n_labels
        return out

    def sizes(self) -> dict[str, Dim]:
        """The sizes given, and those worked out: D = H / A, I from H."""
        out = super().sizes()
        given = getattr(self, "head_dim", None)
        d = self.head_size(given)
        if given is None and known(d) is not None:
            out["D"] = d
        if self.intermediate is None and known(self.inner) is not None:
            out["I"] = self.inner
        return out

    @property
    def kv(self) -> Dim:
        """The key and value heads: kv_heads where the model has it, else one per query
        head."""
        given: Dim | None = getattr(self, "kv_heads", None)
        return self.heads if given is None else given

    # -- the model around the blocks -------------------------------------------------------
    #: the heads whose size is the number of labels
    label_heads: ClassVar[frozenset[str]] = frozenset({"seq-cls", "token-cls"})

    @property
    def with_head(self) -> bool:
        """The model ends in the head that scores every token (``head="lm"``)."""
        return getattr(self, "head", "lm") == "lm"

    @property
    def n_labels(self) -> Dim:
        """The labels of a classification head: given, or 2 (transformers' default)."""
        given = getattr(self, "labels", None)
        n: Dim = 2 if given is None else given
        return n

    def lm_class(self, with_head: str, body: str) -> str:
        """The transformers class of this model: ``with_head``, or ``body`` without it."""
        return with_head if self.with_head else body

    def body_name(self, base: str) -> str:
        """The body's name under the class with the head: ``base``, or the
        question-answering class's own (``qa_body``)."""
        if getattr(self, "head", "lm") == "qa":
            return str(getattr(self, "qa_body", base))
        return base

    def in_body(self, base: str, path: str) -> str:
        """The full name of the body's ``path``: under the body's name with a head, at the
        top without one."""
        if getattr(self, "head", "lm") == "none":
            return path
        return f"{self.body_name(base)}.{path}"

    def check_labels(self) -> None:
        """A number of labels is a classification head's."""
        head = getattr(self, "head", "lm")
        if getattr(self, "labels", None) is not None and head not in self.label_heads:
            listed = ", ".join(sorted(self.label_heads))
            rule = f"labels sizes a classification head ({listed})"
            raise InvalidArgumentError(
                f"{rule}; --head {head} has none",
                layer=self.owner(),
                field="labels",
                value=self.labels,  # type: ignore[attr-defined]
                rule=rule,
            )
        if getattr(self, "qa_body", "transformer") != "transformer" and head != "qa":
            rule = "qa_body names the body of the question-answering class (--head qa)"
            raise InvalidArgumentError(
                rule,
                layer=self.owner(),
                field="qa_body",
                value=self.qa_body,  # type: ignore[attr-defined]
                rule=rule,
            )

    def task_head(self, classifier: str = "score") -> tuple[str, Leaf, Any]:
        """The task head of ``head`` as transformers names it: (its name, the leaf, the
        step after it). seq-cls: ``score``, N × H without a bias, read at the last token;
        token-cls: ``classifier`` (N × H and a bias; ``score`` in the LLaMA-style
        families); qa: ``qa_outputs``, 2 × H and a bias (a start and an end score)."""
        h, n = self.hidden, self.n_labels
        head = getattr(self, "head", "lm")
        if head == "seq-cls":
            what = "a score per label, read at the last non-padding token"
            leaf = Leaf(Linear(h, n, bias=False), what, "classification head")
            return "score", leaf, Select(1)
        if head == "token-cls":
            leaf = Leaf(Linear(h, n), "a score per label for every token", "classification head")
            return classifier, leaf, ()
        if head == "qa":
            what = "a start and an end score for every token"
            return "qa_outputs", Leaf(Linear(h, 2), what, "answer span head"), ()
        raise InvalidArgumentError(
            f"no task head {head!r}", layer=self.owner(), field="head", value=head
        )

    def causal_lm(
        self,
        kind: str,
        base: str,
        body: Block,
        embedding: str,
        role: str,
        *,
        classifier: str = "score",
        bias: bool = False,
    ) -> Built:
        """``{base}`` (the body) then its head, named as transformers names them: with
        ``head="lm"``, ``lm_head``, a V × H head (with a bias with ``bias``), tied to the
        body's ``embedding`` with tie_weights (``*ForCausalLM``); with a task head, the
        head of :meth:`task_head` (``*ForSequenceClassification``, ...). With
        ``head="none"``, the body alone, its names at the top as ``*Model`` has them."""
        head = getattr(self, "head", "lm")
        if head == "none":
            return Built(body, input_layout=(("B", "T"),), group_depth=1)
        if head != "lm":
            base = self.body_name(base)
            name, leaf, after = self.task_head(classifier)
            suffix = HEADS.get(head, head)
            steps = (base, name) if after == () else (base, name, after)
            root = Block(suffix, {base: body, name: leaf}, flow=chain(*steps))
            return Built(root, input_layout=(("B", "T"),), group_depth=2)
        lm = Leaf(Linear(self.hidden, self.vocab, bias=bias), "a score per token", role)
        root = Block(kind, {base: body, "lm_head": lm}, flow=chain(base, "lm_head"))
        tied = getattr(self, "tie_weights", False)
        ties = {"lm_head.weight": f"{base}.{embedding}.weight"} if tied else {}
        return Built(root, ties=ties, input_layout=(("B", "T"),), group_depth=2, head="lm_head")

    def config_sizes(self) -> dict[str, Any]:
        """The sizes as a transformers config of the LLaMA, GPT-NeoX and BERT families
        names them (GPT-2's has names of its own)."""
        return {
            "vocab_size": self.vocab,
            "hidden_size": self.hidden,
            "num_hidden_layers": self.layers,
            "num_attention_heads": self.heads,
            "intermediate_size": self.inner,
        }

    # -- head arithmetic ----------------------------------------------------------------
    def _divides(self, field: str, whole: Dim, part: Dim, rule: str) -> None:
        a, b = known(whole), known(part)
        if a is not None and b is not None and a % b:
            named = rule.split(" must divide ", 1)[-1].split(" ", 1)[0]  # the whole's name
            got = f"{a} % {b} = {a % b}" if b < a else f"{field} may not exceed {named}: {b} > {a}"
            raise InvalidArgumentError(
                f"{rule} ({got})",
                layer=self.owner(),
                field=field,
                value=part,
                rule=rule,
            )

    def head_size(self, given: Dim | None = None) -> Dim:
        """The width of one head: ``given``, or hidden / heads; with the sizes as letters,
        the letter D."""
        if given is not None:
            return given
        h, a = known(self.hidden), known(self.heads)
        if h is not None and a is not None:
            return h // a
        return symbol("D")

    def check_heads(self, given: Dim | None = None) -> None:
        """Without a head_dim of its own, the heads split the hidden size evenly."""
        if given is None:
            self._divides(
                "heads", self.hidden, self.heads, "heads must divide hidden (head_dim = H / A)"
            )

    @staticmethod
    def turned(head: Dim, fraction: float) -> Dim:
        """The numbers of a head rotary positions turn, as transformers turns them: the
        table has ⌈n / 2⌉ frequencies, each turning a pair, for n = ⌊D · fraction⌋."""
        n = known(head)
        part = _fraction(fraction)
        if n is not None:  # exact for any size (a float would round a large head)
            return 2 * -(-(n * part.numerator // part.denominator) // 2)
        if fraction == 1:
            return head
        return floor_div(head * part.numerator, part.denominator)

    def check_turned(self, field: str, fraction: float) -> None:
        """The turned pairs fit in a head."""
        head = self.head_size(getattr(self, "head_dim", None))
        turned, d = known(self.turned(head, fraction)), known(head)
        if turned is not None and d is not None and turned > d:
            rule = f"the rotated pairs fit in a head: 2·⌈⌊head_dim · {field}⌋ / 2⌉ <= head_dim"
            raise InvalidArgumentError(
                f"rotary positions turn pairs of numbers: {turned} of a head of {d} ({rule})",
                layer=self.owner(),
                field=field,
                value=fraction,
                rule=rule,
            )

    def check_rotary(self, rotated: Dim, given: Dim | None = None) -> None:
        """Rotary positions turn pairs of numbers: the turned part of a head is even."""
        n = known(rotated)
        if n is not None and n % 2:
            field, value = ("head_dim", given) if given is not None else ("heads", self.heads)
            rule = "rotary positions turn pairs of numbers: the rotated head_dim must be even"
            got = f"got {n}"
            h, a = known(self.hidden), known(self.heads)
            if given is None and h is not None and a is not None and n == h // a:
                got = f"head_dim = {h} / {a} = {n}"
            raise InvalidArgumentError(
                f"{rule} ({got})", layer=self.owner(), field=field, value=value, rule=rule
            )

    @classmethod
    def multiple_for(cls, free: str, arguments: dict[str, Any]) -> int:
        """hidden: a multiple of the heads (when head_dim comes from them)."""
        heads = arguments.get("heads")
        if free == "hidden" and arguments.get("head_dim") is None and heads is not None:
            number = known(as_size(heads, owner=cls.owner(), field="heads"))
            return 1 if number is None else number
        return 1

    @classmethod
    def consistent(cls, arguments: dict[str, Any]) -> dict[str, Any]:
        """The hidden size a multiple of the heads (transformers' configs refuse others,
        even with a head_dim of their own)."""
        out = dict(arguments)
        out["hidden"] = out["heads"] * max(1, out["hidden"] // out["heads"])
        if out.get("head") not in cls.label_heads and "labels" in out:
            out["labels"] = None  # only a classification head has labels
        if out.get("head") != "qa" and "qa_body" in out:
            out["qa_body"] = "transformer"
        return out

    # -- explanation --------------------------------------------------------------------
    def mixture_lines(self, model: Model, experts: Dim, top_k: Dim) -> list[str]:
        """Why a mixture's active count differs from its total, in the model's numbers."""
        total, active = model.total, model.active
        share = ""
        if isinstance(total, int) and isinstance(active, int) and total:
            share = f" ({100 * active / total:.1f}% of them)"
        table = active - model.embeddings
        return [
            f"Each sparse layer holds {dim_str(experts)} experts, and its router (a score per "
            f"expert for each token) sends every token to {dim_str(top_k)} of them: a "
            f"token's forward uses {dim_str(top_k)} experts' weights, not "
            f"{dim_str(experts)}.",
            f"So the model holds {count_str(total)} parameters and one token uses "
            f"{count_str(active)}{share}: attention, norms, routers, dense and shared MLPs "
            f"whole, {dim_str(top_k)} of {dim_str(experts)} routed experts, and the embedding "
            "table and head whole (Mixtral's and Qwen's active figures count so).",
            "Published figures differ in what they leave out: without the embedding table, "
            f"which a token only looks up, {count_str(table)} (gpt-oss's and DeepSeek's "
            f"figures); without it and the head, {count_str(table - model.head_params)} "
            "(GLM's, and Qwen's non-embedding counts).",
            "FLOPs per token follow the active parameters (two per weight a token meets); "
            "weight memory follows the total, since any token may choose any expert and "
            "every expert must be loaded.",
        ]

    def block_lines(self, model: Model, block: str) -> list[str]:
        """Every matrix of one block (the first of the run ``block``): name, shape, count
        and formula."""
        prefix = split_name(block)
        lines: list[str] = []
        first = ""
        for row in model.rows():
            parts = split_name(row.name)
            if parts[: len(prefix)] == prefix and len(parts) > len(prefix) + 1:
                first = first or parts[len(prefix)]
                if parts[len(prefix)] != first:
                    continue
                inside = ".".join(parts[len(prefix) + 1 :])
                one = row.param.size
                formula = row.template.size
                same = count_str(one) == dim_str(formula)
                lines.append(
                    f"{inside} {shape_str(row.shape)}: {count_str(one)}"
                    + ("" if same else f" = {dim_str(formula)}")
                    + f" ({row.role})"
                )
        return lines


@functools.lru_cache(maxsize=256)
def _fraction(value: float) -> Fraction:
    """A fraction as its decimal reads (0.25 is 1/4), worked out once per value."""
    from fractions import Fraction  # with decimal: only for a fraction of a head turned

    return Fraction(str(value)).limit_denominator(10**6)


def kv_heads() -> Any:
    return size(
        "K",
        "Key and value heads, each shared by heads / kv_heads query heads (grouped-query "
        "attention; 1 is multi-query).",
        None,
        unset=None,
        default_text="A",
        solvable=False,
    )


def head_dim() -> Any:
    return size("D", "Width of one head.", None, unset=None, default_text="H / A", solvable=False)


class GroupedQueryLM(TransformerLM):
    """A decoder with rotary positions whose A query heads share K key and value heads,
    each head_dim (D) wide: H / A unless given."""

    kv_heads: Dim | None
    head_dim: Dim | None

    def _widths(self) -> tuple[Dim, Dim, Dim]:
        """(head_dim, the queries' width, the keys' and values' width)."""
        d = self.head_size(self.head_dim)
        if self.head_dim is None:  # A·D is H itself; K·D is H too without grouped queries
            kv_width = self.hidden if self.kv_heads is None else self.kv * d
            return d, self.hidden, kv_width
        return d, self.heads * d, self.kv * d

    def hf_values(self) -> dict[str, Any]:
        """The sizes as a config writes them: kv heads and head_dim worked out."""
        return {
            **super().hf_values(),
            "kv_heads": self.kv,
            "head_dim": self.head_size(self.head_dim),
        }

    @classmethod
    def multiple_for(cls, free: str, arguments: dict[str, Any]) -> int:
        """hidden: a multiple of twice the heads (an even head_dim, for rotary positions)."""
        step = super().multiple_for(free, arguments)
        return 2 * step if free == "hidden" and arguments.get("head_dim") is None else step

    @classmethod
    def consistent(cls, arguments: dict[str, Any]) -> dict[str, Any]:
        out = super().consistent(arguments)
        if out["head_dim"] is not None:  # rotary positions turn pairs
            out["head_dim"] += out["head_dim"] % 2
        elif out["hidden"] // out["heads"] % 2:
            out["hidden"] += out["heads"]
        if out["kv_heads"] is not None and out["heads"] % out["kv_heads"]:
            out["kv_heads"] = 1  # a divisor of every head count
        return out


def first_padding(model: Any, reference: Reference) -> Reference:
    """A ``write`` hook: the padding id 0, inside any vocabulary (a class's own default
    may lie outside a small one)."""
    config = {**reference.config, "pad_token_id": 0}
    return Reference(reference.model, reference.config_class, config, reference.options)


# -- sliding windows -----------------------------------------------------------------------
#: the layer kinds of a stack whose layers attend over the whole context or a window
SLIDING_KINDS = ("full_attention", "sliding_attention")
#: the most layers whose kinds a rule lists one by one (Qwen2's max_window_layers)
LISTED_KINDS = 4096


def sliding_window(default: int | None = None, default_text: str = "none") -> Any:
    """The sliding window (``sliding_window``): the positions a sliding layer attends to."""
    return size(
        "W",
        "Sliding-window attention: each sliding layer attends to the last W positions and "
        "transformers' cache keeps W − 1 of them there (sliding_window); every layer slides "
        "unless layer_types says which.",
        default,
        unset=None,
        names=False,
        solvable=False,
        default_text=default_text if default is None else "",
    )


def window_layer_types(rule: str = "every layer slides when sliding_window is given") -> Any:
    """Which layers slide (``layer_types``)."""
    return layer_kinds(
        SLIDING_KINDS,
        "Which layers attend over the sliding window (layer_types): full_attention or "
        "sliding_attention, one per layer or a pattern repeated from layer 0 "
        f"(sliding_attention,full_attention: every other layer); unless given, {rule}.",
    )


class Windowed:
    """A stack whose layers attend over the whole context or a sliding window: the
    arguments ``sliding_window`` and ``layer_types``, checked together, and the layers
    built as runs of the two kinds (a pattern stays a pattern for a symbolic L)."""

    layers: Dim
    sliding_window: int | None
    layer_types: tuple[str, ...]

    @classmethod
    def consistent(cls, arguments: dict[str, Any]) -> dict[str, Any]:
        """A drawn pattern no longer than the layers, and a window where a layer slides."""
        out: dict[str, Any] = super().consistent(arguments)  # type: ignore[misc]
        kinds = tuple(out.get("layer_types") or ()) or cls.default_pattern(out) or ()
        layers = out.get("layers")
        if kinds and isinstance(layers, int):
            out["layer_types"] = kinds = kinds[:layers]
            if len(set(kinds)) > 1:  # both kinds: runs of 2 or more, of equal length, as
                p = len(kinds)  # published stacks have them (the first the longest, with
                out["layers"] = max(2 * p, -(-layers // p) * p)  # L a number or a letter)
        if "sliding_attention" in kinds and out.get("sliding_window") is None:
            out["sliding_window"] = 4
        return out

    @classmethod
    def default_pattern(cls, arguments: Mapping[str, Any]) -> tuple[str, ...] | None:
        """The kinds when layer_types is not given: every layer sliding when there is a
        window (Mistral's rule), else None (all attend over the whole context); a family
        whose default differs (gpt-oss: every other layer) says so."""
        return ("sliding_attention",) if arguments.get("sliding_window") is not None else None

    def default_kinds(self) -> tuple[str, ...] | None:
        """:meth:`default_pattern` of this model's arguments."""
        return self.default_pattern({"sliding_window": self.sliding_window})

    def window_pattern(self) -> tuple[str, ...] | None:
        """The layer kinds as given or by the family's rule: one per layer, or a pattern
        repeated from layer 0; None when every layer attends over the whole context."""
        given = self.layer_types or self.default_kinds()
        if not given or all(k == "full_attention" for k in given):
            return None
        return given

    def check_window(self) -> None:
        """A sliding layer needs a window; no more kinds than layers."""
        owner = getattr(self, "owner", lambda: "model")()
        given = self.layer_types
        if given and "sliding_attention" in given and self.sliding_window is None:
            raise InvalidArgumentError(
                f"{owner}: layer_types has sliding_attention layers, and sliding_window is "
                "not given: a sliding layer attends over a window of sliding_window positions",
                field="layer_types",
                value=",".join(given),
                rule="sliding_attention layers need sliding_window",
                related=("sliding_window",),
            )
        n = known(self.layers)
        if given and n is not None and len(given) > n:
            raise InvalidArgumentError(
                f"{owner}: layer_types gives {len(given)} kinds for {n} layers: one per layer, "
                "or a shorter pattern repeated from layer 0",
                field="layer_types",
                value=",".join(given),
                rule="one kind per layer, or a shorter pattern",
                related=("layers",),
            )

    def windowed_stack(self, block: Callable[[int | None], Node]) -> Block:
        """``layers``: ``block(window)`` for the sliding layers and ``block(None)`` for the
        others, as runs (``layers.{0,2..30}``, ``layers.{1,3..31}``)."""
        pattern = self.window_pattern()
        if pattern is None:
            return ModuleList(block(None), self.layers)
        made = {
            kind: block(self.sliding_window if kind == "sliding_attention" else None)
            for kind in dict.fromkeys(pattern)
        }
        if len(made) == 1:  # every layer alike: one run, as any stack of one kind
            return ModuleList(next(iter(made.values())), self.layers)
        n = known(self.layers)
        pattern = pattern if n is None else pattern[:n]
        if n is None or len(pattern) < n:  # a pattern repeated: its shortest period in turn
            period = next(
                p
                for p in range(1, len(pattern) + 1)
                if len(pattern) % p == 0 and pattern == pattern[:p] * (len(pattern) // p)
            )
            return Block("ModuleList", cycle([made[k] for k in pattern[:period]], self.layers))
        return Block("ModuleList", runs([made[k] for k in pattern]))  # one kind per layer


@dataclass(frozen=True)
class WindowRule:
    """How a model type's config says which layers slide, as its config class and
    transformers' cache work it out (``get_layer_types_and_kwargs``):

    - ``"all"``: every layer slides when ``sliding_window`` is set (Mistral, Mixtral,
      Phi-3, Starcoder2), unless ``layer_types`` says otherwise (the cache follows it);
    - ``"alternate"``: ``layer_types``, else every other layer from layer 0 (Gemma 2,
      gpt-oss);
    - ``"qwen"``: with ``use_sliding_window``, ``layer_types``, else the layers from
      ``max_window_layers`` on (Qwen2, Qwen3);
    - ``"qwen2_moe"``: with ``use_sliding_window``, ``layer_types``, else every other layer
      below ``max_window_layers``;
    - ``"qwen_all"``: with ``use_sliding_window``, every layer (Qwen3-MoE).
    """

    kind: str

    def _raw(self, f: Any) -> tuple[Any, list[str] | None, int]:
        """(the window in effect, layer_types as the file gives it, the layers)."""
        layers = f.size("num_hidden_layers")
        window = f.raw("sliding_window")
        if self.kind.startswith("qwen"):
            use = f.raw("use_sliding_window")
            if not isinstance(use, bool):
                raise f.fail("use_sliding_window", use, "use_sliding_window must be true or false")
            if not use:
                window = None
        elif window is not None:
            f.raw("use_sliding_window")  # read, changes nothing here
        if window is not None and (
            isinstance(window, bool) or not isinstance(window, int) or not 1 <= window < 2**63
        ):
            raise f.fail("sliding_window", window, "sliding_window must be an integer >= 1 or null")
        types = f.raw("layer_types") if self.kind != "qwen_all" else None
        if types is not None:
            if not isinstance(types, list) or not all(t in SLIDING_KINDS for t in types):
                bad = (
                    types
                    if not isinstance(types, list)
                    else next(t for t in types if t not in SLIDING_KINDS)
                )
                raise f.fail(
                    "layer_types", bad, "layer_types must list " + " or ".join(SLIDING_KINDS)
                )
            if len(types) != layers:
                raise f.fail(
                    "layer_types",
                    f"{len(types)} kinds",
                    "layer_types gives one kind per layer (num_hidden_layers)",
                    f"{len(types)} kinds for {layers} layers",
                )
        return window, types, layers

    def kinds(self, f: Any) -> tuple[int | None, tuple[str, ...]]:
        """(the window, the layers' kinds) of a config: one per layer, or a pattern
        repeated from layer 0 when the rule is one (no list of 10¹² layers)."""
        window, types, layers = self._raw(f)
        full, sliding = SLIDING_KINDS
        if types is not None:
            kinds = tuple(types)
        elif window is None:
            kinds = (full,)
        elif self.kind in ("all", "qwen_all"):
            kinds = (sliding,)
        elif self.kind == "alternate":
            kinds = (sliding, full)[: min(2, layers)]
        else:  # Qwen2 and Qwen3: from max_window_layers on; Qwen2-MoE: every other below it
            start = f.raw("max_window_layers")
            if not _is_count(start):
                raise f.fail(
                    "max_window_layers", start, "max_window_layers must be an integer >= 0"
                )
            if self.kind == "qwen":
                kinds = (full,) if start >= layers else (sliding,) if start == 0 else ()
            else:
                kinds = (
                    (sliding, full)[: min(2, layers)] if start >= layers else (full,) * (start == 0)
                )
            if not kinds:
                if layers > LISTED_KINDS:
                    raise f.fail(
                        "num_hidden_layers",
                        layers,
                        f"with max_window_layers {start:,} the layers' kinds are listed one by "
                        f"one: at most {LISTED_KINDS:,} layers",
                    )
                odd = self.kind != "qwen"
                kinds = tuple(
                    sliding if (i < start and i % 2 == 0 if odd else i >= start) else full
                    for i in range(layers)
                )
        if sliding in kinds and window is None:
            why = "use_sliding_window is false" if self.kind.startswith("qwen") else "it is null"
            raise f.fail(
                "layer_types",
                "sliding_attention",
                "a sliding_attention layer needs sliding_window",
                why,
            )
        return window, kinds

    def read(self, f: Any, out: dict[str, Any]) -> None:
        """``sliding_window`` and ``layer_types`` of the arguments, from the config: no
        window when no layer slides, no list when every layer does (but for a type whose
        default alternates)."""
        window, types = self.kinds(f)  # one per layer, or a pattern the stack repeats
        context = f.raw("max_position_embeddings")
        if window is not None and _is_count(context) and window > context:
            types = ("full_attention",)  # within the context no window fills (Phi-3-128k)
        if "sliding_attention" not in types:
            out["sliding_window"], out["layer_types"] = None, ()
        elif all(t == "sliding_attention" for t in types) and self.kind != "alternate":
            out["sliding_window"], out["layer_types"] = window, ()  # the stack's own default
        else:
            out["sliding_window"], out["layer_types"] = window, tuple(types)

    def write(self, model: Any, config: dict[str, Any]) -> bool:
        """Write the model's window and layer kinds into ``config``; False when this type
        cannot say them (Mistral's layers all slide or none does)."""
        n = known(model.layers)
        pattern = model.window_pattern()
        if n is None:
            return pattern is None
        kinds = (
            ["full_attention"] * n
            if pattern is None
            else [pattern[i % len(pattern)] for i in range(n)]
        )
        sliding = "sliding_attention" in kinds
        window = model.sliding_window if sliding else None
        if self.kind in ("all", "qwen_all"):
            if sliding and not all(k == "sliding_attention" for k in kinds):
                return False
            if self.kind == "qwen_all":
                config["use_sliding_window"] = sliding
                if sliding:
                    config["sliding_window"] = window
            else:
                config["sliding_window"] = window
            return True
        if self.kind.startswith("qwen"):
            config["use_sliding_window"] = sliding
            if sliding:
                config["sliding_window"] = window
        else:
            config["sliding_window"] = window
        config["layer_types"] = kinds
        return True


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63


def windowed_hooks(
    rule_kind: str,
    read: Callable[[Any, dict[str, Any]], None] | None = None,
    write: Callable[[Any, Reference], Reference | None] | None = None,
) -> dict[str, Any]:
    """An HFType's ``read``, ``write``, ``derived`` and ``notes`` with the type's
    sliding-window rule (:class:`WindowRule`) around its own hooks."""
    rule = WindowRule(rule_kind)

    def reading(f: Any, out: dict[str, Any]) -> None:
        if read is not None:
            read(f, out)
        rule.read(f, out)

    def writing(model: Any, reference: Reference) -> Reference | None:
        config = dict(reference.config)
        if not rule.write(model, config):
            return None
        out = Reference(reference.model, reference.config_class, config, reference.options)
        return out if write is None else write(model, out)

    return {
        "read": reading,
        "write": writing,
        "derived": frozenset({"sliding_window", "layer_types"}),
        "notes": window_notes,
    }
