"""Data-parallel training on two CPU processes (gloo): DDP, and FSDP2 (fully_shard), each two
optimiser steps on half the batch per process, give the parameters of one process trained on the
whole batch."""

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from conftest import generator
from model_helpers import small_lm, token_ids

WORLD = 2
STEPS = 2


def batch():
    return token_ids(generator("distributed-batch"), 4, 12, 29)


def train(model, idx_steps, forward=None):
    """SGD steps (momentum, weight decay by the reference's groups) on the next-token loss. Not
    Adam: it divides by the gradients' magnitude, which turns the rounding differences of the
    two reductions into full steps where a gradient is about zero. forward: the wrapper to run
    (DDP's), model by default."""
    forward = forward or model
    decay, no_decay = model.get_weight_decay_optim_groups()
    optimiser = torch.optim.SGD([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                                lr=0.5, momentum=0.9)
    for idx in idx_steps:
        optimiser.zero_grad()
        F.cross_entropy(forward(idx[:, :-1]).flatten(0, 1), idx[:, 1:].flatten()).backward()
        optimiser.step()


def fresh_model():
    torch.manual_seed(0)
    return small_lm(num_blocks=2).train()


def worker(rank, mode, init_file, out_file):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        model = fresh_model()
        shard = batch().chunk(WORLD)[rank]
        if mode == "ddp":
            train(model, [shard] * STEPS, torch.nn.parallel.DistributedDataParallel(model))
            params = {n: p.detach() for n, p in model.named_parameters()}
        else:
            from torch.distributed.device_mesh import init_device_mesh
            from torch.distributed.fsdp import fully_shard

            mesh = init_device_mesh("cpu", (WORLD,))
            for block in model.xlstm_block_stack.blocks:
                fully_shard(block, mesh=mesh)
            fully_shard(model, mesh=mesh)
            train(model, [shard] * STEPS)
            params = {n: p.full_tensor().detach() for n, p in model.named_parameters()}
        if rank == 0:
            torch.save(params, out_file)
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("mode", ["ddp", "fsdp2"])
def test_two_process_training_equals_one_process(tmp_path, mode):
    out_file = tmp_path / "params.pt"
    mp.spawn(worker, args=(mode, str(tmp_path / "init"), str(out_file)), nprocs=WORLD, join=True)
    distributed = torch.load(out_file)
    model, initial = fresh_model(), fresh_model()
    train(model, [batch()] * STEPS)
    moved = max((p - q).abs().max().item() for p, q in zip(model.parameters(), initial.parameters()))
    assert moved > 1e-2  # the steps changed the parameters
    for name, param in model.named_parameters():
        torch.testing.assert_close(distributed[name], param.detach(), rtol=1e-5, atol=1e-6, msg=name)
