"""A model as plain data: the documented, stable JSON report (schema ``shapecalc.report/1``).

Integers stay integers (exact at any size); a symbolic count or dim is a string in Python
syntax (``"16*H**2 + 2*V*H"``) that sympy parses. Formulas are always strings.

Top level: ``schema``, ``model`` (``kind``, ``name``, ``arguments``, ``sizes``),
``layers`` (the leaves of the model's tree, each: ``name``, ``kind``, ``spec``,
``description``, ``arguments``, ``total``, ``total_formula``, ``params`` and ``buffers``;
``copies`` when a repeated block makes several), ``ties``, ``total``, ``total_formula``,
``trainable``, ``bytes`` (per dtype) and ``notes``. A model whose tree is more than a chain
of layers (blocks inside blocks, repeated blocks) adds ``tree``: its modules, each with
``name`` (the full path), ``kind``, ``total``, ``total_formula`` and ``children``. Each
param: ``name`` (PyTorch's full name), ``shape``, ``shape_formula``, ``count``, ``formula``,
``role``, ``trainable``,
``tied_to`` (null or the name of the tensor it shares; a tied param adds nothing to
``total``).

``cost`` (with ``--shapes``, ``--flops``, ``--memory`` or ``--all``, which all give the
whole section):
``batch``, ``seq_len``, ``dtype``, ``training``, ``mixed_precision``; per layer its
``inputs`` and ``outputs`` shapes, ``macs``, ``matmul_flops``, ``forward_flops``,
``backward_flops``, the ``elementwise_rule``, the tensors ``saved`` for backward and the
inference ``state`` (and ``calls`` when the row stands for a repeated block's calls); the
totals, ``forward_flops_per_token`` (null when it does not
divide), ``activation_bytes``, the ``memory`` account (``label``, ``bytes``, ``rule``) and
``training_bytes``.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from shapecalc.core.dims import Expr, dim_ascii
from shapecalc.core.model import Model, Row
from shapecalc.core.units import DTYPE_BYTES
from shapecalc.report import Report
from shapecalc.report.cells import NameNode, name_tree

if TYPE_CHECKING:
    from shapecalc.adapters.hf_checkpoint import FolderCheck
    from shapecalc.adapters.targets import Inspection
    from shapecalc.analysis.conventions import Converted, Piece
    from shapecalc.analysis.cost import Cost
    from shapecalc.analysis.parallel import PerGpu
    from shapecalc.analysis.port import PortMap
    from shapecalc.analysis.sizing import Candidate, Solution
    from shapecalc.analysis.sweep import Sweep

__all__ = [
    "SCHEMA",
    "check_json",
    "comparison_json",
    "convention_dict",
    "cost_dict",
    "inspection_json",
    "port_dict",
    "port_json",
    "solution_dict",
    "solution_json",
    "sweep_dict",
    "sweep_json",
    "to_dict",
    "write",
]

SCHEMA = "shapecalc.report/1"


def _value(value: Any) -> Any:
    """A dim as JSON: an int, or the formula string when symbolic."""
    if isinstance(value, Expr):
        return value.ascii()
    return value


def _param(row: Row) -> dict[str, Any]:
    return {
        "name": row.name,
        "shape": [_value(d) for d in row.shape],
        "shape_formula": [dim_ascii(d) for d in row.formula_shape],
        "count": _value(row.count),
        "repeat": _value(row.param.repeat),
        "formula": dim_ascii(row.formula),
        "role": row.role,
        "trainable": row.param.trainable,
        "tied_to": row.tied_to,
        **({"dtype": row.param.dtype} if row.param.dtype else {}),
    }


def to_dict(model: Model, *, kind: str | None = None) -> dict[str, Any]:
    """The JSON-ready report of ``model``.

    Example:

        >>> import shapecalc
        >>> report = to_dict(shapecalc.lstm_lm(vocab=65, hidden=512, layers=2))
        >>> report["total"], report["total_formula"]
        (4269121, '16*H**2 + 2*V*H + 16*H + V')
        >>> report["layers"][1]["params"][0]["shape"]
        [2048, 512]
    """
    rows = model.rows_of()
    buffers: dict[str, list[tuple[str, Any]]] = {}
    for name, buffer in model.buffer_rows():
        buffers.setdefault(name.rpartition(".")[0], []).append((name, buffer))
    layers = []
    for layer in model.layers:
        entry: dict[str, Any] = {
            "name": layer.name,
            "kind": layer.spec.kind,
            "spec": str(layer.spec),
            "description": layer.description,
            "arguments": {k: _value(v) for k, v in layer.spec.arguments().items()},
            "total": _value(model.subtotal(layer.name)),
            "total_formula": dim_ascii(model.subtotal_formula(layer.name)),
            "params": [_param(r) for r in rows.get(layer.name, [])],
            "buffers": [
                {
                    "name": name,
                    "shape": [_value(d) for d in b.shape],
                    "count": _value(b.count),
                    "role": b.role,
                }
                for name, b in buffers.get(layer.name, [])
            ],
        }
        if layer.copies != 1:
            entry["copies"] = _value(layer.copies)
        layers.append(entry)
    report: dict[str, Any] = {
        "schema": SCHEMA,
        "model": {
            "kind": kind or model.kind or (model.factory.__name__ if model.factory else "model"),
            "name": model.name,
            "arguments": {k: _value(v) for k, v in model.arguments.items()},
            "sizes": {k: _value(v) for k, v in model.sizes.items()},
        },
        "layers": layers,
        "ties": dict(model.ties),
        "total": _value(model.total),
        "total_formula": dim_ascii(model.total_formula),
        "trainable": _value(model.trainable),
        "active": _value(model.active),
        "active_formula": dim_ascii(model.active_formula),
        "embedding": _value(model.embeddings),
        "head": _value(model.head_params),
        "bytes": {dtype: _value(model.bytes(dtype)) for dtype in DTYPE_BYTES},
        "notes": list(model.notes),
    }
    if model.nested:
        report["tree"] = _node(model, name_tree(model))
    if model.quantization is not None:
        report["quantization"] = _quantization(model)
    return report


def _quantization(model: Model) -> dict[str, Any]:
    """How a quantized model's weights are stored: the method, its settings, the
    unquantized parameters and the stored bytes (quantized tensors and the others)."""
    from shapecalc.quant import quantized_bytes

    chosen = model.quantization
    by_dtype = {}
    for dtype, size in DTYPE_BYTES.items():
        own, others = quantized_bytes(model, size)
        by_dtype[dtype] = {"quantized": _value(own), "others": _value(others)}
    return {
        "method": chosen.method.quant_method,
        "describe": chosen.describe(),
        "source": chosen.source,
        "settings": chosen.settings(),
        "parameters": _value(model.parameters),
        "bytes": by_dtype,
    }


def _node(model: Model, node: NameNode) -> dict[str, Any]:
    """A module of the name tree (parameters are in ``layers``)."""
    return {
        "name": node.path,
        "kind": model.describe(node.path) if node.path else model.name,
        "total": _value(node.count),
        "total_formula": dim_ascii(node.formula),
        "children": [_node(model, c) for c in node.children.values() if c.row is None],
    }


def _shape(shape: tuple[Any, ...]) -> list[Any]:
    return [_value(d) for d in shape]


def cost_dict(cost: Cost) -> dict[str, Any]:
    """The ``cost`` section of the report: shapes, compute and memory."""
    from shapecalc.analysis.cost import kept_shape  # loaded with a cost only

    def stored(s: Any, itemsize: int) -> dict[str, Any]:
        return {
            "name": s.name,
            "shape": _shape(s.shape),
            "copies": _value(s.copies),
            "itemsize": s.itemsize or itemsize,
            "bytes": _value(s.nbytes(itemsize)),
        }

    layers = [
        {
            "name": c.name,
            "kind": c.spec.kind,
            "inputs": [_shape(s) for s in c.inputs],
            "outputs": [_shape(s) for s in c.outputs],
            "macs": _value(c.macs),
            "matmul_flops": _value(c.calls * c.work.matmul_flops),
            "forward_flops": _value(c.forward_flops),
            "backward_flops": _value(c.backward_flops),
            "elementwise_rule": c.work.other_rule,
            "saved": [stored(s, cost.activation_itemsize) for s in c.work.saved],
            "state": [
                {
                    **stored(replace(s, copies=c.calls * s.copies), cost.itemsize),
                    "shape": _shape(kept_shape(s)),
                    "bytes": _value(c.calls * s.kept_bytes(cost.itemsize)),
                    "kind": s.kind or ("full attention" if s.per_position else "recurrent"),
                    "kept_positions": s.window,
                }
                for s in c.state_of(cost.cache)
            ],
            **({"calls": _value(c.calls)} if c.calls != 1 else {}),
        }
        for c in cost.layers
    ]
    return {
        "batch": _value(cost.batch),
        "seq_len": _value(cost.seq_len),
        "dtype": cost.dtype,
        "training": cost.training,
        "mixed_precision": cost.mixed_precision,
        "layers": layers,
        "macs": _value(cost.macs),
        "forward_flops": _value(cost.forward_flops),
        "backward_flops": _value(cost.backward_flops),
        "forward_flops_per_token": _value(cost.per_token(cost.forward_flops)),
        "six_n": _six_n(cost),
        "activation_bytes": _value(cost.activation_bytes),
        "memory": [
            {"label": m.label, "bytes": _value(m.bytes), "rule": m.rule, "account": m.account}
            for m in cost.memory
        ],
        "training_bytes": _value(cost.training_bytes) if cost.training != "none" else None,
        "inference_bytes": None if cost.inference_bytes is None else _value(cost.inference_bytes),
        "state": _state(cost),
    }


def _state(cost: Cost) -> dict[str, Any]:
    """The inference state by kind of layer, its convention and where it outgrows the
    weights."""
    return {
        "convention": cost.cache
        if any(g.kind == "latent attention" for g in cost.state_groups())
        else None,
        "bytes": _value(cost.state_bytes),
        "kinds": [
            {
                "kind": g.kind,
                "window": g.sliding_window,
                "kept_positions": g.window,
                "layers": _value(g.layers),
                "bytes_each": _value(g.each),
                "bytes": _value(g.total),
                "grows": g.grows,
                "capped": g.capped,
                "tensors": [
                    {"name": name, "shape": _shape(shape), "numbers": _value(n)}
                    for name, shape, n in g.tensors
                ],
            }
            for g in cost.state_groups()
        ],
        "crossover_seq_len": cost.crossover(),
    }


def _six_n(cost: Cost) -> dict[str, Any] | None:
    """FLOPs per token of a training step against 6·N, in parts (per token)."""
    six = cost.six_n()
    if six is None:
        return None
    return {
        "rule": _value(six.rule),
        "counted": _value(six.counted),
        "weight_macs": _value(six.weights),
        "attention_macs": _value(six.attention),
        "elementwise": _value(six.other),
        "params_not_multiplied": _value(six.idle),
    }


def convention_dict(
    model: Model, converted: Converted, template: Converted | None = None
) -> dict[str, Any]:
    """The ``convention`` section: the framework's tensors, its total, the difference
    from PyTorch with the reasons, and the gate order of each recurrent layer."""
    twins = converted.twins(template)
    tensors = [
        {
            "layer": layer,
            "name": p.name,
            "shape": [_value(d) for d in p.shape],
            "count": _value(p.count),
            "repeat": _value(p.repeat),
            "formula": None if twin is None else dim_ascii(twin.count),
            "role": p.role,
            "trainable": p.trainable,
            "tied_to": converted.ties.get(p.name),
            "from": converted.sources(i) if converted.pieces else [],
            "how": _how(converted.pieces[i]) if converted.pieces else "",
            "stored_as": converted.stored_as[i] if converted.stored_as else p.name,
        }
        for i, ((layer, p), twin) in enumerate(zip(converted.tensors, twins, strict=True))
    ]
    return {
        "convention": converted.convention,
        "tensors": tensors,
        "total": _value(converted.total),
        "pytorch_total": _value(model.total),
        "difference": _value(converted.total - model.total),
        "differences": [
            {"layer": d.layer, "delta": _value(d.delta), "reason": d.reason}
            for d in converted.differences
        ],
        "gate_order": dict(converted.gate_orders),
    }


def comparison_json(
    model: Model,
    converted: list[tuple[Converted, Converted | None]],
    refused: list[tuple[str, str]],
) -> str:
    """``shapecalc compare-conventions --format json`` (schema ``shapecalc.conventions/1``):
    the model, one :func:`convention_dict` per framework (a framework that cannot store
    the model gives ``convention`` and ``error``), and ``rows``: the tensors that
    correspond, one framework's name (or null) under each framework's key."""
    from shapecalc.analysis.conventions import rows

    report = to_dict(model)
    done = [c for c, _ in converted]
    paired = [
        {
            c.convention: None if i is None else c.tensors[i][1].name
            for c, i in zip(done, row, strict=True)
        }
        for row in (rows(done) if done and done[0].convention == "pytorch" else [])
    ]
    return (
        json.dumps(
            {
                "schema": "shapecalc.conventions/1",
                "model": report["model"],
                "total": report["total"],
                "conventions": [convention_dict(model, c, t) for c, t in converted]
                + [{"convention": name, "error": why} for name, why in refused],
                "rows": paired,
            },
            indent=2,
            ensure_ascii=False,
        )
        + "\n"
    )


def _how(pieces: tuple[Piece, ...]) -> str:
    from shapecalc.analysis.conventions import describe_pieces

    return describe_pieces(pieces)


def _index(at: tuple[Any, ...]) -> list[Any]:
    return [[_value(part[0]), _value(part[1])] if isinstance(part, tuple) else part for part in at]


def port_dict(mapping: PortMap) -> dict[str, Any]:
    """``shapecalc port --format json`` (schema ``shapecalc.port/1``): for every target
    tensor its shape, its sources, how it is made in one line, and the steps: each
    piece's source, its ops (``gates``: the blocks' order, ``permute``: the axes,
    ``take``: an index) and ``at``, where it goes in the target (ints pick, [start, stop]
    pairs slice; pieces at one place are summed; no pieces: zeros)."""
    data: dict[str, Any] = {
        "schema": "shapecalc.port/1",
        "model": mapping.model,
        "from": mapping.source,
        "to": mapping.target,
        "notes": list(mapping.notes),
        "inputs": {name: list(shape) for name, shape in mapping.inputs.items()},
        "tensors": [
            {
                "target": e.target,
                "shape": list(e.shape),
                "from": e.sources,
                "how": e.how,
                "note": e.note,
                "pieces": [
                    {
                        "source": p.source,
                        "ops": [
                            {
                                "op": op.kind,
                                "value": _index(op.value) if op.kind == "take" else list(op.value),
                                "text": op.text,
                            }
                            for op in p.ops
                        ],
                        "at": _index(p.at),
                    }
                    for p in e.pieces
                ],
            }
            for e in mapping.entries
        ],
    }
    if mapping.first is not None:
        data["through"] = "pytorch"
        data["first"] = port_dict(mapping.first)
    return data


def port_json(mapping: PortMap) -> str:
    """:func:`port_dict` as indented JSON text with a final newline."""
    return json.dumps(port_dict(mapping), indent=2, ensure_ascii=False) + "\n"


def sweep_dict(table: Sweep) -> dict[str, Any]:
    """``shapecalc sweep --format json`` (schema ``shapecalc.sweep/1``): the swept sizes
    with their values, the sizes held fixed, each column with its formula in the swept
    sizes (null when the layers need them as numbers), and every point; against hardware
    (``hardware``) each point's answers (``fit``) and each swept model's ``frontiers``."""
    data: dict[str, Any] = {
        "schema": "shapecalc.sweep/1",
        "model": table.model,
        "axes": [
            {"name": a.name, "letter": a.letter, "values": list(a.values)} for a in table.axes
        ],
        "fixed": dict(table.fixed),
        "settings": {  # the weights' quantization by what it is (nf4, ...)
            k: v.describe() if k == "weights" else v for k, v in table.settings.items()
        },
        "budget": table.budget,
        "derived": dict(table.derived),
        "columns": [
            {
                "key": c.key,
                "title": c.title,
                "unit": c.unit,
                "formula": None if c.formula is None else dim_ascii(c.formula),
            }
            for c in table.columns
        ],
        "points": [
            {
                "sizes": {a.name: v for a, v in zip(table.axes, p.sizes, strict=True)},
                "values": {c.key: v for c, v in zip(table.columns, p.values, strict=True)},
            }
            for p in table.points
        ],
    }
    against = table.fit
    if against is not None:
        setting = against.setting
        hw = setting.hardware
        data["hardware"] = {
            "name": hw.name,
            "title": hw.title,
            "memory": hw.memory,
            "bandwidth": hw.bandwidth,
            "gpus": setting.gpus,
            "engine": None if setting.engine is None else setting.engine.name,
            "reserve": setting.reserve,
            "efficiency": {"memory": setting.efficiency[0], "compute": setting.efficiency[1]},
            "dtype": against.dtype,
        }
        for point, out in zip(table.points, data["points"], strict=True):
            out["fit"] = dict(zip(against.keys, point.fit or (), strict=True))
        data["frontiers"] = [
            {
                "sizes": dict(f.sizes),
                "frontier": [{"batch": b, "largest_context": t} for b, t in f.contexts],
            }
            for f in against.frontiers
        ]
    return data


def sweep_json(table: Sweep) -> str:
    """:func:`sweep_dict` as indented JSON text with a final newline."""
    return json.dumps(sweep_dict(table), indent=2, ensure_ascii=False) + "\n"


def write(report: Report) -> str:
    """The report as indented JSON text with a final newline: :func:`to_dict`, with the
    ``cost`` section :func:`cost_dict` makes (all of it, whichever part was asked for), the
    ``convention`` section, ``explanation: [{title, lines}]``, and a layer's ``inputs``
    and ``outputs`` shapes."""
    model = report.model
    data = to_dict(model)
    if report.cost is not None:
        data["cost"] = cost_dict(report.cost)
    if report.convention is not None:
        data["convention"] = convention_dict(model, *report.convention)
    if report.explanation:
        data["explanation"] = [
            {"title": s.title, "lines": list(s.lines)} for s in report.explanation
        ]
    if report.per_gpu is not None:
        data["per_gpu"] = per_gpu_dict(report.per_gpu)
    if report.flow is not None:
        data["inputs"] = [[_value(d) for d in shape] for shape in report.flow[0]]
        data["outputs"] = [[_value(d) for d in shape] for shape in report.flow[1]]
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def per_gpu_dict(per_gpu: PerGpu) -> dict[str, Any]:
    """The ``per_gpu`` section: the plan, the accounting, each line (``label``, ``bytes``,
    ``rule``, ``cpu``, ``counted``) and the GPU and CPU totals."""
    plan = per_gpu.plan
    return {
        "plan": {
            "dp": plan.dp,
            "zero": plan.zero,
            "fsdp": plan.fsdp,
            "shard_group": plan.shard_group,
            "offload_optimizer": plan.offload_optimizer,
            "offload_parameters": plan.offload_parameters,
            "gpus_per_node": plan.gpus_per_node,
            "recompute": plan.recompute,
        },
        "accounting": per_gpu.accounting,
        "lines": [
            {
                "label": x.label,
                "bytes": _value(x.bytes),
                "rule": x.rule,
                "cpu": x.cpu,
                "counted": x.counted,
            }
            for x in per_gpu.lines
        ],
        "gpu_bytes": _value(per_gpu.gpu_bytes),
        "cpu_bytes": _value(per_gpu.cpu_bytes),
    }


def solution_dict(solution: Solution) -> dict[str, Any]:
    """``shapecalc solve --format json`` (schema ``shapecalc.solve/1``)."""

    def candidate(c: Candidate) -> dict[str, Any]:
        return {"size": c.size, "total": c.total, "distance": c.distance}

    return {
        "schema": "shapecalc.solve/1",
        "free": solution.free,
        "target": solution.target,
        "multiple_of": solution.multiple_of,
        "fixed": {k: _value(v) for k, v in solution.fixed.items()},
        "below": candidate(solution.below),
        "above": candidate(solution.above),
        "closest": "below" if solution.closest is solution.below else "above",
        "formula": None if solution.formula is None else dim_ascii(solution.formula),
        "convention": solution.convention,
    }


def solution_json(solution: Solution) -> str:
    return json.dumps(solution_dict(solution), indent=2) + "\n"


def inspection_json(inspection: Inspection) -> str:
    """``shapecalc inspect --format json`` (schema ``shapecalc.inspect/1``): the report
    indented, each tensor one compact line, written directly (a checkpoint of 200,000
    tensors writes in a fraction of a second). ``total`` counts the parameters,
    ``buffer_total`` the buffers (running statistics), each tensor says which it is and
    ``buffers_by`` how that is known: ``module`` (registered so) or ``name`` (a
    checkpoint's, by the names torch.nn gives its buffers)."""
    from shapecalc.report.inspect_text import buffer_note, listing

    shown = listing(inspection)
    report: dict[str, Any] = {
        "schema": "shapecalc.inspect/1",
        "target": inspection.target,
        "source": inspection.source,
        "total": shown.parameter_total,
        "buffer_total": shown.buffer_total,
        "buffers_by": shown.buffers_by,
        "tensors": [],
    }
    if inspection.checkpoint is not None:
        report["bytes"] = inspection.checkpoint.nbytes
        report["bytes_by_dtype"] = inspection.checkpoint.bytes_by_dtype()
        report["metadata"] = inspection.checkpoint.metadata
    if inspection.model is not None:
        report["reused"] = [
            {"module": path, "also_used_as": list(others)} for path, others in shown.reused.items()
        ]
    said = buffer_note(shown)
    notes = [*shown.notes, *([said] if said else [])]
    if notes:
        report["notes"] = notes
    if inspection.check is not None:
        report["check"] = check_json(inspection.check)
    if inspection.unchecked is not None:
        report["unchecked"] = inspection.unchecked
    if inspection.gguf is not None:
        from shapecalc.report.gguf_text import gguf_dict

        report["gguf"] = gguf_dict(inspection)
    text = json.dumps(report, indent=2)
    if not shown.entries:
        return text + "\n"
    text_of = json.encoder.encode_basestring_ascii  # json.dumps' own, for one string
    null = "null"
    # each line written directly: a shape, a dtype and a kind written once each (a
    # checkpoint repeats a few hundred of them), an optional value tested inline
    shapes: dict[tuple[int, ...], str] = {}
    texts: dict[str, str] = {}
    rows = []
    for e, buffer in zip(shown.entries, shown.buffers, strict=True):
        shape = shapes.get(e.shape)
        if shape is None:
            shape = shapes[e.shape] = str(list(e.shape))
        dtype: str | None = null
        if e.dtype is not None:
            dtype = texts.get(e.dtype)
            if dtype is None:
                dtype = texts[e.dtype] = text_of(e.dtype)
        kind: str | None = null
        if e.kind is not None:
            kind = texts.get(e.kind)
            if kind is None:
                kind = texts[e.kind] = text_of(e.kind)
        rows.append(
            f'{{"name": {text_of(e.name)}, "shape": {shape}, "count": {e.count}, '
            f'"dtype": {dtype}, "bytes": {null if e.nbytes is None else e.nbytes}, '
            f'"tied_to": {null if e.tied_to is None else text_of(e.tied_to)}, '
            f'"kind": {kind}, "buffer": {"true" if buffer else "false"}}}'
        )
    body = ",\n    ".join(rows)
    return text.replace('"tensors": []', f'"tensors": [\n    {body}\n  ]', 1) + "\n"


def check_json(check: FolderCheck) -> dict[str, Any]:
    """A checkpoint folder against its config, for ``inspect --format json``."""
    quantization = check.hf.quantization
    return {
        "config": check.hf.label,
        "model_type": check.hf.family.model_type,
        "class": check.hf.class_name,
        "layout": check.layout,
        "ok": check.ok,
        "expected_total": check.expected_total,
        "stored_total": check.stored_total,
        "dtype": check.dtype,
        "matched": check.matched,
        "missing": [{"name": n, "shape": list(s)} for n, s in check.missing],
        "unexpected": [{"name": n, "shape": list(s), "dtype": d} for n, s, d in check.unexpected],
        "wrong_shape": [
            {"name": m.name, "expected": list(m.expected), "found": list(m.found)}
            for m in check.wrong_shape
        ],
        "wrong_dtype": [
            {"name": m.name, "expected": m.expected, "found": m.found} for m in check.wrong_dtype
        ],
        "ignored": list(check.ignored),
        "held": list(check.held),
        "renamed": [{"from": a, "to": b} for a, b in check.renamed],
        "tied_absent": list(check.tied_absent),
        "tied_copies": [list(pair) for pair in check.tied_copies],
        "index_problems": list(check.index_problems),
        "quantization": None
        if quantization is None
        else {
            "method": quantization.get("quant_method"),
            "weights": [{"name": n, "stored": list(parts)} for n, parts in check.quantized],
        },
        "notes": list(check.notes),
    }
