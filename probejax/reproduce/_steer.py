"""Reproduction target ``steer``: steer with saved probes, measure on re-encoded text
(config: ``experiments/steer.py``).

:func:`compute` loads the probes written by the ``llm`` target, then for every layer,
prompt and target runs :func:`probejax.llm.steering_demo` (greedy generation with and
without RAPTOR's minimal edit; the probe read on prompt + continuation re-encoded
without steering). :func:`plot` draws the re-encoded probe probability per layer:
unsteered, steered towards and steered away, averaged over prompts.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

__all__ = ["compute", "plot"]


def compute(config: dict, log: Callable[[str], None] = print) -> dict:
    """**Returns** ``{"demos": [steering_demo dicts]}`` for every (layer, prompt, target)."""
    from ..llm._model import load_model
    from . import _resolve

    path = _resolve(config["probes"])
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: run `probejax reproduce llm` first (it writes the probes)."
        )
    probes = np.load(path)
    layers = [int(i) for i in probes["layers"]]
    W, B = probes[f"{config['method']}_w"], probes[f"{config['method']}_b"]
    loaded = load_model(config["model"])
    items = []
    for layer in config["layers"]:
        if layer not in layers:
            raise ValueError(f"layer {layer} has no probe in {path} (layers {layers}).")
        row = layers.index(layer)
        items.append(([layer], W[row], B[row]))
    demos = steering_grid(
        loaded, items, config["prompts"], config["targets"], config["max_new_tokens"], log
    )
    return {"demos": demos}


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


def plot(results: Path | str | dict, figures_dir: Path | str) -> list[Path]:
    """``steer_sentiment.png``: mean re-encoded probe probability per steered layer."""
    if not isinstance(results, dict):
        with open(results) as f:
            results = json.load(f)
    demos = results["demos"]
    layers = sorted({d["layers"][0] for d in demos})

    def mean(direction, field):
        return [
            np.mean(
                [d[field][0] for d in demos if d["layers"][0] == i and d["direction"] == direction]
            )
            for i in layers
        ]

    fig = Figure(figsize=(6.4, 4.2), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(layers, mean("towards", "p_unsteered"), "o-", color="gray", label="unsteered")
    ax.plot(layers, mean("towards", "p_steered"), "o-", color="tab:green", label="steered towards")
    ax.plot(layers, mean("away", "p_steered"), "o-", color="tab:red", label="steered away")
    ax.set(
        xlabel="steered layer (RAPTOR sentiment probe of that layer)",
        ylabel="probe probability of re-encoded text",
        ylim=(0, 1),
        title=f"SmolLM2 steering, mean over {len({d['prompt'] for d in demos})} prompts",
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    out = Path(figures_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "steer_sentiment.png"
    fig.savefig(path, dpi=110)
    return [path]
