"""Training/validation examples: crop -> partial input -> (conditioner features, ground truth, bonds).

Every example is a pure function of (record, seed, example number): the k-th training example of
a run is the same whether or not the run was interrupted and resumed, which is what makes
resumed training continue exactly.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch.utils.data import Dataset, IterableDataset

from rnadiff.train.crop import contiguous_tokens, crop_bonds, crop_features, spatial_tokens
from rnadiff.train.data import Record
from rnadiff.train.partial import MODES, PartialSettings, simulate_partial


@dataclass
class Example:
    name: str
    mode: str
    features: dict[str, torch.Tensor]  # conditioner/denoiser input: coords = the partial input
    x_true: torch.Tensor  # [N, 3] ground truth
    true_mask: torch.Tensor  # [N] resolved atoms
    bond_index: torch.Tensor  # [n_bond, 2]
    bond_length: torch.Tensor  # [n_bond]


def make_generator(*keys: int) -> torch.Generator:
    """A CPU generator seeded from integers (stable across runs and machines)."""
    seed = 0
    for k in keys:
        seed = (seed * 1_000_003 + int(k)) % (2**63 - 1)
    return torch.Generator().manual_seed(seed)


def build_example(record: Record, *, crop_size: int, spatial_prob: float, partial: PartialSettings,
                  generator: torch.Generator, mode: str | None = None) -> Example:
    f = record.features
    if float(torch.rand((), generator=generator)) < spatial_prob:
        tokens = spatial_tokens(f, crop_size, generator)
    else:
        tokens = contiguous_tokens(record.n_token, crop_size, generator)
    cropped, atoms = crop_features(f, tokens)
    bonds, lengths = crop_bonds(record.bonds, record.bond_lengths, atoms, int(f["coords"].shape[0]))
    given, mode = simulate_partial(cropped, partial, generator, mode)
    return Example(name=record.name, mode=mode, features=given, x_true=cropped["coords"].float(),
                   true_mask=cropped["atom_present_mask"].float(), bond_index=bonds, bond_length=lengths)


class TrainStream(IterableDataset):
    """Endless batches [Example × batch_size]; batch i holds examples i·B … i·B+B−1.

    `start_step()` is read when iteration starts, so a resumed run (whose global step was
    restored from the checkpoint) continues with the batch it would have seen next.
    """

    def __init__(self, records: list[Record], *, batch_size: int, crop_size: int, spatial_prob: float,
                 partial: PartialSettings, seed: int, start_step: Callable[[], int] = lambda: 0):
        if not records:
            raise ValueError("no training structures")
        self.records, self.batch_size, self.crop_size = records, batch_size, crop_size
        self.spatial_prob, self.partial, self.seed, self.start_step = spatial_prob, partial, seed, start_step

    def example(self, k: int) -> Example:
        n = len(self.records)
        epoch, pos = divmod(k, n)
        order = torch.randperm(n, generator=make_generator(self.seed, 1, epoch))
        record = self.records[int(order[pos])]
        return build_example(record, crop_size=self.crop_size, spatial_prob=self.spatial_prob,
                             partial=self.partial, generator=make_generator(self.seed, 2, k))

    def __iter__(self) -> Iterator[list[Example]]:
        step = int(self.start_step())
        while True:
            yield [self.example(step * self.batch_size + j) for j in range(self.batch_size)]
            step += 1


class ValidationSet(Dataset):
    """Fixed validation examples (crop, partial mode cycling through all modes, noise): one per record."""

    def __init__(self, records: list[Record], *, crop_size: int, partial: PartialSettings, seed: int):
        self.examples = [
            build_example(r, crop_size=crop_size, spatial_prob=0.0, partial=partial,
                          generator=make_generator(seed, 3, i), mode=MODES[i % len(MODES)])
            for i, r in enumerate(records)
        ]

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> list[Example]:
        return [self.examples[i]]
