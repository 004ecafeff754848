"""AWQ (transformers' ``AwqConfig``, ``quant_method: awq``; AutoAWQ's checkpoints): each
``nn.Linear`` of the decoder blocks stored as the ``WQLinear`` of its ``version``
(``awq/modules/linear/*.py`` of AutoAWQ 0.2.9), 4-bit numbers packed into words, a
float16 scale and a packed zero point per group of ``group_size`` inputs and output:

- ``gemm`` (and ``exllama``, whose layer keeps GEMM's tensors "for compatibility with the
  state_dict of WQLinear_GEMM", ``exllama.py``): ``qweight`` int32 (in, out/8),
  ``qzeros`` int32 (in/g, out/8), ``scales`` float16 (in/g, out), ``bias`` float16 (out,);
- ``ipex`` (``gemm_ipex.py``, Intel's CPU kernel): GEMM's tensors, ``scales`` and ``bias``
  held in bfloat16;
- ``gemv`` (``gemv.py``): ``qweight`` int32 (out, in/8), ``qzeros`` int32 (out, W),
  ``scales`` float16 (out, 8·W), ``bias``;
- ``gemv_fast`` (``gemv_fast.py``): ``qweight`` int16 (out/4, in), rows of four outputs
  interleaved, ``scales`` and ``qzeros`` float16 (8·W, out), ``bias``.

W = ``calculate_zeros_width(in, g)``: ⌈⌈(in // g)/8⌉/m⌉·m words, m = 1 for groups of 128
or more, 2 for 64, 4 for 32 (the GEMV kernels' padding). ``modules_to_not_convert`` leaves
the layers whose name within the block contains one of its strings
(``awq/utils/module.py: exclude_layers_to_not_quantize``).
"""

from __future__ import annotations

from typing import Any, ClassVar

from shapecalc.core.dims import Dim, dim_str, floor_div
from shapecalc.core.errors import echo
from shapecalc.core.frozen import frozen
from shapecalc.core.spec import LayerSpec, Param
from shapecalc.core.tree import join_name
from shapecalc.quant import weights_error
from shapecalc.quant._packed import PackedMethod, ceil_div, divides
from shapecalc.quant.gptq import IGNORED as GPTQ_IGNORED

__all__ = ["AWQ", "METHOD", "zeros_width"]

#: AutoAWQ's versions (``quant_config.version``; transformers' AwqConfig ``version``)
VERSIONS = ("gemm", "gemv", "gemv_fast", "exllama", "ipex")

#: keys AWQ configs carry that change no stored tensor: AwqConfig's own and those it
#: inherits from GPTQConfig (transformers/utils/quantization_config.py), AutoAWQ's
IGNORED = (
    *GPTQ_IGNORED,
    "do_fuse",
    "fuse_max_seq_len",
    "modules_to_fuse",
    "desc_act",
    "sym",
    "checkpoint_format",
    "block_name_to_quantize",
    "modules_in_block_to_quantize",
)


def zeros_width(n_in: Dim, group: int) -> Dim:
    """AutoAWQ's ``calculate_zeros_width(in_features, group_size)`` (``gemv.py``)."""
    multiplier = 1 if group >= 128 else {64: 2, 32: 4}[group]
    base = ceil_div(floor_div(n_in, group), 8)
    return ceil_div(base, multiplier) * multiplier


@frozen
class AWQ(PackedMethod):
    """AutoAWQ's packed int4 weights (transformers' ``awq`` quant_method): ``qweight``,
    ``qzeros`` and ``scales`` per converted Linear, ``bits`` a weight, one scale and zero
    per ``group_size`` inputs."""

    bits: int = 4
    group_size: int = 128
    zero_point: bool = True
    version: str = "gemm"

    quant_method: ClassVar[str] = "awq"
    library: ClassVar[str] = "AutoAWQ"
    experts_library: ClassVar[str] = "AutoAWQ"
    aliases: ClassVar[dict[str, dict[str, Any]]] = {
        "awq": {},
        "awq-gemv": {"version": "gemv"},
        "awq-gemv-fast": {"version": "gemv_fast"},
    }
    keys: ClassVar[dict[str, tuple[str, ...]]] = {
        **PackedMethod.keys,
        "bits": ("bits", "w_bit"),
        "group_size": ("group_size", "q_group_size"),
        "version": ("version", "format"),
    }
    ignored_keys: ClassVar[tuple[str, ...]] = IGNORED

    def check(self, where: str) -> None:
        def refuse(key: str, value: Any, rule: str) -> None:
            raise weights_error(where, value, f"{where}: {key} = {echo(value)}: {rule}", rule)

        if isinstance(self.bits, bool) or self.bits != 4:
            refuse("bits", self.bits, "AWQ's layers take 4 bits only (AutoAWQ's WQLinear)")
        group = self.group_size
        if isinstance(group, bool) or not isinstance(group, int) or group < 1:
            # -1 too: from_linear indexes the groups by input // group_size
            refuse(
                "group_size",
                group,
                "a positive number of inputs (AutoAWQ's packers cannot take -1)",
            )
        if not isinstance(self.zero_point, bool):
            refuse("zero_point", self.zero_point, "zero_point is true or false")
        if not self.zero_point:
            refuse(
                "zero_point",
                False,
                "AutoAWQ's GEMM and GEMV layers pack zero points (only Marlin's do without)",
            )
        if not isinstance(self.version, str) or self.version.lower() not in VERSIONS:
            refuse("version", self.version, f"AWQ's versions are {', '.join(VERSIONS)}")
        if self.kind in ("gemv", "gemv_fast") and group < 128 and group not in (32, 64):
            # calculate_zeros_width raises NotImplementedError for any other, and
            # from_linear passes it group_size as given (-1 too)
            refuse(
                "group_size",
                group,
                f"AutoAWQ's {self.kind} layers take groups of 32, 64 or 128 and more",
            )

    @property
    def kind(self) -> str:
        return self.version.lower()

    def describe(self) -> str:
        return f"AWQ 4-bit ({self.kind}), groups of {self.group_size}"

    def takes(self, spec: LayerSpec) -> bool:
        from shapecalc.layers._linear import Linear
        from shapecalc.quant._packed import _per_expert

        return isinstance(spec, Linear) or _per_expert(spec)

    def skipped(self, parts: tuple[str, ...]) -> bool:
        # exclude_layers_to_not_quantize: `any(key in name ...)`, name within the block
        name = join_name(*parts)
        if self.prefix and name.startswith(self.prefix + "."):
            name = name[len(self.prefix) + 1 :].partition(".")[2]
        return any(key in name for key in self.skip)

    def check_sizes(self, where: str, n_in: Dim, n_out: Dim) -> None:
        g = self.group_size
        if divides(n_in, g) is False:
            self.refuse_size(where, "in_features", n_in, f"AWQ needs whole groups of {g} inputs")
        # each packer's words: GEMM's from_linear makes out // 32 · 4 columns of 8 outputs
        # (gemm.py), GEMV's in // 32 · 4 (gemv.py), GEMV-fast's pack_intweight strides the
        # inputs by 64 and interleaves 4 outputs (gemv_fast.py)
        field, value, step = {
            "gemv": ("in_features", n_in, 32),
            "gemv_fast": ("in_features", n_in, 64),
        }.get(self.kind, ("out_features", n_out, 32))
        if divides(value, step) is False:
            self.refuse_size(
                where, field, value, f"AutoAWQ's {self.kind} packer takes multiples of {step}"
            )
        if divides(n_out, 8) is False:
            self.refuse_size(where, "out_features", n_out, "AWQ packs 8 outputs to a word")

    def bias_dtype(self) -> str:
        return "bfloat16" if self.kind == "ipex" else "float16"

    def bias_note(self) -> str:
        return f"{self.bias_dtype()}, as AutoAWQ's WQLinear holds it"

    def packed(self, n_in: Dim, n_out: Dim) -> tuple[Param, ...]:
        kind = self.kind
        g_text = f"{self.group_size} inputs"
        if kind in ("gemm", "exllama", "ipex"):
            groups = floor_div(n_in, self.group_size)
            return (
                Param(
                    "qweight",
                    (n_in, floor_div(n_out, 8)),
                    f"the 4-bit weights packed along the outputs, 8 to a word "
                    f"({dim_str(n_in)}, {dim_str(n_out)}/8)",
                    dtype="int32",
                ),
                Param(
                    "qzeros",
                    (groups, floor_div(n_out, 8)),
                    "a 4-bit zero point per group and output, 8 to a word",
                    dtype="int32",
                ),
                Param(
                    "scales",
                    (groups, n_out),
                    f"a scale per group of {g_text} and output",
                    dtype="bfloat16" if kind == "ipex" else "float16",
                ),
            )
        width = zeros_width(n_in, self.group_size)
        if kind == "gemv":
            return (
                Param(
                    "qweight",
                    (n_out, floor_div(n_in, 8)),
                    f"the 4-bit weights packed along the inputs, 8 to a word "
                    f"({dim_str(n_out)}, {dim_str(n_in)}/8)",
                    dtype="int32",
                ),
                Param(
                    "qzeros",
                    (n_out, width),
                    "a 4-bit zero point per output and group, 8 to a word, padded for the kernel",
                    dtype="int32",
                ),
                Param(
                    "scales",
                    (n_out, 8 * width),
                    f"a scale per output and group of {g_text}, padded for the kernel",
                    dtype="float16",
                ),
            )
        return (
            Param(
                "qweight",
                (floor_div(n_out, 4), n_in),
                "the 4-bit weights, 4 to an int16, four outputs' rows interleaved "
                f"({dim_str(n_out)}/4, {dim_str(n_in)})",
                dtype="int16",
            ),
            Param(
                "scales",
                (8 * width, n_out),
                f"a scale per group of {g_text} and output, padded for the kernel",
                dtype="float16",
            ),
            Param(
                "qzeros",
                (8 * width, n_out),
                "a zero point per group and output, scaled, in float16, padded",
                dtype="float16",
            ),
        )


METHOD = AWQ
