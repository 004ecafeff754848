"""Real FSDP2 over gloo on CPU: the bytes FSDP holds unsharded while a training step
computes, at every point where FSDP allocates or frees them.

Each rank builds a tiny model with shapecalc's own bridge and wraps it as transformers
and accelerate wrap a decoder for FSDP2 (``transformers/distributed/fsdp.py``,
``apply_fully_sharded_data_parallelism`` with the base ``_fsdp_plan``, and
``accelerate/utils/fsdp_utils.py``, ``fsdp2_prepare_model``): the input embedding
alone, each repeated block, the final norm and the output head grouped in one
``fully_shard([...])`` with ``reshard_after_forward=False`` (a tied embedding joins that
group), then the root with ``reshard_after_forward`` left unset (FSDP2 does not reshard
the root after forward). ``grad-op`` passes ``reshard_after_forward=False`` to every
unit, ``full`` ``True`` (or a whole number: resharded to that many ranks).

The ranks sample, on entry to and exit from FSDP's own steps (``unshard``,
``foreach_all_gather``, ``wait_for_unshard``, ``reshard``, ``pre_backward``,
``post_backward``, the reduce-scatter copy-in), the storages alive of:

- each parameter's unsharded tensor (``FSDPParam.all_gather_outputs``: padded rows),
- the all-gather output buffers (a unit's pending all-gather, and the forward's last
  one kept until the next unit has copied out: ``comm_ctx.all_gather_state``),
- the unsharded gradients autograd leaves on the unsharded parameters,
- the reduce-scatter input buffers (the one being filled and the last unit's, kept
  until the next unit's reduce-scatter: ``comm_ctx.reduce_scatter_states``),
- with ``reshard_after_forward`` a number of ranks, each parameter's post-forward shard
  (``_sharded_post_forward_param_data``),

each storage once; the rank's figure is the largest sum (and, for the record, which
step it was). Activations, the sharded state and the allocator's caching are not seen.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any


def _wrap(module: Any, mode: str, again: bool | int, extra: dict[str, Any]) -> None:
    from torch.distributed.fsdp import fully_shard

    blocks = [m for n, m in module.named_modules() if re.fullmatch(r"(.*\.)?layers\.\d+", n)]
    embed = module.get_submodule("model.embed_tokens")
    norm = module.get_submodule("model.norm")
    head = module.get_submodule("lm_head")
    tied = head.weight is embed.weight
    for block in blocks:
        fully_shard(block, reshard_after_forward=again, **extra)
    if not tied:
        fully_shard(embed, reshard_after_forward=again, **extra)
    tail = [norm, embed, head] if tied else [norm, head]
    fully_shard(tail, reshard_after_forward=False, **extra)
    if mode == "grad-op":  # accelerate passes the plugin's False to the root as well
        fully_shard(module, reshard_after_forward=False, **extra)
    else:
        fully_shard(module, **extra)


class _Sampler:
    def __init__(self, module: Any) -> None:
        from torch.distributed.fsdp import FSDPModule

        self.groups = []
        for m in module.modules():
            if isinstance(m, FSDPModule):
                self.groups.extend(m._get_fsdp_state()._fsdp_param_groups)
        self.extra: list[Any] = []
        #: a tied parameter's gradients autograd holds until every use has sent its part
        self.buffered: list[Any] = []
        self.param_dtype: Any = None
        self.peak = 0
        self.where = ""
        self.trace: list[tuple[str, int]] = []

    def sample(self, where: str) -> None:
        import torch

        seen: dict[int, int] = {}

        def add(t: Any) -> None:
            if isinstance(t, torch.Tensor):
                s = t.untyped_storage()
                if s.nbytes():
                    seen[s.data_ptr()] = s.nbytes()

        ctx = None
        for group in self.groups:
            ctx = group.comm_ctx
            for p in group.fsdp_params:
                for t in getattr(p, "all_gather_outputs", []):
                    add(t)
                if hasattr(p, "_unsharded_param"):
                    add(p._unsharded_param.grad)
                add(getattr(p, "_unsharded_accumulated_grad", None))
                add(getattr(p, "_sharded_post_forward_param_data", None))
            if group._all_gather_result is not None:
                add(group._all_gather_result.all_gather_output)
        if ctx is not None and hasattr(ctx, "reduce_scatter_states"):
            if ctx.all_gather_state is not None:
                add(ctx.all_gather_state.all_gather_result.all_gather_output)
            for st in ctx.reduce_scatter_states:
                add(st.reduce_scatter_input)
        for t in self.extra:
            add(t)
        for ref in self.buffered:
            t = ref()
            if t is not None:
                add(t)
        total = sum(seen.values())
        self.trace.append((where, total))
        if total > self.peak:
            self.peak, self.where = total, where


def _tied_gradients(sampler: _Sampler, module: Any) -> Any:
    """A dispatch mode for the backward: a tied parameter (the embedding and the head)
    gets its gradient in parts, which autograd sums in its input buffer before it
    lands on the parameter; the parts (new tensors of the parameter's shape and dtype)
    are held weakly and sampled while alive."""
    import weakref

    from torch.utils._python_dispatch import TorchDispatchMode

    embed = module.get_submodule("model.embed_tokens")
    head = module.get_submodule("lm_head")
    tied = head.weight is embed.weight

    class Parts(TorchDispatchMode):
        def __torch_dispatch__(
            self, func: Any, types: Any, args: Any = (), kwargs: Any = None
        ) -> Any:
            import torch

            out = func(*args, **(kwargs or {}))
            weight = embed.weight
            local = getattr(weight, "_local_tensor", weight)
            shape = (embed.num_embeddings, embed.embedding_dim)
            dtype = sampler.param_dtype or local.dtype
            new = tied and isinstance(out, torch.Tensor) and out._base is None
            if new and tuple(out.shape) == shape and out.dtype == dtype:
                sampler.buffered.append(weakref.ref(out))
            return out

    return Parts()


def _instrument(sampler: _Sampler) -> list[tuple[Any, str, Any]]:
    """Wrap FSDP's steps to sample on entry and exit; returns what to restore."""
    from torch.distributed.fsdp._fully_shard import _fsdp_collectives as col
    from torch.distributed.fsdp._fully_shard import _fsdp_param_group as pg

    saved: list[tuple[Any, str, Any]] = []

    def around(owner: Any, name: str) -> None:
        original = getattr(owner, name)
        saved.append((owner, name, original))

        def wrapped(*args: Any, **kwargs: Any) -> Any:
            unit = getattr(args[0], "_module_fqn", None) if args else None
            label = f"{name} {unit}" if isinstance(unit, str) else name
            sampler.sample(f"{label} in")
            out = original(*args, **kwargs)
            sampler.sample(f"{label} out")
            return out

        setattr(owner, name, wrapped)

    for name in ("unshard", "wait_for_unshard", "reshard", "pre_backward", "post_backward"):
        around(pg.FSDPParamGroup, name)
    around(pg, "foreach_all_gather")
    around(pg, "foreach_all_gather_copy_out")
    original_copy_in = col.foreach_reduce_scatter_copy_in
    saved.append((col, "foreach_reduce_scatter_copy_in", original_copy_in))

    def copy_in(grads: Any, buffer: Any, world: int) -> Any:
        sampler.extra = [*grads, buffer]  # the gradients, and the buffer filled from them
        out = original_copy_in(grads, buffer, world)
        sampler.sample("reduce-scatter copy-in")
        sampler.extra = []
        return out

    col.foreach_reduce_scatter_copy_in = copy_in
    return saved


def _rank(rank: int, world: int, configs: list[dict[str, Any]], out: str) -> None:
    import warnings

    warnings.filterwarnings("ignore")
    import torch
    import torch.distributed as dist
    from torch.distributed.fsdp import MixedPrecisionPolicy

    from shapecalc.adapters.torch_bridge import build
    from shapecalc.architectures import get

    init = "file://" + os.path.join(out, "init")
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    results = []
    for config in configs:
        torch.manual_seed(0)
        model = get(config["architecture"])(**config["sizes"]).model()
        module = build(model, device="cpu")
        extra: dict[str, Any] = {}
        if config["mixed"]:
            extra["mp_policy"] = MixedPrecisionPolicy(
                param_dtype=torch.bfloat16,
                reduce_dtype=torch.float32 if config.get("reduce_fp32") else None,
            )
        if config["mode"] == "hybrid":
            from torch.distributed.device_mesh import init_device_mesh

            group = config["shard_group"]
            extra["mesh"] = init_device_mesh(
                "cpu", (world // group, group), mesh_dim_names=("replicate", "shard")
            )
        again: bool | int = config["mode"] != "grad-op"
        if config.get("reshard_to"):
            again = config["reshard_to"]
        _wrap(module, config["mode"], again, extra)
        sampler = _Sampler(module)
        sampler.param_dtype = torch.bfloat16 if config["mixed"] else None
        saved = _instrument(sampler)
        try:
            ids = torch.randint(0, config["sizes"]["vocab"], (config["batch"], config["seq_len"]))
            out_ = module(ids)
            logits = out_ if isinstance(out_, torch.Tensor) else out_[0]
            loss = logits.float().sum()
            with _tied_gradients(sampler, module):
                loss.backward()
        finally:
            for owner, name, original in saved:
                setattr(owner, name, original)
        results.append({"peak": sampler.peak, "where": sampler.where, "trace": sampler.trace})
    Path(out, f"{rank}.json").write_text(json.dumps(results))
    dist.destroy_process_group()


def gathered(world: int, configs: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """For each rank, for each configuration: ``peak`` bytes, the step it was at
    (``where``) and the whole ``trace`` of (step, bytes)."""
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory() as out:
        mp.spawn(_rank, args=(world, configs, out), nprocs=world, join=True)
        return [json.loads(Path(out, f"{r}.json").read_text()) for r in range(world)]
