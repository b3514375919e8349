"""Per-residue plot of a model against its reference (`rnadiff evaluate --plot FILE.png`).

Top panel: deviation (Å) of each residue after global superposition, with the residue's lDDT on
a right-hand axis. Bottom panel: confidence, the per-atom sample spread rnadiff writes as
B-factor (Å, lower is more confident). Chain starts are marked; the PNG is rendered in memory
with the Agg backend and written atomically.
"""
from __future__ import annotations

import io
from os import PathLike

import numpy as np

from rnadiff.io.atomic import atomic_write_bytes


def _values(seq) -> np.ndarray:
    return np.array([np.nan if v is None else float(v) for v in seq], dtype=np.float64)


def _chain_starts(labels: list[str]) -> list[int]:
    chains = [lab.split(":", 1)[0] for lab in labels]
    return [k for k in range(1, len(chains)) if chains[k] != chains[k - 1]]


def _residue_ticks(labels: list[str], max_ticks: int = 40) -> tuple[list[int], list[str]]:
    """Every k-th residue's full label (chain:name number): a modified residue's name may end in
    digits (12A37 is 12A at 37), so the label is shown as it is rather than shortened."""
    step = max(1, int(np.ceil(len(labels) / max_ticks)))
    idx = list(range(0, len(labels), step))
    return idx, [labels[k] for k in idx]


def plot_per_residue(profile: dict, path: str | PathLike, title: str = "") -> None:
    """Draw `profile` (from `per_residue_profile`, with "lddt") to a PNG at `path`."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    labels = profile["residues"]
    x = np.arange(len(labels))
    dev, spread = _values(profile["deviation"]), _values(profile["spread"])
    lddt = _values(profile.get("lddt") or [None] * len(labels))
    fig = Figure(figsize=(max(8.0, min(24.0, 0.08 * len(labels) + 6)), 6.0), dpi=110)
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    top.bar(x, np.nan_to_num(dev), width=0.85, color="#c0504d", label="deviation (Å)")
    top.set_ylabel("deviation from reference (Å)")
    top.set_ylim(0, max(1.0, float(np.nanmax(dev, initial=0.0)) * 1.1))
    right = top.twinx()
    right.plot(x, lddt, color="#1f4e79", lw=1.4, marker=".", ms=3, label="lDDT")
    right.set_ylim(0, 1.02)
    right.set_ylabel("lDDT", color="#1f4e79")
    handles = top.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
    top.legend(handles, ["deviation (Å)", "lDDT"], loc="lower left", bbox_to_anchor=(0.0, 1.0), ncol=2,
               fontsize=8, frameon=False)
    if np.isfinite(spread).any():
        bottom.fill_between(x, 0, np.nan_to_num(spread), step="mid", color="#9bbb59", alpha=0.6)
        bottom.plot(x, spread, color="#4f6228", lw=1.2, drawstyle="steps-mid")
        bottom.set_ylabel("sample spread (Å)\n(B-factor; low = confident)")
    else:
        bottom.text(0.5, 0.5, "model has no B-factors (no sample spread recorded)",
                    ha="center", va="center", transform=bottom.transAxes, color="grey")
        bottom.set_yticks([])
    for k in _chain_starts(labels):
        for ax in (top, bottom):
            ax.axvline(k - 0.5, color="black", lw=0.8, ls="--")
    ticks, text = _residue_ticks(labels)
    bottom.set_xticks(ticks, text, rotation=90, fontsize=7)
    bottom.set_xlabel("residue (chain:name number)")
    bottom.set_xlim(-0.6, len(labels) - 0.4)
    for ax in (top, bottom):
        ax.grid(axis="y", alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_write_bytes(path, buf.getvalue())
