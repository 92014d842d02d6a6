import torch

from tests.distributed_harness import run_ranks
from utils.distributed import Dist, all_gather_rows, all_reduce_sum, init_distributed, shard


def _collectives():
    ctx = init_distributed("cpu")
    rows = torch.full((ctx.rank + 1, 2), float(ctx.rank))  # rank 0 has 1 row, rank 1 has 2
    total = all_reduce_sum(torch.tensor([ctx.rank + 1.0], dtype=torch.float64), ctx)
    return ctx.rank, ctx.world_size, all_gather_rows(rows, ctx).tolist(), total.item()


def test_two_gloo_ranks_reduce_and_gather():
    results = run_ranks(_collectives)
    for rank, (r, world, gathered, total) in enumerate(results):
        assert (r, world, total) == (rank, 2, 3.0)
        assert gathered == [[0.0, 0.0], [1.0, 1.0], [1.0, 1.0]]


def test_shards_cover_everything_once_even_when_some_are_empty():
    for n in (0, 1, 5, 12):
        for world in (1, 2, 3):
            parts = [shard(n, Dist(rank=r, world_size=world, device=torch.device("cpu"))) for r in range(world)]
            assert [i for p in parts for i in p] == list(range(n))


def test_single_process_is_a_no_op():
    ctx = init_distributed("cpu")
    t = torch.tensor([2.0])
    assert not ctx.active and all_reduce_sum(t, ctx).item() == 2.0 and all_gather_rows(t, ctx) is t
