"""Starting points for sampling from given coordinates: where in the schedule to start, and where to put missing atoms.

Sampling from given coordinates runs Algorithm 18 from an intermediate level σ_start with x = x_init + σ_start·ε
(SDEdit-style) instead of pure noise. x_init must be complete, so atoms absent from the input are
placed first, all residues at once:
- a residue with >= 3 given atoms: its ideal conformer (ref_pos) is superposed onto the given atoms
  by a per-residue Kabsch fit, and the missing atoms take their fitted ideal positions;
- a residue with 1-2 given atoms: given-atom centroid + ideal offsets (orientation unknown);
- a residue with none: centred between the nearest residues (in token order) that have atoms.
The noise added at σ_start then blurs whatever the placement got wrong.
"""
from __future__ import annotations

import torch

from rnadiff.chem.bridging import aggregate_atom_to_token, broadcast_token_to_atom
from rnadiff.geometry.superpose import rotation_from_covariance


def start_index_for(
    sigmas: torch.Tensor, *, start_sigma: float | None = None, start_fraction: float | None = None
) -> int:
    """Index into `sigmas` ([T+1], decreasing to 0) where sampling starts.

    start_sigma: the first level <= start_sigma. start_fraction f in (0, 1]: run the last
    round(f·T) steps (1.0 = the whole schedule = de novo). Index 0 means pure-noise sampling.
    """
    n_steps = sigmas.shape[0] - 1
    if start_sigma is not None and start_fraction is not None:
        raise ValueError("give start_sigma or start_fraction, not both")
    if start_sigma is not None:
        if start_sigma <= 0:
            raise ValueError(f"start_sigma must be > 0, got {start_sigma}")
        below = torch.nonzero(sigmas <= start_sigma).flatten()
        return min(int(below[0]), n_steps - 1)
    if start_fraction is not None:
        if not 0 < start_fraction <= 1:
            raise ValueError(f"start_fraction must lie in (0, 1], got {start_fraction}")
        n_run = max(1, round(start_fraction * n_steps))
        return n_steps - n_run
    return 0


def place_missing_atoms(
    coords: torch.Tensor,
    given_mask: torch.Tensor,
    *,
    ref_pos: torch.Tensor,
    atom_to_token_idx: torch.Tensor,
    n_token: int | None = None,
) -> torch.Tensor:
    """Complete coordinates [N, 3] of one structure: given atoms kept, missing atoms placed.

    coords [N, 3] (values at missing atoms ignored); given_mask [N] (1 = given); ref_pos [N, 3]
    ideal conformer coordinates; atom_to_token_idx [N]. Vectorised over residues (no Python loops).
    """
    if coords.dim() != 2:
        raise ValueError(f"place_missing_atoms takes one structure [N, 3], got {tuple(coords.shape)}")
    given = given_mask.to(torch.float32)
    x = torch.where(given[:, None] > 0, coords.float(), torch.zeros_like(coords, dtype=torch.float32))
    ref = ref_pos.to(x)
    idx = atom_to_token_idx.long()
    n_token = int(idx.max()) + 1 if n_token is None else n_token
    ones = torch.ones_like(given)

    n_given = torch.zeros(n_token, device=x.device).scatter_add_(0, idx, given)  # [T]
    c_x = aggregate_atom_to_token(x, idx, n_token, atom_mask=given)  # [T, 3] centroid of given atoms
    c_ref_given = aggregate_atom_to_token(ref, idx, n_token, atom_mask=given)  # [T, 3]
    c_ref_all = aggregate_atom_to_token(ref, idx, n_token, atom_mask=ones)  # [T, 3]

    # Per-residue Kabsch: H_t = Σ_given (ref − r̄)ᵀ (x − x̄)  [T, 3, 3]
    dr = (ref - broadcast_token_to_atom(c_ref_given, idx)) * given[:, None]
    dx = x - broadcast_token_to_atom(c_x, idx)
    outer = (dr[:, :, None] * dx[:, None, :]).reshape(-1, 9)
    h = torch.zeros(n_token, 9, device=x.device).scatter_add_(0, idx[:, None].expand(-1, 9), outer).reshape(-1, 3, 3)
    rot = rotation_from_covariance(h)  # [T, 3, 3] maps ref frame onto coords
    eye = torch.eye(3, device=x.device).expand_as(rot)
    rot = torch.where((n_given >= 3)[:, None, None], rot, eye)

    # Residues without any given atom: centre between the nearest residues that have some.
    has = n_given > 0
    centre = _interpolate_empty(c_x, has)
    ref_centre = torch.where(has[:, None], c_ref_given, c_ref_all)

    offset = ref - broadcast_token_to_atom(ref_centre, idx)  # [N, 3]
    placed = broadcast_token_to_atom(centre, idx) + (rot[idx] @ offset[:, :, None]).squeeze(-1)  # [N, 3]
    return torch.where(given[:, None] > 0, x, placed)


def _interpolate_empty(centres: torch.Tensor, has: torch.Tensor) -> torch.Tensor:
    """Fill centres [T, 3] of tokens without atoms by linear interpolation along the token index."""
    if bool(has.all()) or not bool(has.any()):
        return centres if bool(has.any()) else torch.zeros_like(centres)
    t = torch.arange(has.shape[0], device=centres.device)
    prev = torch.cummax(torch.where(has, t, torch.full_like(t, -1)), dim=0).values  # last valid <= t
    big = has.shape[0]
    nxt = torch.flip(torch.cummin(torch.flip(torch.where(has, t, torch.full_like(t, big)), [0]), dim=0).values, [0])
    has_prev, has_next = prev >= 0, nxt < big
    p = centres[prev.clamp(min=0)]
    n = centres[nxt.clamp(max=big - 1)]
    span = (nxt - prev).clamp(min=1).float()[:, None]
    frac = (t - prev).float()[:, None] / span
    both = p + frac * (n - p)
    filled = torch.where((has_prev & has_next)[:, None], both, torch.where(has_prev[:, None], p, n))
    return torch.where(has[:, None], centres, filled)
