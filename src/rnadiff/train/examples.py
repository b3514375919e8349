"""Training/validation examples: crop -> partial input -> base-pair prior -> (features, ground truth,
bonds, base-pair atom pairs).

The base-pair prior the conditioner sees is what inference would compute from the same partial
input (`rnadiff.chem.pairing`); with probability `ss_prob` the crop's annotated canonical pairs are
also given as a user's secondary structure would be. The pair loss compares every base-atom
distance across each annotated pair with the truth (H-bonds, coplanarity, C1′–C1′ span).

Every example is a pure function of (record, seed, example number): the k-th training example of
a run is the same whether or not the run was interrupted and resumed, which is what makes
resumed training continue exactly.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch.utils.data import Dataset, IterableDataset

import numpy as np

from rnadiff.chem.features import atom_name_code, atom_name_codes, backbone_atom_mask
from rnadiff.chem.pairing import pair_prior
from rnadiff.train.crop import contiguous_tokens, crop_bonds, crop_features, crop_index_pairs, spatial_tokens
from rnadiff.train.data import Record
from rnadiff.train.partial import MODES, PartialSettings, simulate_partial

_C1_CODE = atom_name_code("C1'")
LENGTH_BINS = (50, 100)  # residues: <= 50, 51-100, > 100 are sampled equally often when balanced


@dataclass
class Example:
    name: str
    mode: str
    features: dict[str, torch.Tensor]  # conditioner/denoiser input: coords = the partial input
    x_true: torch.Tensor  # [N, 3] ground truth
    true_mask: torch.Tensor  # [N] resolved atoms
    bond_index: torch.Tensor  # [n_bond, 2]
    bond_length: torch.Tensor  # [n_bond]
    pair_atoms: torch.Tensor  # [n, 2] atom pairs across annotated canonical base pairs (pair loss)


def make_generator(*keys: int) -> torch.Generator:
    """A CPU generator seeded from integers (stable across runs and machines)."""
    seed = 0
    for k in keys:
        seed = (seed * 1_000_003 + int(k)) % (2**63 - 1)
    return torch.Generator().manual_seed(seed)


def crop_pairs(pairs: np.ndarray, tokens: torch.Tensor, n_token: int) -> list[tuple[int, int]]:
    """Annotated pairs with both tokens in the crop, renumbered to crop positions."""
    mapped, _ = crop_index_pairs(pairs, tokens, n_token)
    return [(int(a), int(b)) for a, b in mapped]


def base_pair_atoms(features: dict[str, torch.Tensor], pairs: list[tuple[int, int]]) -> torch.Tensor:
    """[n, 2] atom index pairs: every base atom (and C1′) of i with every one of j, per pair."""
    codes = atom_name_codes(features["ref_atom_name_chars"])
    side = ~backbone_atom_mask(codes) | (codes == _C1_CODE)
    tok = features["atom_to_token_idx"].long()
    out = []
    for a, b in pairs:
        ia = torch.nonzero(side & (tok == a)).flatten()
        ib = torch.nonzero(side & (tok == b)).flatten()
        out.append(torch.cartesian_prod(ia, ib))
    return torch.cat(out) if out else torch.zeros((0, 2), dtype=torch.long)


def build_example(record: Record, *, crop_size: int, spatial_prob: float, partial: PartialSettings,
                  generator: torch.Generator, mode: str | None = None, ss_prob: float = 0.0) -> Example:
    f = record.features
    if float(torch.rand((), generator=generator)) < spatial_prob:
        tokens = spatial_tokens(f, crop_size, generator)
    else:
        tokens = contiguous_tokens(record.n_token, crop_size, generator)
    cropped, atoms = crop_features(f, tokens)
    bonds, lengths = crop_bonds(record.bonds, record.bond_lengths, atoms, int(f["coords"].shape[0]))
    given, mode = simulate_partial(cropped, partial, generator, mode)
    pairs = crop_pairs(record.pairs, tokens, record.n_token)
    user_ss = pairs if float(torch.rand((), generator=generator)) < ss_prob else None
    given["pair_prior"] = pair_prior(given, user_ss)
    return Example(name=record.name, mode=mode, features=given, x_true=cropped["coords"].float(),
                   true_mask=cropped["atom_present_mask"].float(), bond_index=bonds, bond_length=lengths,
                   pair_atoms=base_pair_atoms(cropped, pairs))


def length_bin(n_token: int) -> int:
    return sum(n_token > edge for edge in LENGTH_BINS)


class TrainStream(IterableDataset):
    """Endless batches [Example × batch_size]; batch i holds examples i·B … i·B+B−1.

    `start_step()` is read when iteration starts, so a resumed run (whose global step was
    restored from the checkpoint) continues with the batch it would have seen next.
    """

    def __init__(self, records: list[Record], *, batch_size: int, crop_size: int, spatial_prob: float,
                 partial: PartialSettings, seed: int, start_step: Callable[[], int] = lambda: 0,
                 length_balanced: bool = False, ss_prob: float = 0.0):
        if not records:
            raise ValueError("no training structures")
        self.records, self.batch_size, self.crop_size = records, batch_size, crop_size
        self.spatial_prob, self.partial, self.seed, self.start_step = spatial_prob, partial, seed, start_step
        self.length_balanced, self.ss_prob = length_balanced, ss_prob
        bins: dict[int, list[int]] = {}
        for i, r in enumerate(records):
            bins.setdefault(length_bin(r.n_token), []).append(i)
        self.bins = [bins[b] for b in sorted(bins)]

    def record_for(self, k: int) -> Record:
        """Example k's structure: an epoch-wise permutation, or (balanced) a uniformly drawn length
        bin, then a uniform record of that bin — long chains are few but seen as often as short ones."""
        if self.length_balanced:
            g = make_generator(self.seed, 1, k)
            members = self.bins[int(torch.randint(len(self.bins), (1,), generator=g))]
            return self.records[members[int(torch.randint(len(members), (1,), generator=g))]]
        n = len(self.records)
        epoch, pos = divmod(k, n)
        order = torch.randperm(n, generator=make_generator(self.seed, 1, epoch))
        return self.records[int(order[pos])]

    def example(self, k: int) -> Example:
        return build_example(self.record_for(k), crop_size=self.crop_size, spatial_prob=self.spatial_prob,
                             partial=self.partial, generator=make_generator(self.seed, 2, k), ss_prob=self.ss_prob)

    def __iter__(self) -> Iterator[list[Example]]:
        step = int(self.start_step())
        while True:
            yield [self.example(step * self.batch_size + j) for j in range(self.batch_size)]
            step += 1


class ValidationSet(Dataset):
    """Fixed validation examples (crop, partial mode cycling through all modes, noise): one per record."""

    def __init__(self, records: list[Record], *, crop_size: int, partial: PartialSettings, seed: int,
                 ss_prob: float = 0.0):
        self.examples = [
            build_example(r, crop_size=crop_size, spatial_prob=0.0, partial=partial,
                          generator=make_generator(seed, 3, i), mode=MODES[i % len(MODES)], ss_prob=ss_prob)
            for i, r in enumerate(records)
        ]

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> list[Example]:
        return [self.examples[i]]
