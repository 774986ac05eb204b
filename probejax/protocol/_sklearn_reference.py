"""The RAPTOR authors' scikit-learn loop, kept as the reference for cost comparisons.

``LogisticRegression(solver="lbfgs", penalty="l2", max_iter=1000, warm_start=True)``
swept over the C grid one value after another on StandardScaler-ed train_sub, best
validation accuracy with strict ``>`` (ties keep the smallest C), refit on
train_sub + val at the chosen C. scikit-learn is imported lazily: it is only needed
when a comparison is asked for (``pip install scikit-learn``, in the ``llm`` and
``test`` extras).

The loop's speed depends on its BLAS threads. Each ``fit`` makes many small BLAS
calls, and OpenBLAS's default of one thread per core costs more in start-up and
spinning than it gains (``benchmarks/raptor_real.py`` times both). Importing probejax
gives SciPy's OpenBLAS one thread (:mod:`probejax.core._linalg`), and that library is
the one scikit-learn's loss uses, so in a probejax process the loop runs with one
thread. ``blas_threads`` fixes the count for a comparison.
"""

from __future__ import annotations

import time
import warnings

import numpy as np

from ..estimators._raptor import RAPTOR_C_GRID


def sklearn_raptor(
    X,
    y,
    train_sub,
    val,
    test,
    Cs=RAPTOR_C_GRID,
    *,
    tol: float = 1e-4,
    max_iter: int = 1000,
    blas_threads: int | None = None,
) -> dict:
    """Run the authors' loop on given splits.

    **Arguments:** ``X`` ``(n, d)``, ``y`` two-class labels, index arrays ``train_sub``,
    ``val``, ``test``, the grid ``Cs`` (swept ascending, as the authors do); ``tol`` and
    ``max_iter`` of every ``LogisticRegression`` (the authors': scikit-learn's default
    1e-4 and 1000; a tight ``tol`` makes the loop an accuracy reference);
    ``blas_threads``: the BLAS threads of every library while the loop runs
    (``threadpoolctl``; ``None``: as the process has them, see the module docstring).

    **Returns:** ``dict(C, test_accuracy, w (raw coordinates), b, sweep_seconds (the C
    loop alone), total_seconds (scaling, loop, refit and test), converged (every fit of
    the loop and the refit stopped before ``max_iter``))``.
    """
    from sklearn.linear_model import LogisticRegression  # noqa: F401  (loads its BLAS)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=blas_threads, user_api="blas"):
        return _loop(X, y, train_sub, val, test, Cs, tol, max_iter)


def _loop(X, y, train_sub, val, test, Cs, tol, max_iter) -> dict:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    X, y = np.asarray(X), np.asarray(y)
    tr, va, te = (np.asarray(a) for a in (train_sub, val, test))
    t_start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings at the smallest ridges
        sc = StandardScaler().fit(X[tr])
        Xtr, Xva, Xte = sc.transform(X[tr]), sc.transform(X[va]), sc.transform(X[te])
        t0 = time.perf_counter()  # the authors' tune_raptor_c: the C loop alone
        clf = LogisticRegression(solver="lbfgs", max_iter=max_iter, tol=tol, warm_start=True)
        best_C, best_val = float(Cs[0]), -1.0
        converged = True
        for C in np.sort(np.asarray(Cs)):
            clf.set_params(C=float(C))
            clf.fit(Xtr, y[tr])
            converged &= bool(clf.n_iter_.max() < max_iter)
            acc = float(np.mean(clf.predict(Xva) == y[va]))
            if acc > best_val:
                best_val, best_C = acc, float(C)
        t_sweep = time.perf_counter() - t0
        final = LogisticRegression(solver="lbfgs", max_iter=max_iter, tol=tol, C=best_C).fit(
            np.vstack([Xtr, Xva]), np.concatenate([y[tr], y[va]])
        )
        converged &= bool(final.n_iter_.max() < max_iter)
        acc = float(np.mean(final.predict(Xte) == y[te]))
    scale = np.where(sc.scale_ == 0, 1.0, sc.scale_)
    w = final.coef_.ravel() / scale
    b = float(final.intercept_[0] - w @ sc.mean_)
    return dict(
        C=best_C,
        test_accuracy=acc,
        w=w,
        b=b,
        sweep_seconds=t_sweep,
        total_seconds=time.perf_counter() - t_start,
        converged=converged,
    )
