"""Accelerators to fit a model on: memory, memory bandwidth and dense peak FLOPs per
dtype, each figure from the vendor's datasheet (the URL beside it; the docs page is
generated from this table).

Rules the table keeps:

- **Memory** in bytes, by one of two rules, each entry saying which (``memory_rule``)
  with its source (``memory_source``): *reported*, the total the driver reports
  (``nvidia-smi``'s ``MiB`` total, 2²⁰ bytes each, or CUDA's total in bytes where a
  printout of it is found: what torch and vLLM see) where a public printout is cited;
  else *GiB*, the datasheet's capacity read as binary gigabytes, 2³⁰ bytes (HBM and GDDR
  are sold in binary sizes: an "80 GB" H100 holds 80 GiB, of which the driver reports
  81,559 MiB). PyTorch's ``total_memory`` (what vLLM's ``total_gpu_memory`` logs) can be a
  little less than ``nvidia-smi``'s where ECC takes its part (an A100 40GB: 40,960 MiB in
  ``nvidia-smi``, 40,339 MiB in CUDA's deviceQuery, the figure taken here).
  ``--memory-gb`` is the user's figure, read as decimal gigabytes (10⁹ bytes): give a
  driver's total there (81,559 MiB is 85.52 GB).
- **Bandwidth** in bytes per second, the datasheet's peak.
- **Peak FLOPs** dense (without 2:4 sparsity, which datasheets often print first: those
  figures are halved here), per dtype of the matrix product: ``fp32`` (the CUDA cores),
  ``tf32``, ``bf16`` (fp16 the same unless said), ``fp8``, ``int8`` (operations),
  ``fp4``; a dtype the part lacks is absent. GeForce cards: products accumulating in fp32,
  the rate frameworks use.
- Apple's unified memory: memory and bandwidth only (Apple publishes no FLOPs per
  dtype), so only memory-bound answers are given for them.

Example:

    >>> gpu = accelerator("h100-sxm")
    >>> gpu.memory, gpu.memory // 2**20, gpu.peak["bf16"]
    (85520809984, 81559, 989500000000000)
"""

from __future__ import annotations

import re
from dataclasses import field

from shapecalc.core.errors import InvalidArgumentError, echo
from shapecalc.core.frozen import FrozenMethods, frozen

__all__ = ["ACCELERATORS", "COMPUTE_DTYPES", "Accelerator", "accelerator", "custom"]

#: the dtypes a peak is given for, in the order tables print them
COMPUTE_DTYPES = ("fp32", "tf32", "bf16", "fp16", "fp8", "int8", "fp4")

_T = 10**12
_G = 10**9


@frozen
class Accelerator(FrozenMethods):
    """One accelerator: its name on the command line, what it is, its memory (bytes),
    bandwidth (bytes per second), dense peak FLOPs per second per dtype, and where each
    figure comes from."""

    name: str
    title: str
    memory: int
    bandwidth: int
    peak: dict[str, int] = field(default_factory=dict)
    source: str = ""
    #: what the figures leave out or assume, for the docs
    note: str = ""
    #: other names it is asked by (``h100``)
    aliases: tuple[str, ...] = ()
    #: how :attr:`memory` was found: "reported" (the driver's total, cited) or "GiB"
    #: (the datasheet's capacity in 2³⁰-byte gigabytes)
    memory_rule: str = "GiB"
    #: where the memory figure comes from (a printout of the driver's total, or the
    #: datasheet)
    memory_source: str = ""

    def peak_for(self, dtype: str) -> int | None:
        """Dense peak FLOPs per second for products in ``dtype`` (fp16 as bf16 where the
        table gives one of them); None where the part has none or none is published."""
        if dtype in self.peak:
            return self.peak[dtype]
        if dtype in ("fp16", "bf16"):
            return self.peak.get("bf16" if dtype == "fp16" else "fp16")
        return None


def _tf(**figures: float) -> dict[str, int]:
    """Teraflops as printed (``989.5``) -> exact FLOPs per second."""
    return {k: round(v * 1000) * _G for k, v in figures.items()}


@frozen
class _Memory(FrozenMethods):
    """A memory figure: bytes, the rule it follows, its source."""

    bytes: int
    rule: str
    source: str


def _mib(mib: int, source: str) -> _Memory:
    """The total the driver reports, ``mib`` × 2²⁰ bytes (``nvidia-smi``'s figure)."""
    return _Memory(mib * 2**20, "reported", source)


def _gib(gib: int) -> _Memory:
    """The datasheet's capacity in binary gigabytes; the source is the datasheet."""
    return _Memory(gib * 2**30, "GiB", "")


def _gpu(
    name: str,
    title: str,
    memory: _Memory,
    bandwidth_gbs: float,
    peak: dict[str, int],
    source: str,
    note: str = "",
    aliases: tuple[str, ...] = (),
) -> Accelerator:
    return Accelerator(
        name,
        title,
        memory.bytes,
        round(bandwidth_gbs * _G),
        peak,
        source,
        note,
        aliases,
        memory.rule,
        memory.source or source,
    )


#: public printouts of ``nvidia-smi`` (each GPU's total in MiB)
_MODAL = "https://github.com/modal-labs/modal-client/pull/2797"
#: CUDA's deviceQuery on an A100-SXM4-40GB: "40339 MBytes (42298834944 bytes)", the
#: total torch and vLLM see (nvidia-smi shows 40,960 MiB: ECC takes the difference)
_DEVICE_QUERY = "https://github.com/bottlerocket-os/bottlerocket/pull/3873"
#: the H100 NVL's total in bytes as fastfetch read it from the driver
_NVL = "https://github.com/fastfetch-cli/fastfetch/issues/1658"


_H100 = "https://www.nvidia.com/en-us/data-center/h100/"
_SPARSE = "datasheet figures with sparsity halved"

#: every accelerator ``--gpu`` knows, by name
ACCELERATORS: dict[str, Accelerator] = {
    a.name: a
    for a in (
        _gpu(
            "h100-sxm",
            "NVIDIA H100 SXM5 80 GB",
            _mib(81559, "https://github.com/NVIDIA/nccl/issues/1264"),
            3350,
            _tf(fp32=67, tf32=494.5, bf16=989.5, fp8=1979, int8=1979),
            _H100,
            _SPARSE,
            ("h100", "h100-80gb", "h100-sxm5"),
        ),
        _gpu(
            "h100-pcie",
            "NVIDIA H100 PCIe 80 GB",
            _gib(80),
            2000,
            _tf(fp32=51, tf32=378, bf16=756, fp8=1513, int8=1513),
            _H100,
            _SPARSE,
        ),
        _gpu(
            "h100-nvl",
            "NVIDIA H100 NVL 94 GB (one of the pair)",
            _Memory(99961274368, "reported", _NVL),
            3900,
            _tf(fp32=60, tf32=417.5, bf16=835.5, fp8=1670.5, int8=1670.5),
            _H100,
            _SPARSE,
        ),
        _gpu(
            "h200",
            "NVIDIA H200 SXM 141 GB",
            _gib(141),
            4800,
            _tf(fp32=67, tf32=494.5, bf16=989.5, fp8=1979, int8=1979),
            "https://www.nvidia.com/en-us/data-center/h200/",
            _SPARSE,
            ("h200-sxm",),
        ),
        _gpu(
            "b200",
            "NVIDIA B200 (one GPU of an HGX B200)",
            _gib(180),
            7700,
            _tf(fp32=75, tf32=1100, bf16=2250, fp8=4500, int8=4500, fp4=9000),
            "https://www.nvidia.com/en-us/data-center/hgx/",
            "HGX B200's totals for 8 GPUs divided by 8; " + _SPARSE,
        ),
        _gpu(
            "a100-80gb",
            "NVIDIA A100 SXM 80 GB",
            _mib(81920, _MODAL),
            2039,
            _tf(fp32=19.5, tf32=156, bf16=312, int8=624),
            "https://www.nvidia.com/content/dam/en-zz/Solutions/Data-Center/a100/pdf/"
            "nvidia-a100-datasheet-us-nvidia-1758950-r4-web.pdf",
            _SPARSE + "; no fp8",
            ("a100",),
        ),
        _gpu(
            "a100-40gb",
            "NVIDIA A100 SXM 40 GB",
            _Memory(42298834944, "reported", _DEVICE_QUERY),
            1555,
            _tf(fp32=19.5, tf32=156, bf16=312, int8=624),
            "https://www.nvidia.com/content/dam/en-zz/Solutions/Data-Center/a100/pdf/"
            "nvidia-a100-datasheet-us-nvidia-1758950-r4-web.pdf",
            _SPARSE + "; no fp8",
        ),
        _gpu(
            "l40s",
            "NVIDIA L40S 48 GB",
            _mib(46068, _MODAL),
            864,
            _tf(fp32=91.6, tf32=183, bf16=362.05, fp8=733, int8=733),
            "https://resources.nvidia.com/en-us-l40s/l40s-datasheet-28413",
            _SPARSE,
        ),
        _gpu(
            "l4",
            "NVIDIA L4 24 GB",
            _mib(23034, _MODAL),
            300,
            _tf(fp32=30.3, tf32=60, bf16=121, fp8=242.5, int8=242.5),
            "https://www.nvidia.com/en-us/data-center/l4/",
            _SPARSE,
        ),
        _gpu(
            "a10",
            "NVIDIA A10 24 GB",
            _mib(23028, _MODAL),
            600,
            _tf(fp32=31.2, tf32=62.5, bf16=125, int8=250),
            "https://www.nvidia.com/en-us/data-center/products/a10-gpu/",
            _SPARSE + "; AWS's A10G is a variant with no published datasheet: give it "
            "with --memory-gb 24 --bandwidth-gbs 600",
        ),
        _gpu(
            "rtx-4090",
            "NVIDIA GeForce RTX 4090 24 GB",
            _mib(24564, "https://github.com/RLinf/RLinf/issues/255"),
            1008,
            _tf(fp32=82.6, tf32=82.6, bf16=165.2, fp8=330.3, int8=660.6),
            "https://images.nvidia.com/aem-dam/Solutions/geforce/ada/"
            "nvidia-ada-gpu-architecture.pdf",
            "Ada architecture whitepaper, appendix A; tensor products accumulating in fp32",
            ("4090",),
        ),
        _gpu(
            "rtx-3090",
            "NVIDIA GeForce RTX 3090 24 GB",
            _mib(24576, "https://github.com/noonghunna/club-3090/issues/1128"),
            936,
            _tf(fp32=35.6, tf32=35.6, bf16=71, int8=284),
            "https://www.nvidia.com/content/PDF/nvidia-ampere-ga-102-gpu-architecture-"
            "whitepaper-v2.pdf",
            "GA102 whitepaper, table of GeForce RTX 3090; tensor products accumulating in "
            "fp32; no fp8",
            ("3090",),
        ),
        _gpu(
            "rtx-5090",
            "NVIDIA GeForce RTX 5090 32 GB",
            _mib(32607, "https://github.com/noonghunna/club-3090/issues/1261"),
            1792,
            _tf(fp32=104.8, bf16=209.5, fp8=419, fp4=1676),
            "https://images.nvidia.com/aem-dam/Solutions/geforce/blackwell/"
            "nvidia-rtx-blackwell-gpu-architecture.pdf",
            "RTX Blackwell whitepaper, appendix; tensor products accumulating in fp32, " + _SPARSE,
            ("5090",),
        ),
        _gpu(
            "mi300x",
            "AMD Instinct MI300X 192 GB",
            _gib(192),
            5300,
            _tf(fp32=163.4, tf32=653.7, bf16=1307.4, fp8=2614.9, int8=2614.9),
            "https://www.amd.com/en/products/accelerators/instinct/mi300/mi300x.html",
            "dense figures (AMD prints sparsity apart); fp32 the matrix rate",
            ("mi300",),
        ),
        _gpu(
            "mi325x",
            "AMD Instinct MI325X 256 GB",
            _gib(256),
            6000,
            _tf(fp32=163.4, tf32=653.7, bf16=1307.4, fp8=2614.9, int8=2614.9),
            "https://www.amd.com/en/products/accelerators/instinct/mi300/mi325x.html",
            "dense figures (AMD prints sparsity apart); fp32 the matrix rate",
            ("mi325",),
        ),
        _gpu(
            "tpu-v5e",
            "Google Cloud TPU v5e (one chip)",
            _gib(16),
            819,
            _tf(bf16=197, int8=394),
            "https://cloud.google.com/tpu/docs/v5e",
            "per chip",
        ),
        _gpu(
            "tpu-v5p",
            "Google Cloud TPU v5p (one chip)",
            _gib(95),
            2765,
            _tf(bf16=459, int8=918),
            "https://cloud.google.com/tpu/docs/v5p",
            "per chip",
        ),
        _gpu(
            "tpu-v6e",
            "Google Cloud TPU v6e Trillium (one chip)",
            _gib(32),
            1640,
            _tf(bf16=918, int8=1836),
            "https://cloud.google.com/tpu/docs/v6e",
            "per chip",
        ),
        _gpu(
            "m2-ultra-192gb",
            "Apple M2 Ultra, 192 GB unified memory",
            _gib(192),
            800,
            {},
            "https://www.apple.com/mac-studio/specs/",
            "unified memory shared with the CPU and system; no FLOPs per dtype published",
        ),
        _gpu(
            "m3-max-128gb",
            "Apple M3 Max (16-core CPU), 128 GB unified memory",
            _gib(128),
            400,
            {},
            "https://www.apple.com/macbook-pro/specs/",
            "unified memory shared with the CPU and system; no FLOPs per dtype published",
        ),
        _gpu(
            "m4-max-128gb",
            "Apple M4 Max (16-core CPU), 128 GB unified memory",
            _gib(128),
            546,
            {},
            "https://www.apple.com/macbook-pro/specs/",
            "unified memory shared with the CPU and system; no FLOPs per dtype published",
        ),
        _gpu(
            "m3-ultra-512gb",
            "Apple M3 Ultra, 512 GB unified memory",
            _gib(512),
            819,
            {},
            "https://www.apple.com/mac-studio/specs/",
            "unified memory shared with the CPU and system; no FLOPs per dtype published",
        ),
    )
}


def _normal(name: str) -> str:
    """A name as it is matched: lower case, without spaces, hyphens and underscores."""
    return re.sub(r"[\s_-]+", "", name.lower())


#: every name and alias, as matched, to the accelerator's name
_BY_NORMAL = {_normal(n): a.name for a in ACCELERATORS.values() for n in (a.name, *a.aliases)}


#: the names an unknown --gpu is answered with when none is near it
COMMON = ("h100", "h200", "a100-80gb", "l40s", "l4", "rtx-4090")


def _near(key: str) -> list[str]:
    """The names ``key`` may have meant: those sharing its longest prefix (three
    characters at least: ``mi3000`` -> mi300x, mi325x), else the closest spellings."""
    import difflib

    def shared(other: str) -> int:
        return next(
            (i for i, (a, b) in enumerate(zip(key, other, strict=False)) if a != b),
            min(len(key), len(other)),
        )

    best = max((shared(n) for n in _BY_NORMAL), default=0)
    if best >= 3:
        near = [n for n in _BY_NORMAL if shared(n) == best]
    else:
        near = difflib.get_close_matches(key, list(_BY_NORMAL))
    return list(dict.fromkeys(_BY_NORMAL[n] for n in near))


def accelerator(name: str) -> Accelerator:
    """The accelerator called ``name`` (any case; ``h100`` for the SXM part), or an error
    with the names it may have meant and the whole list."""
    if not isinstance(name, str):
        raise InvalidArgumentError(
            f"--gpu must be a name, got {echo(name)}",
            layer="",
            field="gpu",
            value=name,
            rule="a name from the table",
        )
    key = _normal(name)
    found = _BY_NORMAL.get(key)
    if found is not None:
        return ACCELERATORS[found]
    near = _near(key)[:6]
    guess = f"did you mean {', '.join(near)}?" if near else f"known: {', '.join(COMMON)}, ..."
    raise InvalidArgumentError(  # one line of ~200 characters at most, not the table
        f"--gpu {echo(name, 24)} is not in the table: {guess} ({len(ACCELERATORS)} names: "
        "docs, Does it fit; or --memory-gb)",
        layer="",
        field="gpu",
        value=name,
        rule="a name from the table (or --memory-gb with --bandwidth-gbs and --tflops)",
    )


#: each figure's unit, as its flag takes it
_UNITS = {"memory_gb": "GB", "bandwidth_gbs": "GB/s", "tflops": "TFLOPs"}


def custom(
    memory_gb: float, bandwidth_gbs: float | None = None, tflops: float | None = None
) -> Accelerator:
    """An accelerator given by its numbers: memory in GB (10⁹ bytes), bandwidth in GB/s,
    dense peak TFLOPs (taken for every dtype)."""
    for flag, value in (
        ("memory_gb", memory_gb),
        ("bandwidth_gbs", bandwidth_gbs),
        ("tflops", tflops),
    ):
        if value is None and flag != "memory_gb":
            continue
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not value > 0
            or value > 1e9
        ):
            raise InvalidArgumentError(
                f"--{flag.replace('_', '-')} must be a positive number of at most 1e9 "
                f"({_UNITS[flag]}), got {echo(value)}",
                layer="",
                field=flag,
                value=value,
                rule="a positive number of at most 1e9",
            )
    peak = (
        {}
        if tflops is None
        else {d: round(tflops * _T) for d in COMPUTE_DTYPES}  # the same for every dtype
    )
    return Accelerator(
        "custom",
        f"{memory_gb:g} GB"
        + (f", {bandwidth_gbs:g} GB/s" if bandwidth_gbs else "")
        + (f", {tflops:g} TFLOPs" if tflops else ""),
        round(memory_gb * _G),
        round((bandwidth_gbs or 0) * _G),
        peak,
        "given on the command line",
    )
