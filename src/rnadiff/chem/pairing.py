"""Canonical base-pair chemistry (which bases pair, through which H-bonds) and the base-pair prior:
which canonical pairs an input implies, as a token-pair feature.

Partial inputs (a C1′ trace, P atoms, a backbone) say nothing explicit about base pairing, yet the
pairs define an RNA's structure. Two sources give them to the conditioner:

* **Geometry.** A canonical pair and the pairs stacked on it hold their C1′, P, C4′ or glycosidic
  N atoms at characteristic cross-strand distances. Every complementary (G–C, A–U, G·U) pair of
  the input within pairing distance is scored by a learned classifier over the distances of the
  residues around it (`rnadiff.chem.pair_classifier`); a greedy one-partner matching keeps the
  most probable pairs above the classifier's threshold.
* **A user's secondary structure** (dot-bracket, pseudoknot brackets allowed), taken as given.

`pair_prior(features, pairs=None)` returns float32 [N_tok, N_tok, 4]:
  0  classifier probability in [0, 1] (0 for non-complementary pairs, distant ones, or below MIN_SCORE)
  1  1 where the matching keeps the pair
  2  1 where the user's secondary structure pairs i and j
  3  1 everywhere when a secondary structure was given (so "unpaired" there is information)
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache

import numpy as np
import torch
from scipy.spatial import cKDTree

from rnadiff.chem.features import atom_name_code, atom_name_codes, glycosidic_n_mask
from rnadiff.chem.library import get_template
from rnadiff.chem.pair_classifier import ANCHORS, CANDIDATE_RADIUS, PairClassifier, packaged_classifier, pair_features, walk
from rnadiff.chem.vocab import RESTYPE_INDEX
from rnadiff.errors import InputError, UnknownResidueError

N_PRIOR_CHANNELS = 4
MIN_SCORE = 0.05  # classifier probabilities below this are not written into the prior
MIN_LOOP = 3  # residues between the two sides of a hairpin
# Donor–acceptor atom pairs per complementary pair type (first base, second base); the first
# entry is the central H-bond that defines the cis/trans side.
HBONDS: dict[tuple[str, str], tuple[tuple[str, str], ...]] = {
    ("G", "C"): (("N1", "N3"), ("N2", "O2"), ("O6", "N4")),
    ("A", "U"): (("N1", "N3"), ("N6", "O4")),
    ("G", "U"): (("N1", "O2"), ("O6", "N3")),
}
# A C-glycoside pyrimidine (pseudouridine: C1′–C5) is its parent's ring turned about the N3–C6
# axis: its C5 sits where the parent's N1 is, and so on. Parent atom name -> the atom there.
C_GLYCOSIDE_NAMES = {"N1": "C5", "C5": "N1", "C2": "C4", "C4": "C2", "O2": "O4", "O4": "O2"}
COMPLEMENTARY = {pair for a, b in HBONDS for pair in ((a, b), (b, a))}
_PARENT_OF_RESTYPE = {v: k for k, v in RESTYPE_INDEX.items()}
OPEN_BRACKETS, CLOSE_BRACKETS = "([{<ABCDEFGHIJ", ")]}>abcdefghij"


def parent_letters(features: Mapping[str, torch.Tensor]) -> list[str]:
    """[T] one-letter parent nucleotide of each token ("N" for a residue type without one)."""
    restype = features["restype"].argmax(-1).detach().cpu().numpy()
    return [_PARENT_OF_RESTYPE.get(int(r), "N") for r in restype]


def token_atom_index(features: Mapping[str, torch.Tensor], names: Iterable[str]) -> dict[tuple[int, str], int]:
    """(token, atom name) -> atom index of the named atoms the layout holds."""
    codes = atom_name_codes(features["ref_atom_name_chars"]).detach().cpu().numpy()
    tok = features["atom_to_token_idx"].detach().cpu().numpy()
    index: dict[tuple[int, str], int] = {}
    for name in names:
        for k in np.nonzero(codes == atom_name_code(name))[0]:
            index[(int(tok[k]), name)] = int(k)
    return index


def secondary_structure_given(prior: torch.Tensor) -> bool:
    """Whether the prior carries a user's secondary structure (channel 3)."""
    return bool(prior.shape[0]) and bool(prior[0, 0, 3] > 0)


def complementary_type(a: str, b: str) -> tuple[tuple[str, str], bool] | None:
    """((first, second) key of HBONDS, swapped?) for parents a, b; None when not complementary."""
    if (a, b) in HBONDS:
        return (a, b), False
    if (b, a) in HBONDS:
        return (b, a), True
    return None


C1_C5_BOND_MAX = 1.8  # Å: a C1′–C5 distance below this is a bond (in a purine or an N-glycoside
# pyrimidine C5 sits >= 3.6 Å from C1′ in every library template; in pseudouridine 1.5 Å)


def _c1_bonds_c5(c1: np.ndarray, c5: np.ndarray) -> bool:
    """The one test of a C-glycoside: C1′ bonded to the base's C5, read from ideal coordinates."""
    return bool(np.linalg.norm(np.asarray(c1, np.float64) - np.asarray(c5, np.float64)) < C1_C5_BOND_MAX)


@lru_cache(maxsize=None)
def is_c_glycoside(template_name: str) -> bool:
    """True when the template's C1′ bonds to the base's C5 (pseudouridine and kin)."""
    try:
        t = get_template(template_name)
    except UnknownResidueError:  # a residue the library lacks: read on its parent's atoms
        return False
    if not (t.has("C1'") and t.has("C5")):
        return False
    return _c1_bonds_c5(t.ideal_coords[t.index["C1'"]], t.ideal_coords[t.index["C5"]])


def c_glycoside_tokens(features: Mapping[str, torch.Tensor], index: dict[tuple[int, str], int] | None = None
                       ) -> np.ndarray:
    """[T] bool: the residues of featurized input whose C1′ bonds to the base's C5, read from the
    reference conformer (`ref_pos`, the templates' ideal coordinates) by the same test as
    `is_c_glycoside`; index: a `token_atom_index` holding C1′ and C5, when one is at hand."""
    n_tok = int(features["restype"].shape[-2])
    index = token_atom_index(features, ("C1'", "C5")) if index is None else index
    ref = features["ref_pos"].detach().cpu().numpy()
    out = np.zeros(n_tok, bool)
    for t in range(n_tok):
        c1, c5 = index.get((t, "C1'")), index.get((t, "C5"))
        out[t] = c1 is not None and c5 is not None and _c1_bonds_c5(ref[c1], ref[c5])
    return out


def parse_dot_bracket(text: str, n_token: int, source: str = "secondary structure") -> list[tuple[int, int]]:
    """Pairs (i < j) of a dot-bracket string over all tokens; '&' or spaces may separate chains."""
    ss = "".join(c for c in text.strip() if c not in "& \t\n")
    if len(ss) != n_token:
        raise InputError(f"{source}: {len(ss)} characters for {n_token} residues")
    stacks: dict[str, list[int]] = {c: [] for c in OPEN_BRACKETS}
    pairs = []
    for k, c in enumerate(ss):
        if c in OPEN_BRACKETS:
            stacks[c].append(k)
        elif c in CLOSE_BRACKETS:
            opener = OPEN_BRACKETS[CLOSE_BRACKETS.index(c)]
            if not stacks[opener]:
                raise InputError(f"{source}: unmatched '{c}' at position {k + 1}")
            pairs.append((stacks[opener].pop(), k))
        elif c not in ".-_,:":
            raise InputError(f"{source}: unexpected character {c!r} at position {k + 1}")
    left = [k for s in stacks.values() for k in s]
    if left:
        raise InputError(f"{source}: unmatched opening bracket at position {min(left) + 1}")
    return sorted(pairs)


def _anchor_positions(features: Mapping[str, torch.Tensor], parents: Sequence[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Anchor -> (positions [T, 3], given [T] bool) of the given atoms."""
    codes = atom_name_codes(features["ref_atom_name_chars"]).detach().cpu().numpy()  # [N]
    given = features["atom_present_mask"].detach().cpu().numpy() > 0
    coords = features["coords"].detach().cpu().numpy().astype(np.float64)
    tok = features["atom_to_token_idx"].detach().cpu().numpy()
    n_tok = len(parents)

    out = {}
    for anchor in ANCHORS:
        named = glycosidic_n_mask(features).detach().cpu().numpy() if anchor == "N" else codes == atom_name_code(anchor)
        sel = named & given
        pos = np.zeros((n_tok, 3))
        known = np.zeros(n_tok, bool)
        pos[tok[sel]] = coords[sel]
        known[tok[sel]] = True
        out[anchor] = (pos, known)
    return out


def _next_token(features: Mapping[str, torch.Tensor]) -> np.ndarray:
    """[T] index of the covalently next token in the chain, −1 at chain ends and breaks."""
    asym = features["asym_id"].detach().cpu().numpy()
    brk = features["chain_break_before"].detach().cpu().numpy().astype(bool)
    nxt = np.arange(1, len(asym) + 1)
    ok = np.zeros(len(asym), bool)
    ok[:-1] = (asym[1:] == asym[:-1]) & ~brk[1:]
    return np.where(ok, nxt, -1)


def _candidates(anchors, next_token: np.ndarray) -> np.ndarray:
    """[M, 2] token pairs (i < j) close enough under some given anchor to be a canonical pair, and
    the pairs stacked on those whose one token no given anchor places."""
    found = set()
    for name, (pos, known) in anchors.items():
        idx = np.nonzero(known)[0]
        if len(idx) < 2:
            continue
        for a, b in cKDTree(pos[idx]).query_pairs(CANDIDATE_RADIUS[name]):
            found.add((int(min(idx[a], idx[b])), int(max(idx[a], idx[b]))))
    # The 5′-terminal residue of a P-only input has no P, yet its pair closes many helices (9 of the
    # 10 native pairs that were never candidates on the classifier's aside chains from P); the
    # classifier reads such a pair from its stacked neighbours (its own distances are masked).
    cand = np.array(sorted(found), np.int64).reshape(-1, 2)
    placed = np.any([known for _, known in anchors.values()], axis=0)
    if placed.all() or not len(cand):
        return cand
    nxt, prv = walk(next_token, 1), walk(next_token, -1)
    a, b = cand[:, 0], cand[:, 1]
    stacked = np.concatenate([np.stack([prv[a], nxt[b]], 1), np.stack([nxt[a], prv[b]], 1)])  # outside, inside
    stacked = stacked[(stacked >= 0).all(1) & (stacked[:, 0] != stacked[:, 1])]
    stacked = np.sort(stacked[~(placed[stacked[:, 0]] & placed[stacked[:, 1]])], axis=1)
    return np.unique(np.concatenate([cand, stacked]), axis=0)


def candidate_features(features: Mapping[str, torch.Tensor]) -> tuple[np.ndarray, np.ndarray]:
    """(pairs [M, 2] with i < j, classifier features [M, N_FEATURES]) of the complementary pairs
    within pairing distance under some given anchor, outside hairpin loops shorter than MIN_LOOP."""
    parents = parent_letters(features)
    anchors = _anchor_positions(features, parents)
    next_token = _next_token(features)
    cand = _candidates(anchors, next_token)
    asym = features["asym_id"].detach().cpu().numpy()
    if len(cand):
        same = asym[cand[:, 0]] == asym[cand[:, 1]]
        ok = np.array([(parents[a], parents[b]) in COMPLEMENTARY for a, b in cand], bool)
        cand = cand[ok & (~same | (cand[:, 1] - cand[:, 0] > MIN_LOOP))]
    same_chain = asym[cand[:, 0]] == asym[cand[:, 1]] if len(cand) else np.zeros(0, bool)
    x = pair_features(anchors, parents, next_token, same_chain, cand, COMPLEMENTARY)
    return cand, x


def geometric_pair_scores(features: Mapping[str, torch.Tensor], classifier: PairClassifier | None = None
                          ) -> tuple[np.ndarray, np.ndarray]:
    """(pairs [M, 2] with i < j, probability [M]) of complementary candidates the classifier gives
    at least MIN_SCORE (the packaged classifier unless one is passed)."""
    cand, x = candidate_features(features)
    if len(cand) == 0:
        return cand, np.zeros(0)
    prob = (classifier or packaged_classifier()).probability(x)
    keep = prob >= MIN_SCORE
    return cand[keep], prob[keep]


def match_pairs(pairs: np.ndarray, scores: np.ndarray, threshold: float = 0.0) -> list[tuple[int, int]]:
    """Greedy one-partner matching, best score first, of the pairs scoring at least `threshold`."""
    taken: set[int] = set()
    kept = []
    for k in np.argsort(-scores, kind="stable"):
        a, b = int(pairs[k, 0]), int(pairs[k, 1])
        if scores[k] < threshold or a in taken or b in taken:
            continue
        taken.update((a, b))
        kept.append((a, b))
    return sorted(kept)


def pair_prior(features: Mapping[str, torch.Tensor], given_pairs: Iterable[tuple[int, int]] | None = None) -> torch.Tensor:
    """[N_tok, N_tok, 4] float32 base-pair prior (channels in the module docstring), symmetric."""
    n_tok = int(features["restype"].shape[-2])
    prior = np.zeros((n_tok, n_tok, N_PRIOR_CHANNELS), np.float32)
    pairs, scores = geometric_pair_scores(features)
    if len(pairs):
        prior[pairs[:, 0], pairs[:, 1], 0] = scores
        for a, b in match_pairs(pairs, scores, packaged_classifier().threshold):
            prior[a, b, 1] = 1.0
    if given_pairs is not None:
        for a, b in given_pairs:
            if not (0 <= a < n_tok and 0 <= b < n_tok) or a == b:
                raise InputError(f"secondary structure pair ({a + 1}, {b + 1}) outside 1..{n_tok}")
            prior[min(a, b), max(a, b), 2] = 1.0
        prior[..., 3] = 1.0
    prior = np.maximum(prior, prior.transpose(1, 0, 2))
    return torch.from_numpy(prior)


def prior_pairs(prior: torch.Tensor) -> tuple[list[tuple[int, int]], np.ndarray]:
    """The pairs a prior asserts, with a confidence each: the user's secondary structure when one
    was given (confidence 1), else the geometric matching (confidence = its score)."""
    p = prior.detach().cpu().numpy()
    user = secondary_structure_given(prior)
    chosen = p[..., 2] if user else p[..., 1]
    i, j = np.nonzero(np.triu(chosen > 0.5, k=1))
    conf = np.ones(len(i)) if user else p[i, j, 0]
    return [(int(a), int(b)) for a, b in zip(i, j)], conf.astype(np.float64)


def hbond_atom_pairs(features: Mapping[str, torch.Tensor], pairs: Sequence[tuple[int, int]]
                     ) -> tuple[np.ndarray, np.ndarray]:
    """([n, 2] atom indices, [n] pair number) of the donor–acceptor atoms of each canonical pair
    (by parent nucleotide; pairs of non-complementary bases contribute nothing)."""
    parents = parent_letters(features)
    names = {n for bonds in HBONDS.values() for ab in bonds for n in ab}
    index = token_atom_index(features, names | {C_GLYCOSIDE_NAMES.get(n, n) for n in names} | {"C1'", "C5"})
    c_gly = c_glycoside_tokens(features, index)  # their ring atoms sit under other names
    atoms, owner = [], []
    for n, (a, b) in enumerate(pairs):
        comp = complementary_type(parents[a], parents[b])
        if comp is None:
            continue
        key, swapped = comp
        first, second = (b, a) if swapped else (a, b)
        for da, db in HBONDS[key]:
            da = C_GLYCOSIDE_NAMES.get(da, da) if c_gly[first] else da
            db = C_GLYCOSIDE_NAMES.get(db, db) if c_gly[second] else db
            if (first, da) in index and (second, db) in index:
                atoms.append((index[(first, da)], index[(second, db)]))
                owner.append(n)
    return np.array(atoms, np.int64).reshape(-1, 2), np.array(owner, np.int64)
