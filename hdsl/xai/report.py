"""Reports of XAI measurements: markdown tables and matplotlib PNG figures.

* ``comparison_markdown``: explainers × removal baselines, mean [CI] and rank;
* ``plot_curves``: mean deletion/insertion curves per explainer, one panel per
  removal, with a pointwise bootstrap band over images;
* ``plot_removals``: the same top-p% MoRF mask filled by each baseline
  (black pixels next to the in-painted ones).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from hdsl.xai.stats import bootstrap_mean


def _fmt(iv) -> str:
    return f"{iv.estimate:.3f} [{iv.lower:.3f}, {iv.upper:.3f}]"


def comparison_markdown(table: dict, higher_is_better: bool, metric: str) -> str:
    """A markdown table from ``hdsl.xai.handler.compare``'s output."""
    removals = list(table)
    names = list(next(iter(table.values()))["intervals"]) if removals else []
    head = "| explainer | " + " | ".join(f"{r} ({metric})" for r in removals) + " |"
    sep = "|---|" + "---|" * len(removals)
    rows = [head, sep]
    for n in names:
        cells = []
        for r in removals:
            rank = table[r]["ranking"].index(n) + 1
            cells.append(f"{_fmt(table[r]['intervals'][n])} (#{rank})")
        rows.append(f"| {n} | " + " | ".join(cells) + " |")
    rankings = {r: " > ".join(table[r]["ranking"]) for r in removals}
    changes = len(set(rankings.values())) > 1
    rows.append("")
    rows.append(f"{'Higher' if higher_is_better else 'Lower'} is better. Ranking "
                + ("CHANGES" if changes else "is the same") + " across removals: "
                + "; ".join(f"{r}: {v}" for r, v in rankings.items()) + ".")
    return "\n".join(rows)


def _band(curves: np.ndarray, confidence: float = 0.95, resamples: int = 400, seed: int = 0):
    lo, hi = [], []
    for j in range(curves.shape[1]):
        iv = bootstrap_mean(curves[:, j], confidence, resamples, seed)
        lo.append(iv.lower)
        hi.append(iv.upper)
    return np.array(lo), np.array(hi)


def plot_curves(curves: dict[str, dict[str, object]], path: str | Path, title: str = "") -> str:
    """``curves[removal][explainer]`` is a ``MetricResult`` with ``fractions`` and ``curve`` [N, T+1]."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    removals = list(curves)
    fig, axes = plt.subplots(1, len(removals), figsize=(4.2 * len(removals), 3.4), squeeze=False, sharey=True)
    for ax, r in zip(axes[0], removals):
        for name, res in curves[r].items():
            c = np.asarray(res.curve)
            lo, hi = _band(c)
            ax.plot(res.fractions, c.mean(axis=0), label=f"{name} (AUC {np.mean(res.per_image):.3f})")
            ax.fill_between(res.fractions, lo, hi, alpha=0.2)
        ax.set_title(r)
        ax.set_xlabel("fraction of features removed")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("score of the explained class")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(str(path), dpi=110)
    plt.close(fig)
    return str(path)


def plot_removals(images: torch.Tensor, masks: torch.Tensor, removals: dict, path: str | Path,
                  title: str = "") -> str:
    """Rows: images; columns: original, mask, then each baseline's filled image (NCHW, values in [0, 1])."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = images.shape[0]
    cols = 2 + len(removals)
    fig, axes = plt.subplots(n, cols, figsize=(1.6 * cols, 1.6 * n + 0.4), squeeze=False)
    filled = {name: r(images, masks) for name, r in removals.items()}

    def show(ax, img):
        a = img.detach().permute(1, 2, 0).clamp(0, 1).numpy()
        ax.imshow(a[..., 0] if a.shape[2] == 1 else a, cmap="gray" if a.shape[2] == 1 else None,
                  interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])

    for i in range(n):
        show(axes[i][0], images[i])
        axes[i][1].imshow(masks[i].float().amax(dim=0).numpy(), cmap="gray", interpolation="nearest")
        axes[i][1].set_xticks([])
        axes[i][1].set_yticks([])
        for j, (name, out) in enumerate(filled.items()):
            show(axes[i][2 + j], out[i])
    for j, name in enumerate(["original", "removed"] + list(filled)):
        axes[0][j].set_title(name, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(str(path), dpi=110)
    plt.close(fig)
    return str(path)
