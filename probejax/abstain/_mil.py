r"""Multiple-instance linear SVMs for bags of token activations: sMIL and its sparse,
balanced second stage (sbMIL), as the sAwMIL probe of "The Trilemma of Truth in Large
Language Models" (Savcisens & Eliassi-Rad 2025, arXiv 2506.23921) uses them.

A *bag* :math:`B_i = \{x_{i1}, \dots, x_{i n_i}\} \subset \mathbb R^d` is the token
activations of one statement (``X[i]`` where ``mask[i]``); its label :math:`Y_i = +1`
says that *some* token carries the concept, :math:`Y_i = -1` that none does. Let
:math:`\mathcal N` be the instances of negative bags (:math:`L_n` of them),
:math:`\mathcal P` the positive bags (:math:`X_p` of them) and
:math:`\bar x_i = \frac1{n_i}\sum_t x_{it}` a bag's mean.

**Stage 1, sMIL** (sparse MIL, Bunescu & Mooney 2007, "Multiple instance learning for
sparse positive bags"): every instance of a negative bag is a negative example, and a
positive bag is represented by its mean with the *balancing* margin
:math:`\rho_i = 2/n_i - 1`, which the mean score :math:`w^\top\bar x_i + b` reaches when
one instance scores :math:`+1` and the other :math:`n_i - 1` score :math:`-1`:

.. math::

    \min_{w, b}\; \tfrac12\lVert w\rVert^2
    + c_n \sum_{x \in \mathcal N} \max\bigl(0,\, 1 + w^\top x + b\bigr)
    + c_p \sum_{i \in \mathcal P} \max\bigl(0,\, \rho_i - w^\top \bar x_i - b\bigr),

with :math:`c_n = C/L_n`, :math:`c_p = C/X_p` (``scale_C=True``, as the reference
implementation ``misvm.sMIL``) or :math:`c_n = c_p = C`.

**Stage 2, sbMIL** (sparse balanced MIL, same paper; ``eta`` not None): the stage-1
scores :math:`f_1(x) = w_1^\top x + b_1` rank the :math:`L_p` instances of positive
bags; the top :math:`k = \min(L_p, \max(X_p, \operatorname{round}(\eta L_p)))` of them
(every instance scoring at least the :math:`k`-th largest) are relabelled positive, the
other instances of positive bags negative, and a standard SVM is fitted on all
:math:`L` instances,

.. math::

    \min_{w, b}\; \tfrac12\lVert w\rVert^2 + c \sum_{x}
    \max\bigl(0,\, 1 - \tilde y_x (w^\top x + b)\bigr),
    \qquad c = C/L \ (\texttt{scale\_C}) \text{ or } C,

with :math:`\tilde y_x` those instance labels (``misvm.sbMIL``). :math:`\eta` is the
expected share of concept-bearing tokens in a positive bag.

Both stages are the weighted-margin SVM of :mod:`probejax.abstain._svm`, solved by SMO;
padding tokens get cost 0. A bag's score is its best token's,
:math:`s(B) = \max_t (w^\top x_t + b)`. For bags of one instance both stages are the
standard soft-margin SVM (:math:`\rho = 1`, every positive instance relabelled
positive).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from ..core._checks import float_dtype
from ._svm import SVMSolution, solve_svm


def _tracer(x) -> bool:
    return isinstance(x, jax.core.Tracer)


def bag_scores(
    w: Float[Array, "... d"],
    b: Float[Array, ...],
    X: Float[Array, "n T d"],
    mask: Bool[Array, "n T"],
) -> Float[Array, "n ..."]:
    r""":math:`s(B_i) = \max_{t : \texttt{mask}[i, t]} (w^\top x_{it} + b)`; ``w`` may
    carry leading axes (one separator per class: ``(K, d)`` gives ``(n, K)``)."""
    s = jnp.einsum("ntd,...d->nt...", X, w) + b
    m = mask.reshape(mask.shape + (1,) * (s.ndim - 2))
    return jnp.max(jnp.where(m, s, -jnp.inf), axis=1)


class MILSolution(eqx.Module):
    """A fitted multiple-instance SVM (module docstring); a leading axis when vmapped.

    **Fields:**

    - ``w`` ``(d,)``, ``b``: the final separator (stage 2 when it ran, else stage 1).
    - ``smil``: the stage-1 :class:`SVMSolution` (its ``alpha`` over the negative
      instances, then the bags' means).
    - ``sbmil``: the stage-2 :class:`SVMSolution`, or None when ``eta`` is None.
    - ``n_positive``: instances relabelled positive by stage 2 (0 without it).
    """

    w: Float[Array, " d"]
    b: Float[Array, ""]
    smil: SVMSolution
    sbmil: SVMSolution | None
    n_positive: Int[Array, ""]

    @property
    def converged(self) -> Bool[Array, ""]:
        """Both stages met their tolerance."""
        ok = self.smil.converged
        return ok if self.sbmil is None else ok & self.sbmil.converged

    @property
    def n_iter(self) -> Int[Array, ""]:
        """SMO steps of both stages together."""
        return self.smil.n_iter + (0 if self.sbmil is None else self.sbmil.n_iter)

    def decision_function(
        self, X: Float[Array, "n T d"], mask: Bool[Array, "n T"]
    ) -> Float[Array, " n"]:
        """Bag scores :func:`bag_scores` of this separator."""
        return bag_scores(self.w, self.b, X, mask)


def check_bags(X, mask, where: str) -> tuple[Float[Array, "n T d"], Bool[Array, "n T"]]:
    """``X`` as float ``(n, T, d)`` and ``mask`` as bool ``(n, T)`` with at least one
    token per bag, or a ``ValueError`` naming the bag."""
    if not hasattr(X, "shape"):
        X = np.asarray(X)
    if X.ndim != 3:
        raise ValueError(f"{where}: X must be (n bags, T tokens, d), got shape {tuple(X.shape)}.")
    if mask is None:
        mask = np.ones(X.shape[:2], bool)
    if not hasattr(mask, "shape"):
        mask = np.asarray(mask)
    if tuple(mask.shape) != tuple(X.shape[:2]):
        raise ValueError(
            f"{where}: mask must have shape {tuple(X.shape[:2])} (bags, tokens) to match X, "
            f"got {tuple(mask.shape)}."
        )
    if not _tracer(mask):
        empty = ~np.asarray(mask, bool).any(axis=1)
        if empty.any():
            raise ValueError(
                f"{where}: bag {int(np.flatnonzero(empty)[0])} has no token in the mask "
                f"({int(empty.sum())} empty bags); every bag needs at least one token."
            )
    if not _tracer(X):
        bad = ~np.isfinite(np.asarray(X))
        if bad.any():
            raise ValueError(
                f"{where}: X holds non-finite values, first at {tuple(np.argwhere(bad)[0])}."
            )
    return jnp.asarray(X, float_dtype()), jnp.asarray(mask, bool)


def _smil_problem(X, mask, pos, C, scale_C):
    n, T, d = X.shape
    dt = X.dtype
    maskf = mask.astype(dt)
    size = jnp.sum(maskf, axis=1)
    means = jnp.einsum("ntd,nt->nd", X, maskf) / size[:, None]
    neg_inst = (mask & ~pos[:, None]).reshape(-1)
    L_n = jnp.sum(neg_inst)
    X_p = jnp.sum(pos)
    c_n = jnp.where(scale_C, C / jnp.maximum(L_n, 1), C)
    c_p = jnp.where(scale_C, C / jnp.maximum(X_p, 1), C)
    Z = jnp.concatenate([X.reshape(n * T, d), means])
    y = jnp.concatenate([-jnp.ones(n * T, dt), jnp.ones(n, dt)])
    margin = jnp.concatenate([jnp.ones(n * T, dt), 2.0 / size - 1.0])
    cost = jnp.concatenate([jnp.where(neg_inst, c_n, 0.0), jnp.where(pos, c_p, 0.0)]).astype(dt)
    return Z, y, margin, cost


def _relabel(X, mask, pos, w, b, eta):
    n, T, d = X.shape
    cand = (mask & pos[:, None]).reshape(-1)
    f = X.reshape(n * T, d) @ w + b
    L_p = jnp.sum(cand)
    k = jnp.clip(jnp.round(eta * L_p).astype(jnp.int32), jnp.sum(pos), L_p)
    ranked = jnp.sort(jnp.where(cand, f, -jnp.inf))[::-1]
    cutoff = ranked[jnp.maximum(k - 1, 0)]
    top = cand & (f >= cutoff)
    return jnp.where(top, 1.0, -1.0).astype(X.dtype), jnp.sum(top)


class MILSVM(eqx.Module):
    r"""sMIL, then optionally sbMIL, linear SVMs on bags (module docstring).

    **Fields:**

    - ``C``: the cost :math:`C > 0` (an array leaf: changing it does not recompile).
    - ``eta``: share of positive-bag instances relabelled positive for stage 2, in
      (0, 1]; None fits stage 1 only.
    - ``scale_C``: divide the costs by the number of examples of each kind (static).
    - ``tol``: KKT tolerance of the SMO solver.
    - ``max_iter``: SMO steps per stage (static).
    """

    C: float | Float[Array, ""] = 1.0
    eta: float | Float[Array, ""] | None = 0.1
    scale_C: bool = eqx.field(static=True, default=True)
    tol: float | Float[Array, ""] = 1e-3
    max_iter: int = eqx.field(static=True, default=100_000)

    def __check_init__(self):
        for name in ("C", "eta", "tol"):
            v = getattr(self, name)
            if v is None or _tracer(v):
                continue
            v = float(v)
            if name == "eta" and not 0.0 < v <= 1.0:
                raise ValueError(f"MILSVM: eta must be in (0, 1] or None, got {v!r}.")
            if not v > 0.0 or not np.isfinite(v):
                raise ValueError(f"MILSVM: {name} must be finite and > 0, got {v!r}.")
        if int(self.max_iter) < 1:
            raise ValueError(f"MILSVM: max_iter must be >= 1, got {self.max_iter!r}.")

    def fit(self, X: Float[Array, "n T d"], mask: Bool[Array, "n T"] | None, y) -> MILSolution:
        """Fit on bags ``X`` ``(n, T, d)`` with token ``mask`` ``(n, T)`` (None: all
        tokens) and bag labels ``y`` ``(n,)`` (bool, 0/1 or -1/+1; positive: the bag
        holds the concept). Traceable in ``X`` and ``y`` (e.g. ``vmap`` over classes or
        layers); returns a :class:`MILSolution` whose ``converged`` the caller reads."""
        X, mask = check_bags(X, mask, "MILSVM.fit")
        if jnp.shape(y) != X.shape[:1]:
            raise ValueError(
                f"MILSVM.fit: y must have shape ({X.shape[0]},) (one label per bag), got {jnp.shape(y)}."
            )
        pos = jnp.asarray(y) > 0
        if not _tracer(pos):
            n_pos = int(jnp.sum(pos))
            if n_pos == 0 or n_pos == X.shape[0]:
                raise ValueError(
                    f"MILSVM.fit: {n_pos} positive and {X.shape[0] - n_pos} negative bags; "
                    "both kinds are needed."
                )
        dt = X.dtype
        C = jnp.asarray(self.C, dt)
        Z, yy, margin, cost = _smil_problem(X, mask, pos, C, self.scale_C)
        first = solve_svm(Z, yy, margin, cost, tol=self.tol, max_iter=self.max_iter)
        if self.eta is None:
            return MILSolution(first.w, first.b, first, None, jnp.asarray(0, jnp.int32))
        labels, n_top = _relabel(X, mask, pos, first.w, first.b, jnp.asarray(self.eta, dt))
        real = mask.reshape(-1)
        c = jnp.where(self.scale_C, C / jnp.sum(real), C)
        n, T, d = X.shape
        second = solve_svm(
            X.reshape(n * T, d),
            labels,
            jnp.ones(n * T, dt),
            jnp.where(real, c, 0.0).astype(dt),
            tol=self.tol,
            max_iter=self.max_iter,
        )
        return MILSolution(second.w, second.b, first, second, n_top.astype(jnp.int32))


def token_bags(
    mask: Bool[Array, "n T"], key: PRNGKeyArray, size: int = 10, keep_last: int = 2
) -> tuple[Int[Array, "n S"], Bool[Array, "n S"]]:
    """Choose at most ``size`` tokens per statement: its last ``keep_last`` real tokens
    (where the statement's truth is decided) and a uniform random sample of the others,
    as sAwMIL builds its bags. Gather them from ``(..., n, T, d)`` activations with
    ``jnp.take_along_axis(acts, idx[..., None], axis=-2)``.

    **Arguments:**

    - ``mask``: ``(n, T)`` bool, the real tokens.
    - ``key``: PRNG key of the sample.
    - ``size``: tokens kept per bag (``S = min(size, T)``).
    - ``keep_last``: final tokens always kept (``<= size``).

    **Returns:** ``(idx, bag_mask)``: ``(n, S)`` token indices in increasing order and
    the bool mask of the real ones among them.
    """
    mask = jnp.asarray(mask, bool)
    if mask.ndim != 2:
        raise ValueError(f"token_bags: mask must be (n, T), got shape {mask.shape}.")
    if not 0 <= int(keep_last) <= int(size) or int(size) < 1:
        raise ValueError(
            f"token_bags: need 1 <= size and 0 <= keep_last <= size, got size={size}, keep_last={keep_last}."
        )
    n, T = mask.shape
    S = min(int(size), T)
    from_end = jnp.sum(mask, axis=1, keepdims=True) - jnp.cumsum(mask, axis=1)
    u = jax.random.uniform(key, mask.shape)
    priority = jnp.where(mask, jnp.where(from_end < keep_last, 2.0, u), -1.0)
    top, idx = jax.lax.top_k(priority, S)
    order = jnp.argsort(idx, axis=1)
    idx = jnp.take_along_axis(idx, order, axis=1)
    return idx.astype(jnp.int32), jnp.take_along_axis(top, order, axis=1) >= 0
