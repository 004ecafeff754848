"""llama.cpp's split of a model over several GPUs by layer (``-sm layer``, its default
when several devices are visible), as ggml-org/llama.cpp's source at commit
00342301d01add50835550e8a916f12097d94517 does it:

- ``src/llama-model.cpp``, ``llama_model::load_tensors``: the split points are the
  ``tensor_split`` proportions (``--tensor-split``/``-ts``), or each device's free memory
  when they are all zero, summed and normalised in ``float``:
  ``splits[i] = (p_0 + … + p_i) / (p_0 + … + p_{n-1})``. With ``n_gpu_layers`` past the
  layers (999, ``llama_model_default_params``: every layer offloaded), ``i_gpu_start`` is
  0 and ``act_gpu_layers`` is ``n_layer + 1``; layer ``il`` (0 to ``n_layer - 1``, and the
  output layer as ``il = n_layer``) goes to the device
  ``upper_bound(splits, float(il) / act_gpu_layers)``: the first whose split point is
  past the layer's fraction.
- The input layer (the token, position and token-type embeddings,
  ``LLM_TENSOR_LAYER_INPUT``) stays on the CPU ("there is very little benefit to
  offloading the input layer"); the output layer (``output_norm``, ``output``) on the
  device of ``il = n_layer`` (the last, with an even split). A tied head is the token
  embedding created again in the output layer's buffer (``TENSOR_DUPLICATED``): a copy on
  the output device.
- A GLM-4.5 file's MTP layers after the model's own count among ``n_layer`` (its
  ``block_count``) and are loaded with ``TENSOR_SKIP`` (``src/models/glm4-moe.cpp``):
  placed, holding nothing.
- ``src/llama-kv-cache.cpp``, ``llama_kv_cache::llama_kv_cache``: each layer's keys and
  values in the buffer of ``model.dev_layer(il)`` (``offload_kqv`` on by default); the
  recurrent state likewise (``src/llama-memory-recurrent.cpp``).

Only full offload is modelled (no layers left on the CPU by ``-ngl``).
"""

from __future__ import annotations

import bisect
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from shapecalc.core.dims import known

if TYPE_CHECKING:
    from shapecalc.analysis.fit import Fit

__all__ = ["LayerBytes", "layer_bytes", "layer_devices", "split_points"]


def _f32(value: float) -> float:
    """``value`` rounded to a C ``float``."""
    result: float = struct.unpack("f", struct.pack("f", value))[0]
    return result


def split_points(proportions: Sequence[float], devices: int) -> tuple[float, ...]:
    """``load_tensors``' split points for ``devices`` devices: the proportions (missing
    ones zero; all zero: equal, as identical GPUs' free memory is) summed and normalised,
    each step in ``float`` as llama.cpp computes them.

    Example:

        >>> split_points((), 2)
        (0.5, 1.0)
        >>> split_points((3, 1), 2)
        (0.75, 1.0)
    """
    values = [_f32(float(p)) for p in proportions][:devices]
    values += [0.0] * (devices - len(values))
    if all(v == 0 for v in values):
        values = [1.0] * devices
    total = 0.0
    running = []
    for v in values:
        total = _f32(total + v)
        running.append(total)
    return tuple(_f32(r / total) for r in running)


def layer_devices(n_layer: int, devices: int, proportions: Sequence[float] = ()) -> tuple[int, ...]:
    """The device of each of the ``n_layer`` layers, then of the output layer (the last
    entry), with every layer offloaded: ``upper_bound(splits, float(il) / (n_layer + 1))``.

    Example (32 layers over two GPUs: 17 and 15 layers, the output on the second):

        >>> d = layer_devices(32, 2)
        >>> d.count(0), d.count(1) - 1, d[-1]
        (17, 15, 1)
    """
    splits = split_points(proportions, devices)
    act = _f32(float(n_layer + 1))
    return tuple(
        bisect.bisect_right(splits, _f32(_f32(float(il)) / act)) for il in range(n_layer + 1)
    )


@dataclass(frozen=True)
class LayerBytes:
    """A model's weights and state as llama.cpp places them: the input layer's bytes (on
    the CPU), each layer's, the output layer's (with a tied head's copy of the token
    embedding), and each layer's state: numbers per position for the layers that keep
    keys and values (with their sliding window, None for full attention), bytes of the
    state of fixed size (one sequence) for the others."""

    input: int
    layers: tuple[int, ...]
    output: int
    #: per layer: (numbers per position and sequence, sliding window or None)
    per_position: tuple[tuple[int, int | None], ...]
    #: per layer: bytes of state that does not grow, for one sequence
    fixed: tuple[int, ...]


def layer_bytes(fit: Fit) -> LayerBytes:
    """:class:`LayerBytes` of ``fit``'s model as it is stored (a weights format's
    tensors where one is priced), by the layer number in each tensor's name."""
    from shapecalc.analysis.cost import layer_part
    from shapecalc.analysis.fit_account import fit_error

    model = fit.model
    n_layer = model.arguments.get("layers")
    tensors = fit.weight_tensors()
    numbered: dict[int, int] = {}
    rest: list[tuple[str, int]] = []
    for name, nbytes in tensors:
        _, indices = layer_part(name.rpartition(".")[0])
        if indices is None:
            rest.append((name, nbytes))
            continue
        numbers = [indices] if isinstance(indices, int) else list(indices)
        for i in numbers:
            # layers past the model's own (GLM-4.5's MTP layers, in a GGUF mix) count
            # among n_layer, their tensors loaded with TENSOR_SKIP: on no device
            skipped = isinstance(n_layer, int) and i >= n_layer
            numbered[i] = numbered.get(i, 0) + (0 if skipped else nbytes // len(numbers))
    count = max(numbered, default=-1) + 1
    if isinstance(n_layer, int):
        count = max(count, n_layer)
    specs = {row.name: row.layer for row in model.rows()}
    kinds = {layer.name: getattr(layer.spec, "layer", layer.spec).kind for layer in model.layers}
    sources = set(model.ties.values())
    inputs = output = 0
    for name, nbytes in rest:
        if kinds.get(specs.get(name, ""), "") == "Embedding":
            inputs += nbytes
            if name in sources:  # the head reads it: llama.cpp duplicates it as output
                output += nbytes
        else:
            output += nbytes
    cost = fit.cost(1, 1)
    size = cost.itemsize
    per_position: list[tuple[int, int | None]] = [(0, None)] * count
    fixed = [0] * count
    for c in cost.layers:
        stored = c.state_of(fit.cache)
        if not stored:
            continue
        _, indices = layer_part(c.name)
        if indices is None:
            raise fit_error(
                "engine",
                "llama.cpp",
                f"--engine llama.cpp: {c.name} keeps a state outside the layers",
                "state in numbered layers",
            )
        numbers = [indices] if isinstance(indices, int) else list(indices)
        for s in stored:
            kept = known(s.kept_bytes(size))
            assert kept is not None  # fit refuses symbolic models
            for i in numbers:
                if s.per_position:
                    kind = s.kind or "full attention"
                    window = s.window + 1 if s.window and kind == "sliding attention" else None
                    numbers_now, was = per_position[i]
                    per_position[i] = (numbers_now + kept // size, window or was)
                else:
                    fixed[i] += kept
    return LayerBytes(
        inputs,
        tuple(numbered.get(i, 0) for i in range(count)),
        output,
        tuple(per_position),
        tuple(fixed),
    )
