r"""Predictions for a real layer: the mixture theory with the pool's own moments.

A pool of activations :math:`X` ``(n_pool, d)`` with labels is summarised by
:meth:`probejax.GaussianMixture.from_activations` (features standardised by the pool's
mean and standard deviation, class priors and means, pooled within-class covariance);
the mixture fixed point (:mod:`._mixture`) then predicts what a probe trained on
examples drawn from the pool does on fresh pool examples, treating the pool's
empirical distribution as Gaussian with those moments (Gaussian equivalence; the pool
is taken as the population, so draws without replacement from a finite pool and the
test on its complement are not modelled).

- :func:`predict_layer`: an L2-logistic probe with intercept,
  :math:`\tfrac12\lVert w\rVert^2 + C\sum_i\ell_i`, on ``n_train`` class-balanced
  examples: test accuracy and the :math:`\cos` between the weight vectors of two probes
  trained on independent draws, along a C grid.
- :func:`predict_raptor`: the RAPTOR protocol (arXiv 2602.00158) on ``n_data``
  examples: stratified 64/16/20 train/val/test; the validation curve at
  :math:`0.64\,n` (the theory's accuracy: a finite validation set adds noise, not bias, to
  each point), the selected C (its maximum, ties to the smallest C), the test accuracy
  of the refit on :math:`0.8\,n` at that C, and the stability of RAPTOR's concept vector
  (raw coordinates) across its ablation runs (each keeps 80% of train + val: learners on
  :math:`0.64\,n` examples sharing a fraction 0.8, each selecting C at
  :math:`0.8 \cdot 0.64\,n`). Standardisation by the split's own statistics is
  approximated by the pool's.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ..datamodels._mixture import GaussianMixture
from ..solvers._losses import Logistic, Loss
from ._mixture import MIXTURE_QUAD, solve_mixture_grid
from ._mixture_observables import mixture_observables, mixture_overlap
from ._quadrature import Quadrature


def _check_Cs(Cs) -> np.ndarray:
    Cs = np.asarray(Cs, float)
    if Cs.ndim != 1 or Cs.size == 0 or not np.all(np.isfinite(Cs) & (Cs > 0)):
        raise ValueError(f"C must be a non-empty list of finite values > 0, got {Cs!r}.")
    return Cs


def pool_overlap(y, n_train, rho=(0.5, 0.5)) -> tuple[float, float]:
    """Shared fraction per class (labels 1, 0) of two independent draws of
    ``n_train * rho_k`` examples of class k from a pool with labels ``y``:
    :math:`c_k = n\\rho_k/N_k`."""
    y = np.asarray(y)
    counts = (np.sum(y > 0), np.sum(y <= 0))
    return tuple(min(1.0, n_train * r / N) for r, N in zip(rho, counts, strict=True))


def mixture_curves(
    model: GaussianMixture,
    ns,
    Cs,
    *,
    loss: Loss = Logistic(),
    rho=(0.5, 0.5),
    quad: Quadrature = MIXTURE_QUAD,
    shared=None,
) -> dict[str, np.ndarray]:
    """Theory on the grid ``ns x Cs`` (``lam = 1/C``): arrays ``(len(ns), len(Cs))`` of
    ``accuracy``, ``acc_pos``, ``acc_neg``, ``train_acc``, ``cos_bayes``, ``b``,
    ``stability`` (independent draws, the model's coordinates), ``stability_raw`` (raw
    coordinates), ``converged``; with ``shared = c`` (a fraction, or one per class) also
    ``stability_shared`` and ``stability_shared_raw`` (two learners sharing it)."""
    Cs = _check_Cs(Cs)
    lams = 1.0 / Cs
    fp = solve_mixture_grid(model, ns, lams, loss=loss, rho=rho, quad=quad)
    lam_grid = jnp.broadcast_to(jnp.asarray(lams, fp.q.dtype), fp.b.shape)
    obs = jax.vmap(
        jax.vmap(lambda f, lam: mixture_observables(model, f, lam, loss=loss, rho=rho, quad=quad))
    )(fp, lam_grid)
    out = {
        "accuracy": obs.acc,
        "acc_pos": obs.acc_class[..., 0],
        "acc_neg": obs.acc_class[..., 1],
        "train_acc": obs.train_acc,
        "cos_bayes": obs.cos_bayes,
        "b": obs.b,
        "stability": obs.stability,
        "stability_raw": obs.stability_raw,
        "converged": fp.converged,
    }
    if shared is not None:
        n_grid = jnp.broadcast_to(jnp.asarray(ns, fp.q.dtype)[:, None], fp.b.shape)
        ov = jax.vmap(
            jax.vmap(
                lambda f, n, lam: mixture_overlap(
                    model, f, n, lam, shared, loss=loss, rho=rho, quad=quad
                )
            )
        )(fp, n_grid, lam_grid)
        out["stability_shared"], out["stability_shared_raw"] = ov[1], ov[2]
    return {k: np.asarray(v) for k, v in out.items()}


def predict_layer(X, y, n_train: int, Cs, *, loss: Loss = Logistic()) -> dict[str, list]:
    """The ``probejax theory layer`` prediction (module docstring).

    **Arguments:** ``X`` ``(n_pool, d)``, ``y`` 0/1 labels, ``n_train`` class-balanced
    training examples, ``Cs`` the grid of scikit-learn C values.

    **Returns:** a JSON-able dict of lists ``C``, ``accuracy``, ``stability`` (|cos|
    between the weight vectors, on the standardised features, of two probes trained on
    independent draws from the pool, which share a fraction :func:`pool_overlap` of their
    examples), ``stability_raw`` (the same for ``w / sigma``), ``acc_pos``,
    ``acc_neg``, ``intercept``, ``converged``, and ``n_train``, ``n_pool``, ``d``.
    """
    Cs = _check_Cs(Cs)
    if int(n_train) < 2:
        raise ValueError(f"n_train must be >= 2, got {n_train!r}.")
    model = GaussianMixture.from_activations(X, y)
    out = mixture_curves(model, [float(n_train)], Cs, loss=loss, shared=pool_overlap(y, n_train))
    row = lambda k: [float(v) for v in out[k][0]]
    return {
        "C": [float(c) for c in Cs],
        "accuracy": row("accuracy"),
        "stability": [abs(v) for v in row("stability_shared")],
        "stability_raw": [abs(v) for v in row("stability_shared_raw")],
        "acc_pos": row("acc_pos"),
        "acc_neg": row("acc_neg"),
        "intercept": row("b"),
        "converged": [bool(v) for v in out["converged"][0]],
        "n_train": int(n_train),
        "n_pool": int(np.asarray(X).shape[0]),
        "d": int(np.asarray(X).shape[1]),
    }


def predict_raptor(
    model: GaussianMixture,
    n_data: int,
    Cs,
    *,
    test_fraction: float = 0.2,
    val_fraction: float = 0.2,
    drop: float = 0.2,
) -> dict:
    """RAPTOR's protocol predicted on ``n_data`` examples of ``model`` (module
    docstring). **Returns** ``val_accuracy`` along ``Cs``, ``C`` (selected), ``index``,
    ``test_accuracy``, ``stability`` (raw coordinates, the protocol's concept vector) and
    ``stability_model`` (standardised coordinates)."""
    Cs = _check_Cs(Cs)
    rho = tuple(float(p) for p in np.asarray(model.priors))
    n_train = n_data * (1 - test_fraction)
    n_sub = n_train * (1 - val_fraction)
    n_run = n_train * (1 - drop)
    c = 1 - drop
    val = mixture_curves(model, [n_sub, n_run * (1 - val_fraction), n_train], Cs, rho=rho)
    i = int(np.argmax(val["accuracy"][0]))
    i_run = int(np.argmax(val["accuracy"][1]))
    fp = solve_mixture_grid(model, [n_run], 1.0 / Cs, rho=rho)
    fp_i = jax.tree.map(lambda a: a[0, i_run], fp)
    _, s_model, s_raw = mixture_overlap(model, fp_i, n_run, 1.0 / Cs[i_run], c, rho=rho)
    return {
        "val_accuracy": [float(v) for v in val["accuracy"][0]],
        "index": i,
        "C": float(Cs[i]),
        "test_accuracy": float(val["accuracy"][2, i]),
        "stability": float(s_raw),
        "stability_model": float(s_model),
        "C_run": float(Cs[i_run]),
    }
