"""The torch cell-list neighbour search equals brute force and never mixes samples."""
import pytest
import torch

from rnadiff.geometry import neighbor_pairs_torch


def brute(x, cutoff, mask=None, exclude=None):
    out = set()
    s, n, _ = x.shape
    d = torch.cdist(x.double(), x.double())  # fine on small test inputs
    excl = {tuple(sorted(p)) for p in (exclude.tolist() if exclude is not None else [])}
    for k in range(s):
        for i in range(n):
            for j in range(i + 1, n):
                if d[k, i, j] < cutoff and (mask is None or (mask[i] and mask[j])) and (i, j) not in excl:
                    out.add((k, i, j))
    return out


@pytest.mark.parametrize("seed, n, box, cutoff", [(0, 60, 10.0, 3.0), (1, 150, 25.0, 5.6), (2, 40, 3.0, 4.0),
                                                   (3, 90, 40.0, 1.0)])
def test_torch_neighbor_pairs_equal_brute_force(seed, n, box, cutoff):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(3, n, 3, generator=g) * box - box / 2
    x[1] += 100.0  # samples in different places must still never pair across samples
    mask = torch.rand(n, generator=g) > 0.1
    exclude = torch.randint(0, n, (n, 2), generator=g)
    exclude = exclude[exclude[:, 0] != exclude[:, 1]]
    smp, i, j = neighbor_pairs_torch(x, cutoff, atom_mask=mask, exclude=exclude)
    got = set(zip(smp.tolist(), i.tolist(), j.tolist()))
    assert len(got) == len(smp)  # no duplicates
    assert got == brute(x, cutoff, mask, exclude)
    assert got  # the inputs do have neighbours
    # sorted by (sample, i, j)
    key = (smp * n + i) * n + j
    assert torch.equal(key, torch.sort(key).values)


def test_non_finite_atoms_and_degenerate_inputs():
    x = torch.zeros(1, 4, 3)
    x[0, 1, 0] = 1.0
    x[0, 2] = float("nan")
    smp, i, j = neighbor_pairs_torch(x, 2.0)
    assert set(zip(i.tolist(), j.tolist())) == {(0, 1), (0, 3), (1, 3)}
    assert neighbor_pairs_torch(torch.zeros(1, 1, 3), 2.0)[0].numel() == 0
    with pytest.raises(ValueError):
        neighbor_pairs_torch(x, 0.0)
