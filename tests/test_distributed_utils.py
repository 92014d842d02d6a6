import torch

from tests.distributed_harness import run_ranks
from utils.distributed import Dist, all_gather_objects, all_gather_rows, all_reduce_sum, init_distributed, shard


def _collectives():
    ctx = init_distributed("cpu")
    rows = torch.full((ctx.rank + 1, 2), float(ctx.rank))  # rank 0 has 1 row, rank 1 has 2
    total = all_reduce_sum(torch.tensor([ctx.rank + 1.0], dtype=torch.float64), ctx)
    to_main = all_gather_rows(rows, ctx, to=0)
    objects = all_gather_objects(f"r{ctx.rank}", ctx, to=0)
    return (ctx.rank, ctx.world_size, all_gather_rows(rows, ctx).tolist(), total.item(),
            None if to_main is None else to_main.tolist(), objects)


def test_two_gloo_ranks_reduce_and_gather():
    results = run_ranks(_collectives)
    for rank, (r, world, gathered, total, to_main, objects) in enumerate(results):
        assert (r, world, total) == (rank, 2, 3.0)
        assert gathered == [[0.0, 0.0], [1.0, 1.0], [1.0, 1.0]]
        # to=0: only rank 0 receives
        assert to_main == (gathered if rank == 0 else None)
        assert objects == (["r0", "r1"] if rank == 0 else None)


def test_shards_cover_everything_once_even_when_some_are_empty():
    for n in (0, 1, 5, 12):
        for world in (1, 2, 3):
            parts = [shard(n, Dist(rank=r, world_size=world, device=torch.device("cpu"))) for r in range(world)]
            assert [i for p in parts for i in p] == list(range(n))


def test_single_process_is_a_no_op():
    ctx = init_distributed("cpu")
    t = torch.tensor([2.0])
    assert not ctx.active and all_reduce_sum(t, ctx).item() == 2.0 and all_gather_rows(t, ctx) is t
