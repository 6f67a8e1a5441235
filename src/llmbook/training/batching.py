"""Batches for the training loop (chapter 9): dynamic padding and length-grouped sampling, and
the cut of each batch across processes when the loop runs on several ("Scaling out")."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler
from transformers import DataCollatorWithPadding


class LengthGroupedBatchSampler(Sampler[list[int]]):
    """Batches of indices: shuffled per epoch and, with ``group_by_length``, made of texts of
    similar length, so dynamic padding wastes little compute.

    Grouping sorts each "mega-batch" of ``mega_batches * batch_size`` shuffled examples by
    length and cuts it into batches, then shuffles the batch order: randomness is kept while
    most padding disappears.  ``set_epoch`` makes each epoch's order different and repeatable.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        shuffle: bool = True,
        group_by_length: bool = True,
        seed: int = 0,
        mega_batches: int = 50,
    ):
        self.lengths = np.asarray(lengths)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.group_by_length = group_by_length
        self.seed = seed
        self.mega_batches = mega_batches
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return math.ceil(len(self.lengths) / self.batch_size)

    def __iter__(self):
        rng = np.random.default_rng(self.seed + self.epoch)
        n = len(self.lengths)
        order = rng.permutation(n) if self.shuffle else np.arange(n)
        if self.group_by_length:
            size = self.batch_size * self.mega_batches if self.shuffle else n
            order = np.concatenate(
                [
                    chunk[np.argsort(-self.lengths[chunk], kind="stable")]
                    for chunk in np.array_split(order, max(1, math.ceil(n / size)))
                ]
            )
        batches = [order[i : i + self.batch_size].tolist() for i in range(0, n, self.batch_size)]
        if self.shuffle and self.group_by_length:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        yield from batches


class ProcessShardedBatchSampler(Sampler[list[int]]):
    """The batches of ``batch_sampler`` (global batches), each cut into ``processes`` contiguous,
    near-equal parts yielded one after the other.

    Under ``accelerate``, process ``p`` takes every ``processes``-th batch starting at ``p``
    (:class:`accelerate.data_loader.BatchSamplerShard`), that is part ``p`` of every global
    batch: the processes together see each global batch of a one-process run, every example
    exactly once per epoch, with no padding examples.  The short batch (the remainder, wherever
    the shuffle put it), when it has fewer examples than processes and so could not give each
    one an example, is merged into a neighbouring batch.
    ``batch_size`` is None, so ``accelerate`` takes the parts as they come.
    """

    batch_size = None

    def __init__(self, batch_sampler: LengthGroupedBatchSampler, processes: int):
        if len(batch_sampler.lengths) < processes:
            raise ValueError(f"{len(batch_sampler.lengths)} examples cannot feed {processes} "
                             f"processes")
        self.batch_sampler, self.processes = batch_sampler, processes

    def set_epoch(self, epoch: int) -> None:
        self.batch_sampler.set_epoch(epoch)

    def global_batches(self) -> list[list[int]]:
        batches = list(self.batch_sampler)
        short = [i for i, batch in enumerate(batches) if len(batch) < self.processes]
        if short and len(batches) > 1:  # the short one (shuffled anywhere) joins a neighbour
            neighbour = short[0] - 1 if short[0] else 1
            batches[neighbour] = batches[neighbour] + batches[short[0]]
            del batches[short[0]]
        return batches

    def __len__(self) -> int:
        sampler = self.batch_sampler
        remainder = len(sampler.lengths) % sampler.batch_size
        merged = len(sampler) > 1 and 0 < remainder < self.processes
        return self.processes * (len(sampler) - merged)

    def __iter__(self):
        for batch in self.global_batches():
            for part in np.array_split(np.asarray(batch), self.processes):
                yield part.tolist()


def make_collator(tokenizer, padding: str = "longest", max_length: int | None = None):
    """Pads each batch to its longest text (``"longest"``) or always to ``max_length``."""
    return DataCollatorWithPadding(tokenizer, padding=padding, max_length=max_length)


def loading_options() -> dict:
    """DataLoader options for the device: with CUDA, worker processes collate the next batches
    while the GPU computes and pinned memory speeds up the copy to it; on the CPU the workers
    would take cores from the training itself, so batches are collated in the main process."""
    if not torch.cuda.is_available():
        return {}
    workers = min(4, max(1, (os.cpu_count() or 2) // 2))
    return {"num_workers": workers, "pin_memory": True, "persistent_workers": True}


def make_dataloader(dataset, collator, batch_size: int, *, shuffle: bool, group_by_length: bool,
                    seed: int = 0, processes: int = 1) -> DataLoader:
    """A DataLoader over a tokenized dataset using :class:`LengthGroupedBatchSampler`;
    ``batch_size`` is the global batch, cut across ``processes``
    (:class:`ProcessShardedBatchSampler`) when there are several; :func:`loading_options` for
    the device."""
    lengths = [len(ids) for ids in dataset["input_ids"]]
    sampler = LengthGroupedBatchSampler(lengths, batch_size, shuffle, group_by_length, seed)
    if processes > 1:
        sampler = ProcessShardedBatchSampler(sampler, processes)
    return DataLoader(dataset, batch_sampler=sampler, collate_fn=collator, **loading_options())
