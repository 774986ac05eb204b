r"""Scoring steering by something other than the probe, and summarising dose-response.

Scores of one continuation :math:`c` (the generated text only, never the prompt):

- **VADER** compound sentiment in :math:`[-1, 1]` (Hutto & Gilbert 2014, the
  ``vaderSentiment`` lexicon); positive when :math:`\ge 0.05` (VADER's own threshold).
- **Perplexity** :math:`\exp(\frac1m\sum_j -\log p_0(c_j\mid \text{prompt}, c_{<j}))`
  under the *unsteered* model :math:`p_0` (:func:`probejax.llm._generate.continuation_nll`).
- **Repeated 3-gram rate**: among the word 3-grams of :math:`c` (lower-cased,
  whitespace split), the fraction that repeat an earlier one (0: no repetition;
  ``nan`` with fewer than three words).

Summaries (:func:`dose_response`), per direction, layer and signed strength :math:`k`
(push :math:`k\rho_\ell` along the unit direction, :math:`\rho_\ell` the median residual
norm): mean VADER and positive rate with percentile-bootstrap 95% intervals over the
(prompt, seed) units, median perplexity and its ratio to the unsteered median, mean
repeated-3-gram rate; per direction and layer the steerability slope (least squares of
VADER on :math:`k` over every unit and strength, unsteered runs included at
:math:`k = 0`), the anti-steerable fraction (units whose own slope is negative;
Tan et al. 2024, arXiv 2407.12404) and, at each :math:`k`, the paired difference
VADER(+k) - VADER(-k) with a bootstrap interval over units.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

POSITIVE_AT = 0.05


@functools.cache
def _vader():
    try:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
    except ImportError as e:
        raise ImportError(
            "the sentiment score needs vaderSentiment: pip install 'probejax[llm]'"
        ) from e
    return SentimentIntensityAnalyzer()


def vader(texts: Sequence[str]) -> np.ndarray:
    """VADER compound score of each text, shape ``(n,)``."""
    sia = _vader()
    return np.array([sia.polarity_scores(t)["compound"] for t in texts], dtype=np.float64)


def repeated_ngram_rate(text: str, n: int = 3) -> float:
    """Fraction of the word n-grams of `text` that repeat an earlier one (module
    docstring); ``nan`` when the text has fewer than `n` words."""
    words = text.lower().split()
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    if not grams:
        return float("nan")
    return 1.0 - len(set(grams)) / len(grams)


def bootstrap_ci(
    x: np.ndarray, seed: int, *, resamples: int = 2000, level: float = 0.95
) -> tuple[float, float, float]:
    """``(mean, low, high)``: the mean of `x` (``nan`` entries dropped) and its
    percentile-bootstrap interval from ``numpy.random.default_rng(seed)``."""
    x = np.asarray(x, dtype=np.float64)
    x = x[~np.isnan(x)]
    if x.size == 0:
        return (float("nan"),) * 3
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(resamples, x.size))].mean(axis=1)
    a = (1 - level) / 2
    return float(x.mean()), float(np.quantile(means, a)), float(np.quantile(means, 1 - a))


def _ci(x, seed) -> dict:
    m, lo, hi = bootstrap_ci(x, seed)
    return {"mean": m, "ci": [lo, hi]}


def _nanmean(x) -> float:
    x = np.asarray(x, dtype=np.float64)
    return float(np.nanmean(x)) if np.any(~np.isnan(x)) else float("nan")


def _nanmedian(x) -> float:
    x = np.asarray(x, dtype=np.float64)
    return float(np.nanmedian(x)) if np.any(~np.isnan(x)) else float("nan")


def dose_response(records: Sequence[dict], *, seed: int = 0, ppl_limit: float = 1.5) -> dict:
    """Summaries of generation records (module docstring).

    **Arguments:**

    - `records`: dicts with ``direction``, ``layer``, ``strength``, ``prompt``, ``seed``,
      ``vader``, ``perplexity``, ``rep3``; unsteered runs have strength 0 (any
      direction; they are the :math:`k = 0` point of every curve).
    - `seed`: of the bootstrap.
    - `ppl_limit`: a strength is *fluent* when its median perplexity is below
      ``ppl_limit`` times the unsteered median.

    **Returns:** ``{"unsteered": {...}, "curves": [per direction and layer: "points"
    (per strength), "slope", "anti_steerable", "window" (the contiguous
    range of fluent strengths around 0), "pairs" (per k > 0: VADER(+k) - VADER(-k) with interval, both fluent),
    "best_k" (the largest k with both signs fluent) and "best_diff"]}``.
    """
    base = [r for r in records if r["strength"] == 0]
    if not base:
        raise ValueError("no unsteered records (strength 0): nothing to compare with.")

    def unit(r):
        return (r["prompt"], r["seed"])

    base_by_unit = {unit(r): r for r in base}
    base_ppl = _nanmedian([r["perplexity"] for r in base])

    def point(rs, k):
        v = np.array([r["vader"] for r in rs])
        return {
            "strength": float(k),
            "n": len(rs),
            "vader": _ci(v, seed),
            "positive_rate": _ci((v >= POSITIVE_AT).astype(float), seed + 1),
            "perplexity": _nanmedian([r["perplexity"] for r in rs]),
            "perplexity_ratio": _nanmedian([r["perplexity"] for r in rs]) / base_ppl,
            "rep3": _nanmean([r["rep3"] for r in rs]),
        }

    curves = []
    groups = sorted({(r["direction"], r["layer"]) for r in records if r["strength"] != 0})
    for direction, layer in groups:
        rs = [r for r in records if (r["direction"], r["layer"]) == (direction, layer)]
        by_k: dict[float, list[dict]] = {}
        for r in rs:
            by_k.setdefault(round(float(r["strength"]), 6), []).append(r)
        by_k.setdefault(0.0, base)
        ks = sorted(by_k)
        points = [point(by_k[k], k) for k in ks]
        fluent = {p["strength"] for p in points if p["perplexity_ratio"] < ppl_limit}
        # slope over all units and strengths; per-unit slopes for anti-steerability
        xs = np.array([k for k in ks for _ in by_k[k]])
        ys = np.array([r["vader"] for k in ks for r in by_k[k]])
        slope = float(np.polyfit(xs, ys, 1)[0]) if len(set(xs)) > 1 else float("nan")
        per_unit: dict = {}
        for k in ks:
            for r in by_k[k]:
                per_unit.setdefault(unit(r), []).append((k, r["vader"]))
        unit_slopes = [
            np.polyfit(*zip(*pts, strict=True), 1)[0]
            for pts in per_unit.values()
            if len({k for k, _ in pts}) > 1
        ]
        anti = float(np.mean(np.array(unit_slopes) < 0)) if unit_slopes else float("nan")
        pairs = []
        for k in ks:
            if k <= 0 or -k not in by_k:
                continue
            plus = {unit(r): r["vader"] for r in by_k[k]}
            minus = {unit(r): r["vader"] for r in by_k[-k]}
            common = sorted(set(plus) & set(minus))
            d = np.array([plus[u] - minus[u] for u in common])
            m, lo, hi = bootstrap_ci(d, seed + 2)
            pairs.append(
                {
                    "k": k,
                    "diff": m,
                    "ci": [lo, hi],
                    "fluent": k in fluent and -k in fluent,
                    "perplexity_ratio": [
                        points[ks.index(-k)]["perplexity_ratio"],
                        points[ks.index(k)]["perplexity_ratio"],
                    ],
                }
            )
        good = [p for p in pairs if p["fluent"]]
        best = max(good, key=lambda p: p["k"]) if good else None
        # the contiguous run of fluent strengths around 0
        i0 = ks.index(0.0)
        lo = hi = i0
        while lo > 0 and ks[lo - 1] in fluent:
            lo -= 1
        while hi < len(ks) - 1 and ks[hi + 1] in fluent:
            hi += 1
        curves.append(
            {
                "direction": direction,
                "layer": layer,
                "points": points,
                "slope": slope,
                "anti_steerable": anti,
                "window": [ks[lo], ks[hi]],
                "pairs": pairs,
                "best_k": None if best is None else best["k"],
                "best_diff": best,
            }
        )
    bv = np.array([r["vader"] for r in base])
    return {
        "unsteered": {
            "n": len(base),
            "vader": _ci(bv, seed),
            "positive_rate": _ci((bv >= POSITIVE_AT).astype(float), seed + 1),
            "perplexity": base_ppl,
            "rep3": _nanmean([r["rep3"] for r in base]),
            "units": len(base_by_unit),
        },
        "curves": curves,
    }
