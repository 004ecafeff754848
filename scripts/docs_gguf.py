"""The generated parts of docs/howto/gguf.md: the ggml types (from STORAGE), the tensor
names (from shapecalc.quant.gguf), the families checked and each mix's price."""

from __future__ import annotations


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def gguf_facts() -> dict[str, str]:
    from shapecalc.adapters.gguf_arch import gguf_types
    from shapecalc.architectures.llama import LLaMA
    from shapecalc.core.errors import InvalidArgumentError
    from shapecalc.core.storage import GGML_TYPES, STORAGE
    from shapecalc.quant import parse_weights, quantize
    from shapecalc.quant.gguf import EXPERTS, FTYPES, GLOBAL, LAYER

    types = _table(
        ["id", "type", "numbers per block", "bytes per block", "bits per number", "what"],
        [
            [
                str(t.id),
                f"`{t.name}`",
                str(t.block),
                str(t.block_bytes),
                f"{STORAGE[t.storage].bits:.4g}",
                t.about,
            ]
            for t in sorted(GGML_TYPES.values(), key=lambda t: t.id)
        ],
    )
    names = _table(
        ["transformers", "GGUF"],
        [[f"`{k}`", f"`{v}`"] for k, v in GLOBAL.items()]
        + [[f"`model.layers.N.{k}.weight`", f"`blk.N.{v}.weight`"] for k, v in LAYER.items()]
        + [
            [f"`model.layers.N.{k}` (E, …)", ", ".join(f"`blk.N.{p}.weight`" for p in v)]
            for k, v in EXPERTS.items()
        ],
    )
    from shapecalc.quant.gguf_names import FAMILIES, NEXTN

    family_rows = []
    for arch, family in FAMILIES.items():
        layer = f"{family.layers}.N."
        reshaped = {*family.transposed, *family.squeezed}
        pairs = [(k, v, "") for k, v in family.top.items() if k not in GLOBAL]
        pairs += [
            (f"{layer}{k}", f"blk.N.{v}", " (reshaped)" if k in reshaped else "")
            for k, v in family.layer.items()
        ]
        pairs += [(f"{layer}{k}", f"blk.N.{v}", "") for k, v in family.bare.items()]
        if family.experts is not EXPERTS:
            pairs += [
                (f"{layer}{k}", ", ".join(f"blk.N.{p}" for p in v), " (E, …)")
                for k, v in family.experts.items()
            ]
        pairs += [(f"{layer}{k}", f"blk.N.{v}", " (buffer)") for k, v in family.buffers.items()]
        if family.split_kv_b:
            pairs.append((f"{layer}self_attn.kv_b_proj", "blk.N.attn_k_b, blk.N.attn_v_b", ""))
        if family.mtp:
            pairs += [(f"{layer}{k}", f"blk.N.{v}", " (MTP layer)") for k, v in NEXTN.items()]
        family_rows += [[f"`{arch}`", f"`{k}`{note}", f"`{v}`"] for k, v, note in pairs]
    family_names = _table(["GGUF architecture", "transformers", "GGUF"], family_rows)
    families = _table(
        [
            "GGUF architecture",
            "transformers model_type (the first that takes the sizes)",
            "LLM_TYPE_70B",
        ],
        [
            [
                f"`{arch}`",
                ", ".join(f"`{t.model_type}`" for t in types),
                types[0].gguf_70b or "never",
            ]
            for arch, types in gguf_types().items()
        ],
    )
    model = LLaMA(vocab=32000, hidden=4096, layers=32, heads=32, kv_heads=8, intermediate=14336)
    built = model.model()
    rows = []
    for mix, base in FTYPES.items():
        if mix in ("f32", "f16", "bf16", "mxfp4_moe", "q1_0", "nvfp4", "tq1_0", "tq2_0"):
            continue
        spec = mix
        try:
            priced = quantize(built, parse_weights(spec))
        except InvalidArgumentError:  # llama-quantize needs an importance matrix
            spec = f"{mix}:imatrix=true"
            priced = quantize(built, parse_weights(spec))
        nbytes = priced.bytes("bf16")
        assert isinstance(nbytes, int)
        bits = 8 * nbytes / built.parameters
        rows.append([f"`{spec}`", f"`{base}`", f"{nbytes:,}", f"{bits:.3f}"])
    mixes = _table(
        ["--weights", "base type", "bytes (Mistral-7B's sizes)", "bits per weight"], rows
    )
    return {
        "gguf_types": types,
        "gguf_names": names,
        "gguf_families": families,
        "gguf_family_names": family_names,
        "gguf_mixes": mixes,
    }
