"""A learned canonical base-pair classifier over the anchor atoms an input gives.

Which bases pair is written in the coarse geometry: a canonical pair holds its C1′, P, C4′ and
glycosidic N atoms at characteristic cross-strand distances, and so do the pairs stacked on it
(the A-form helix). The first prior scored candidates by hand-set z-scores of one stacked
neighbour pair; it missed isolated pairs and helix ends (recall 0.76, precision 0.84 from C1′).
This module scores a candidate (i, j) from the distances of a 5 × 5 window of residues around it,
d(i+a, j+b) for a, b in −2..2, plus the local strand geometry of both sides, under every anchor the
input gives, with a small MLP trained on annotated pairs of the training chains
(`rnadiff.train.pair_classifier`, weights in `rnadiff/data/pair_classifier/`).

Inputs of any kind go through the same features: an anchor the input lacks is a masked 0.
"""
from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

import numpy as np

WINDOW = (-2, -1, 0, 1, 2)  # offsets along each strand around the candidate pair
ANCHORS = ("C1'", "P", "C4'", "N")  # N: N9 of purines, N1 of pyrimidines
# Along-strand distances (offsets from the pair's own residue) that describe a strand's local shape.
STRAND_STEPS = ((-1, 0), (0, 1), (-1, 1), (0, 2), (-2, 0))
CANDIDATE_RADIUS = {"C1'": 16.0, "P": 23.0, "C4'": 20.0, "N": 14.5}  # Å: no canonical pair is farther
DISTANCE_SCALE = 10.0  # Å: distances enter as d / 10, capped at MAX_DISTANCE
MAX_DISTANCE = 40.0
# The one-hot layout of the pair type (the complementary pairs of rnadiff.chem.pairing, in a fixed order).
PAIR_TYPES = (("G", "C"), ("C", "G"), ("A", "U"), ("U", "A"), ("G", "U"), ("U", "G"))
N_GEOMETRY = len(ANCHORS) * (len(WINDOW) ** 2 + 2 * len(STRAND_STEPS))
N_FEATURES = 2 * N_GEOMETRY + len(PAIR_TYPES) + 2 * (len(WINDOW) - 1) + 2


def walk(next_token: np.ndarray, steps: int) -> np.ndarray:
    """[T] index of the token `steps` bonds along the chain (negative: backwards), −1 past an end."""
    prev = np.full(len(next_token), -1)
    prev[next_token[next_token >= 0]] = np.nonzero(next_token >= 0)[0]
    step = next_token if steps > 0 else prev
    out = np.arange(len(next_token))
    for _ in range(abs(steps)):
        out = np.where(out >= 0, step[np.maximum(out, 0)], -1)
    return out


def _distances(anchor: tuple[np.ndarray, np.ndarray], a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(d / DISTANCE_SCALE, given) of anchor distances between tokens a and b (−1: none)."""
    pos, known = anchor
    ok = (a >= 0) & (b >= 0)
    a0, b0 = np.maximum(a, 0), np.maximum(b, 0)
    ok &= known[a0] & known[b0]
    d = np.minimum(np.linalg.norm(pos[a0] - pos[b0], axis=-1), MAX_DISTANCE) / DISTANCE_SCALE
    return np.where(ok, d, 0.0), ok


def pair_features(anchors: dict[str, tuple[np.ndarray, np.ndarray]], parents: list[str], next_token: np.ndarray,
                  same_chain: np.ndarray, pairs: np.ndarray, complementary: frozenset[tuple[str, str]]) -> np.ndarray:
    """[M, N_FEATURES] float32 features of candidate pairs [M, 2] (i < j).

    anchors: name -> (positions [T, 3], given [T]); parents: one-letter parent per token;
    next_token: [T] covalent successor (−1 at ends and breaks); same_chain: [M] bool;
    complementary: the (parent, parent) pairs that pair canonically (`rnadiff.chem.pairing` owns it).
    Layout: window and strand distances per anchor, their masks, pair type one-hot, whether the
    diagonal neighbours (i+a, j−a) are complementary and exist, loop length, same chain.
    """
    i, j = pairs[:, 0], pairs[:, 1]
    off = {s: walk(next_token, s) for s in range(-2, 3)}
    values, masks = [], []
    for name in ANCHORS:
        for a in WINDOW:
            for b in WINDOW:
                # j's strand runs the other way: offset b counts from j towards the 5′ end.
                d, ok = _distances(anchors[name], off[a][i], off[-b][j])
                values.append(d)
                masks.append(ok)
        for side in (i, j):
            for s, t in STRAND_STEPS:
                d, ok = _distances(anchors[name], off[s][side], off[t][side])
                values.append(d)
                masks.append(ok)
    pair_type = np.array([[(parents[p], parents[q]) == t for t in PAIR_TYPES] for p, q in zip(i, j)], bool)
    pair_type = pair_type.reshape(len(i), len(PAIR_TYPES))
    diagonal = []
    for a in WINDOW:
        if a == 0:
            continue
        ia, ja = off[a][i], off[-a][j]
        exists = (ia >= 0) & (ja >= 0)
        comp = np.array([exists[k] and (parents[ia[k]], parents[ja[k]]) in complementary for k in range(len(i))], bool)
        diagonal += [comp, exists]
    loop = np.where(same_chain, np.minimum(j - i, 30) / 30.0, 1.0)
    cols = [*values, *masks, *pair_type.T, *diagonal, loop, same_chain]
    return np.stack([np.asarray(c, np.float32) for c in cols], axis=1).reshape(len(i), N_FEATURES)


class PairClassifier:
    """P(canonical pair | features) by an MLP with ReLU hidden layers; weights as numpy arrays."""

    def __init__(self, layers: list[tuple[np.ndarray, np.ndarray]], mean: np.ndarray, std: np.ndarray,
                 threshold: float):
        if layers[0][0].shape[1] != N_FEATURES or mean.shape != (N_FEATURES,) or std.shape != (N_FEATURES,):
            raise ValueError(f"pair classifier expects {N_FEATURES} features, weights have {layers[0][0].shape[1]}")
        self.layers, self.mean, self.std, self.threshold = layers, mean, std, float(threshold)

    def probability(self, features: np.ndarray) -> np.ndarray:
        """[M] probabilities for features [M, N_FEATURES]."""
        h = (features - self.mean) / self.std
        for k, (w, b) in enumerate(self.layers):
            h = h @ w.T + b
            if k < len(self.layers) - 1:
                h = np.maximum(h, 0.0)
        return 1.0 / (1.0 + np.exp(-h[:, 0]))

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], threshold: float) -> "PairClassifier":
        n = len([k for k in arrays if k.startswith("layer") and k.endswith(".weight")])
        layers = [(arrays[f"layer{k}.weight"].astype(np.float64), arrays[f"layer{k}.bias"].astype(np.float64))
                  for k in range(n)]
        return cls(layers, arrays["feature_mean"].astype(np.float64), arrays["feature_std"].astype(np.float64), threshold)


@lru_cache(maxsize=1)
def packaged_classifier() -> PairClassifier:
    """The classifier shipped in rnadiff/data/pair_classifier (loaded once)."""
    from safetensors.numpy import load

    folder = resources.files("rnadiff") / "data" / "pair_classifier"
    arrays = load((folder / "model.safetensors").read_bytes())
    meta = json.loads((folder / "config.json").read_text())
    return PairClassifier.from_arrays(arrays, meta["threshold"])
