"""One rank of a tensor-parallel run on CPU (gloo): a transformers model built from a
config, its modules parallelized by torch's ``parallelize_module`` as the config class's
``base_model_tp_plan`` says (colwise -> ColwiseParallel, rowwise -> RowwiseParallel),
the token embedding and the head vocabulary-parallel as Megatron splits them
(RowwiseParallel on an Embedding shards its rows; ColwiseParallel on the head); prints
every parameter's local shape as JSON, one line per case. A case's tp below the world
size runs on the tensor-parallel dimension of a (world/tp, tp) mesh. Run by
tests/test_model_parallel_dist.py.

Usage: python tp_worker.py RANK WORLD_SIZE INIT_FILE CASES_JSON ([[tp, config], ...])
"""

from __future__ import annotations

import json
import sys

import torch
import torch.distributed as dist
import transformers
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.tensor import Replicate
from torch.distributed.tensor.parallel import (
    ColwiseParallel,
    RowwiseParallel,
    parallelize_module,
)


def local_shapes(config_dict: dict[str, object], tp: int, world: int) -> dict[str, list[int]]:
    config = transformers.AutoConfig.for_model(**config_dict)
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(config)
    if tp == world:
        mesh = init_device_mesh("cpu", (world,))
    else:
        mesh = init_device_mesh("cpu", (world // tp, tp), mesh_dim_names=("dp", "tp"))["tp"]
    styles = {"colwise": ColwiseParallel, "rowwise": RowwiseParallel}
    plan = {}
    for pattern, style in type(config).base_model_tp_plan.items():
        plan[f"model.{pattern}"] = styles[style]()
    plan["model.embed_tokens"] = RowwiseParallel(input_layouts=Replicate())
    plan["lm_head"] = ColwiseParallel()
    parallelize_module(model, mesh, plan)
    shapes = {}
    for name, param in model.named_parameters():
        local = param.to_local() if hasattr(param, "to_local") else param
        shapes[name] = list(local.shape)
    return shapes


def main() -> None:
    rank, world, init_file, cases = sys.argv[1:5]
    dist.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=int(rank), world_size=int(world)
    )
    for tp, config in json.loads(cases):
        print(json.dumps(local_shapes(config, tp, int(world))))
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
