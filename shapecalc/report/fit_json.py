"""``shapecalc fit --format json`` (schema ``shapecalc.fit/1``, docs/schema/fit.schema.json).

Top level: ``schema``, ``model`` (name, parameters), ``hardware`` (name, title, memory,
bandwidth, peak per dtype, source), ``setting`` (dtype, weights, batch, seq_len, gpus,
engine, efficiency), ``fits``, ``account`` (per GPU: ``lines`` each with ``label``,
``bytes``, ``rule``, ``counted``; ``total``, ``memory``, ``free``), ``largest_context``,
``most_sequences``, ``fewest_gpus`` (and ``skipped_gpus`` with why), ``quantizations``
(each ``name``, ``bytes``, ``fits``, ``why``; smallest bytes first), ``speed`` (bytes and
FLOPs behind each bound, tokens per second at most), ``engine_log`` (vLLM: num_blocks,
kv_cache_tokens, max_concurrency, ...) and ``frontier`` (batch, largest context).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shapecalc.analysis.fit import Answer

__all__ = ["fit_dict", "fit_json"]


def fit_dict(answer: Answer) -> dict[str, Any]:
    fit = answer.fit
    hw = fit.hardware
    account = answer.account
    quant = fit.model.quantization
    speed = answer.speed
    return {
        "schema": "shapecalc.fit/1",
        "model": {"name": fit.model.name, "parameters": fit.model.parameters},
        "hardware": {
            "name": hw.name,
            "title": hw.title,
            "memory": hw.memory,
            "bandwidth": hw.bandwidth,
            "peak": dict(hw.peak),
            "source": hw.source,
        },
        "setting": {
            "dtype": fit.dtype,
            "weights": None if quant is None else quant.describe(),
            "batch": fit.batch,
            "seq_len": fit.seq_len,
            "gpus": fit.gpus,
            "engine": None if fit.engine is None else fit.engine.name,
            "efficiency": {"memory": fit.efficiency[0], "compute": fit.efficiency[1]},
        },
        "fits": answer.fits,
        "account": {
            "lines": [
                {
                    "label": x.label,
                    "bytes": x.bytes,
                    "rule": x.rule,
                    "counted": x.counted and not x.host,
                    "host": x.host,
                }
                for x in account.lines
            ],
            "total": account.total,
            "memory": account.memory,
            "free": account.free,
        },
        "largest_context": answer.largest_context,
        "most_sequences": answer.most_sequences,
        "fewest_gpus": answer.fewest_gpus,
        "skipped_gpus": [{"gpus": n, "why": why} for n, why in answer.skipped_gpus],
        "quantizations": [
            {"name": q.name, "bytes": q.bytes, "fits": q.fits, "why": q.why}
            for q in answer.quantizations
        ],
        "all_formats": answer.all_formats,
        "speed": None
        if speed is None
        else {
            "decode_bytes_per_step": speed.decode_bytes,
            "weights_read": speed.weights_read,
            "state_read": speed.state_read,
            "decode_tokens_per_s_at_most": speed.decode_tokens_per_s,
            "decode_rule": speed.rule_decode,
            "prefill_flops": speed.prefill_flops,
            "prefill_tokens_per_s_at_most": speed.prefill_tokens_per_s,
            "prefill_rule": speed.rule_prefill,
            "compute_dtype": speed.compute_dtype,
            "peak_flops": speed.peak,
        },
        "engine_log": answer.engine_log,
        "frontier": [{"batch": b, "largest_context": t} for b, t in answer.frontier],
    }


def fit_json(answer: Answer) -> str:
    return json.dumps(fit_dict(answer), indent=2) + "\n"
