"""Global batches cut across processes: with accelerate's own sharding on top, every example is
seen once per epoch, by processes that make the same number of steps (the scaling-out section)."""

import numpy as np
import pytest
from accelerate.data_loader import BatchSamplerShard

from llmbook.training import (
    LengthGroupedBatchSampler,
    ProcessShardedBatchSampler,
    loading_options,
    make_dataloader,
)


def shards(n: int, batch_size: int, processes: int):
    lengths = np.random.default_rng(0).integers(3, 60, size=n)
    sampler = ProcessShardedBatchSampler(LengthGroupedBatchSampler(lengths, batch_size),
                                         processes)
    return sampler, [list(BatchSamplerShard(sampler, processes, rank))
                     for rank in range(processes)]


@pytest.mark.parametrize(("n", "batch_size", "processes"),
                         [(96, 16, 2), (101, 16, 2), (97, 16, 2), (50, 8, 3), (7, 16, 2)])
def test_every_example_once_and_every_process_the_same_steps(n, batch_size, processes):
    sampler, parts = shards(n, batch_size, processes)
    assert {len(batches) for batches in parts} == {len(sampler) // processes}
    assert all(batches for batches in parts)
    seen = [i for batches in parts for batch in batches for i in batch]
    assert sorted(seen) == list(range(n))
    assert all(len(batch) >= 1 for batches in parts for batch in batches)


def test_the_processes_hold_the_parts_of_the_one_process_batches():
    sampler, (first, second) = shards(101, 16, 2)
    one_process = list(sampler.batch_sampler)
    assert [sorted(a + b) for a, b in zip(first, second, strict=True)] == [
        sorted(batch) for batch in one_process]
    assert sorted(len(a) - len(b) for a, b in zip(first, second, strict=True)) == [0] * 6 + [1]


def test_a_batch_too_small_to_share_joins_a_neighbour():
    sampler, _ = shards(97, 16, 2)  # 6 batches of 16 and 1 example
    assert len(sampler) == 2 * 6
    assert sorted(len(batch) for batch in sampler.global_batches()) == [16] * 5 + [17]
    with pytest.raises(ValueError, match="cannot feed"):
        shards(1, 16, 2)


def test_epochs_differ_and_repeat():
    sampler, _ = shards(64, 8, 2)
    first = list(sampler)
    sampler.set_epoch(1)
    assert list(sampler) != first
    sampler.set_epoch(0)
    assert list(sampler) == first


def test_loaders_use_workers_and_pinned_memory_only_with_cuda(monkeypatch):
    from datasets import Dataset

    from llmbook.training import batching

    dataset = Dataset.from_dict({"input_ids": [[1, 2], [3]], "label": [0, 1]})
    monkeypatch.setattr(batching.torch.cuda, "is_available", lambda: False)
    loader = make_dataloader(dataset, None, 2, shuffle=False, group_by_length=False)
    assert loading_options() == {} and loader.num_workers == 0 and not loader.pin_memory
    monkeypatch.setattr(batching.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(batching.os, "cpu_count", lambda: 16)
    loader = make_dataloader(dataset, None, 2, shuffle=False, group_by_length=False)
    assert (loader.num_workers, loader.pin_memory, loader.persistent_workers) == (4, True, True)
    monkeypatch.setattr(batching.os, "cpu_count", lambda: 2)
    assert loading_options()["num_workers"] == 1
