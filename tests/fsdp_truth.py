"""Real sharding on this machine: FSDP2 (``fully_shard``) over gloo on CPU, each rank a
spawned process, and the bytes each rank holds after an Adam step; ``hybrid`` shards
over a 2-D mesh (HSDP: replicated across groups, sharded within ``shard_group`` ranks).

:func:`held` spawns ``world`` ranks; each builds every configuration's model with
shapecalc's own bridge, shards each repeated block and the root (``reshard_after_forward``
False is FSDP's grad-op), optionally under ``MixedPrecisionPolicy(param_dtype=bf16)``,
runs a forward, a backward and ``Adam.step``, and writes what it holds:

- ``parameters``: each parameter's local shard's storage (padded, as FSDP allocates it),
- ``gradients``: the storages the sharded gradients live in (a unit's reduce-scatter
  output), each once,
- ``optimizer state``: ``exp_avg`` and ``exp_avg_sq`` (their local shards) and ``step``.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any


def _rank(rank: int, world: int, configs: list[dict[str, Any]], out: str) -> None:
    import warnings

    warnings.filterwarnings("ignore")
    import torch
    import torch.distributed as dist
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    from shapecalc.adapters.torch_bridge import build
    from shapecalc.architectures import get

    # rendezvous through a file of this run's own folder, not a TCP port: runs side by side
    # (pytest-xdist's workers) cannot meet each other's ranks or race for a free port
    init = "file://" + os.path.join(out, "init")
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    results = []
    for config in configs:
        torch.manual_seed(0)
        model = get(config["architecture"])(**config["sizes"]).model()
        module = build(model, device="cpu")
        policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16) if config["mixed"] else None
        extra: dict[str, Any] = {} if policy is None else {"mp_policy": policy}
        if config["mode"] == "hybrid":  # HSDP: replicate over the groups, shard within
            from torch.distributed.device_mesh import init_device_mesh

            group = config["shard_group"]
            extra["mesh"] = init_device_mesh(
                "cpu", (world // group, group), mesh_dim_names=("replicate", "shard")
            )
        again = config["mode"] != "grad-op"
        for name, sub in module.named_modules():
            if re.fullmatch(r"(.*\.)?layers\.\d+", name):
                fully_shard(sub, reshard_after_forward=again, **extra)
        fully_shard(module, reshard_after_forward=again, **extra)
        optimizer = torch.optim.Adam(module.parameters())
        ids = torch.randint(0, config["sizes"]["vocab"], (config["batch"], config["seq_len"]))
        out_ = module(ids)
        logits = out_ if isinstance(out_, torch.Tensor) else out_[0]
        logits.float().sum().backward()
        optimizer.step()
        params = sum(p._local_tensor.untyped_storage().nbytes() for p in module.parameters())
        storages: dict[int, int] = {}
        for p in module.parameters():
            grad = p.grad._local_tensor
            storages[grad.untyped_storage().data_ptr()] = grad.untyped_storage().nbytes()
        state = 0
        for p in module.parameters():
            for key in ("exp_avg", "exp_avg_sq"):
                local = optimizer.state[p][key]._local_tensor
                state += local.numel() * local.element_size()
            step = optimizer.state[p]["step"]
            state += step.numel() * step.element_size()
        results.append(
            {"parameters": params, "gradients": sum(storages.values()), "optimizer state": state}
        )
    Path(out, f"{rank}.json").write_text(json.dumps(results))
    dist.destroy_process_group()


def held(world: int, configs: list[dict[str, Any]]) -> list[list[dict[str, int]]]:
    """For each rank, for each configuration, the bytes it holds (see the module)."""
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory() as out:
        mp.spawn(_rank, args=(world, configs, out), nprocs=world, join=True)
        return [json.loads(Path(out, f"{r}.json").read_text()) for r in range(world)]
