"""Accelerators to fit a model on: memory, memory bandwidth and dense peak FLOPs per
dtype, each figure from the vendor's datasheet (the URL beside it; the docs page is
generated from this table).

Rules the table keeps:

- **Memory** in bytes, as the vendor states it (``80 GB``) taken as decimal gigabytes,
  10⁹ bytes: less than the 2³⁰-byte gigabytes the memory stacks hold (an 80 GB H100 has
  80 GiB), and about what a process can use after the driver and its context take their
  part. ``--memory-gb`` gives the figure a driver reports instead.
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
    >>> gpu.memory, gpu.peak["bf16"]
    (80000000000, 989500000000000)
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shapecalc.core.errors import InvalidArgumentError, echo

__all__ = ["ACCELERATORS", "COMPUTE_DTYPES", "Accelerator", "accelerator", "custom"]

#: the dtypes a peak is given for, in the order tables print them
COMPUTE_DTYPES = ("fp32", "tf32", "bf16", "fp16", "fp8", "int8", "fp4")

_T = 10**12
_G = 10**9


@dataclass(frozen=True)
class Accelerator:
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


def _gpu(
    name: str,
    title: str,
    memory_gb: float,
    bandwidth_gbs: float,
    peak: dict[str, int],
    source: str,
    note: str = "",
    aliases: tuple[str, ...] = (),
) -> Accelerator:
    return Accelerator(
        name,
        title,
        round(memory_gb * _G),
        round(bandwidth_gbs * _G),
        peak,
        source,
        note,
        aliases,
    )


_H100 = "https://www.nvidia.com/en-us/data-center/h100/"
_SPARSE = "datasheet figures with sparsity halved"

#: every accelerator ``--gpu`` knows, by name
ACCELERATORS: dict[str, Accelerator] = {
    a.name: a
    for a in (
        _gpu(
            "h100-sxm",
            "NVIDIA H100 SXM5 80 GB",
            80,
            3350,
            _tf(fp32=67, tf32=494.5, bf16=989.5, fp8=1979, int8=1979),
            _H100,
            _SPARSE,
            ("h100", "h100-80gb", "h100-sxm5"),
        ),
        _gpu(
            "h100-pcie",
            "NVIDIA H100 PCIe 80 GB",
            80,
            2000,
            _tf(fp32=51, tf32=378, bf16=756, fp8=1513, int8=1513),
            _H100,
            _SPARSE,
        ),
        _gpu(
            "h100-nvl",
            "NVIDIA H100 NVL 94 GB (one of the pair)",
            94,
            3900,
            _tf(fp32=60, tf32=417.5, bf16=835.5, fp8=1670.5, int8=1670.5),
            _H100,
            _SPARSE,
        ),
        _gpu(
            "h200",
            "NVIDIA H200 SXM 141 GB",
            141,
            4800,
            _tf(fp32=67, tf32=494.5, bf16=989.5, fp8=1979, int8=1979),
            "https://www.nvidia.com/en-us/data-center/h200/",
            _SPARSE,
            ("h200-sxm",),
        ),
        _gpu(
            "b200",
            "NVIDIA B200 (one GPU of an HGX B200)",
            180,
            7700,
            _tf(fp32=75, tf32=1100, bf16=2250, fp8=4500, int8=4500, fp4=9000),
            "https://www.nvidia.com/en-us/data-center/hgx/",
            "HGX B200's totals for 8 GPUs divided by 8; " + _SPARSE,
        ),
        _gpu(
            "a100-80gb",
            "NVIDIA A100 SXM 80 GB",
            80,
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
            40,
            1555,
            _tf(fp32=19.5, tf32=156, bf16=312, int8=624),
            "https://www.nvidia.com/content/dam/en-zz/Solutions/Data-Center/a100/pdf/"
            "nvidia-a100-datasheet-us-nvidia-1758950-r4-web.pdf",
            _SPARSE + "; no fp8",
        ),
        _gpu(
            "l40s",
            "NVIDIA L40S 48 GB",
            48,
            864,
            _tf(fp32=91.6, tf32=183, bf16=362.05, fp8=733, int8=733),
            "https://resources.nvidia.com/en-us-l40s/l40s-datasheet-28413",
            _SPARSE,
        ),
        _gpu(
            "l4",
            "NVIDIA L4 24 GB",
            24,
            300,
            _tf(fp32=30.3, tf32=60, bf16=121, fp8=242.5, int8=242.5),
            "https://www.nvidia.com/en-us/data-center/l4/",
            _SPARSE,
        ),
        _gpu(
            "a10",
            "NVIDIA A10 24 GB",
            24,
            600,
            _tf(fp32=31.2, tf32=62.5, bf16=125, int8=250),
            "https://www.nvidia.com/en-us/data-center/products/a10-gpu/",
            _SPARSE + "; AWS's A10G is a variant with no published datasheet: give it "
            "with --memory-gb 24 --bandwidth-gbs 600",
        ),
        _gpu(
            "rtx-4090",
            "NVIDIA GeForce RTX 4090 24 GB",
            24,
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
            24,
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
            32,
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
            192,
            5300,
            _tf(fp32=163.4, tf32=653.7, bf16=1307.4, fp8=2614.9, int8=2614.9),
            "https://www.amd.com/en/products/accelerators/instinct/mi300/mi300x.html",
            "dense figures (AMD prints sparsity apart); fp32 the matrix rate",
        ),
        _gpu(
            "mi325x",
            "AMD Instinct MI325X 256 GB",
            256,
            6000,
            _tf(fp32=163.4, tf32=653.7, bf16=1307.4, fp8=2614.9, int8=2614.9),
            "https://www.amd.com/en/products/accelerators/instinct/mi300/mi325x.html",
            "dense figures (AMD prints sparsity apart); fp32 the matrix rate",
        ),
        _gpu(
            "tpu-v5e",
            "Google Cloud TPU v5e (one chip)",
            16,
            819,
            _tf(bf16=197, int8=394),
            "https://cloud.google.com/tpu/docs/v5e",
            "per chip",
        ),
        _gpu(
            "tpu-v5p",
            "Google Cloud TPU v5p (one chip)",
            95,
            2765,
            _tf(bf16=459, int8=918),
            "https://cloud.google.com/tpu/docs/v5p",
            "per chip",
        ),
        _gpu(
            "tpu-v6e",
            "Google Cloud TPU v6e Trillium (one chip)",
            32,
            1640,
            _tf(bf16=918, int8=1836),
            "https://cloud.google.com/tpu/docs/v6e",
            "per chip",
        ),
        _gpu(
            "m2-ultra-192gb",
            "Apple M2 Ultra, 192 GB unified memory",
            192,
            800,
            {},
            "https://www.apple.com/mac-studio/specs/",
            "unified memory shared with the CPU and system; no FLOPs per dtype published",
        ),
        _gpu(
            "m3-max-128gb",
            "Apple M3 Max (16-core CPU), 128 GB unified memory",
            128,
            400,
            {},
            "https://www.apple.com/macbook-pro/specs/",
            "unified memory shared with the CPU and system; no FLOPs per dtype published",
        ),
        _gpu(
            "m4-max-128gb",
            "Apple M4 Max (16-core CPU), 128 GB unified memory",
            128,
            546,
            {},
            "https://www.apple.com/macbook-pro/specs/",
            "unified memory shared with the CPU and system; no FLOPs per dtype published",
        ),
        _gpu(
            "m3-ultra-512gb",
            "Apple M3 Ultra, 512 GB unified memory",
            512,
            819,
            {},
            "https://www.apple.com/mac-studio/specs/",
            "unified memory shared with the CPU and system; no FLOPs per dtype published",
        ),
    )
}

_ALIASES = {alias: a.name for a in ACCELERATORS.values() for alias in a.aliases}


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
    key = name.strip().lower().replace("_", "-").replace(" ", "-")
    key = _ALIASES.get(key, key)
    found = ACCELERATORS.get(key)
    if found is not None:
        return found
    import difflib

    names = [*ACCELERATORS, *_ALIASES]
    near = list(dict.fromkeys(_ALIASES.get(n, n) for n in difflib.get_close_matches(key, names)))
    guess = f"did you mean {', '.join(near)}? " if near else ""
    raise InvalidArgumentError(
        f"--gpu {echo(name)} is not in the table: {guess}known: {', '.join(ACCELERATORS)}",
        layer="",
        field="gpu",
        value=name,
        rule="a name from the table (or --memory-gb with --bandwidth-gbs and --tflops)",
    )


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
                f"--{flag.replace('_', '-')} must be a positive number, got {echo(value)}",
                layer="",
                field=flag,
                value=value,
                rule="a positive number",
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
