"""Per-token scores and attention maps of one sequence, drawn with matplotlib's object
API (a ``Figure`` without pyplot, so it works headless and never opens a window)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def plot_token_scores(
    tokens: Sequence[str],
    scores,
    attention=None,
    *,
    title: str | None = None,
    head_labels: Sequence[str] | None = None,
    width_per_token: float = 0.35,
):
    """Heat strip of per-token scores above an optional ``(H, T)`` attention map.

    **Arguments:**

    - ``tokens``: the sequence's real tokens as strings (``T_real`` of them).
    - ``scores``: per-token scores, length at least ``T_real`` (padding beyond is cut),
      e.g. ``FittedSeqProbe.token_scores(X, mask)[i]``; drawn on a diverging scale
      centred at zero.
    - ``attention``: optional ``(H, T)`` weights (``FittedSeqProbe.attention(...)[i]``).
    - ``title``, ``head_labels`` (one per attention row), ``width_per_token`` (inches).

    **Returns:** a ``matplotlib.figure.Figure`` (save with ``fig.savefig(path)``).
    """
    from matplotlib.figure import Figure

    tokens = [str(t) for t in tokens]
    T = len(tokens)
    if T == 0:
        raise ValueError("tokens is empty: nothing to plot.")
    s = np.asarray(scores, dtype=float).reshape(-1)
    if s.size < T:
        raise ValueError(f"scores has {s.size} entries for {T} tokens; need at least {T}.")
    s = s[:T]
    A = None
    if attention is not None:
        A = np.asarray(attention, dtype=float)
        if A.ndim != 2 or A.shape[1] < T:
            raise ValueError(f"attention must be (H, T) with T >= {T} tokens, got shape {A.shape}.")
        A = A[:, :T]
        if head_labels is not None and len(head_labels) != A.shape[0]:
            raise ValueError(
                f"head_labels has {len(head_labels)} entries for {A.shape[0]} attention rows."
            )
    rows = 1 + (0 if A is None else 1)
    heights = [1.0] + ([max(1.0, 0.25 * A.shape[0])] if A is not None else [])
    fig = Figure(figsize=(max(4.0, width_per_token * T + 2.0), 1.2 + sum(heights)))
    axes = fig.subplots(rows, 1, sharex=True, squeeze=False, height_ratios=heights)[:, 0]
    lim = float(np.max(np.abs(s))) or 1.0
    im = axes[0].imshow(s[None], aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim)
    axes[0].set_yticks([0], ["score"])
    fig.colorbar(im, ax=axes[0], fraction=0.03, pad=0.01)
    if A is not None:
        im = axes[1].imshow(A, aspect="auto", cmap="viridis", vmin=0.0)
        labels = head_labels if head_labels is not None else [str(h) for h in range(A.shape[0])]
        axes[1].set_yticks(range(A.shape[0]), labels)
        axes[1].set_ylabel("head")
        fig.colorbar(im, ax=axes[1], fraction=0.03, pad=0.01)
    axes[-1].set_xticks(range(T), tokens, rotation=90, fontsize=8)
    if title:
        axes[0].set_title(title)
    fig.tight_layout()
    return fig
