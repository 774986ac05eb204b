"""Which margin loss an estimator minimises, for the mixture theory: the losses
themselves (:class:`~probejax.theory.Logistic`, ``Square``, ``Hinge``) live in
``probejax/solvers/_losses.py``, below the estimators that name them."""

from __future__ import annotations

import jax

from ..solvers._losses import Loss


def theory_loss(estimator) -> tuple[Loss, jax.Array]:
    """``(loss, lam)`` of an estimator that defines ``theory_loss()`` (see the module
    docstring); raises ``TypeError`` naming the estimator otherwise."""
    fn = getattr(estimator, "theory_loss", None)
    if fn is None:
        raise TypeError(
            f"{type(estimator).__name__} has no theory_loss(): the mixture theory covers "
            "estimators minimising sum_i loss(y_i h_i) + lam/2 |w|^2 that return "
            "(probejax.theory.Logistic() / Square() / Hinge(), lam) from theory_loss()."
        )
    return fn()
