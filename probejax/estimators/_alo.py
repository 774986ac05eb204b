r"""Ridge-logistic regression with the ridge chosen by approximate leave-one-out (ALO;
Rad and Maleki 2020, arXiv 1801.10243), fitting on all the data it is given: no
validation split is held out.

For the fit :math:`(\hat w, \hat b)` at ridge :math:`\lambda` on standardised features
with margins :math:`z_i = \hat w^\top x_i + \hat b`, loss derivatives
:math:`\dot\ell_i = -y_i\,\sigma(-y_i z_i)`,
:math:`\ddot\ell_i = \sigma(z_i)\,\sigma(-z_i)`, and :math:`\tilde x_i = (1, x_i)`, the
leave-one-out margin is approximated by one Newton step of the problem without example
:math:`i`, started from the full fit:

.. math::

    z_{-i} \approx z_i + \frac{H_{ii}}{1 - H_{ii}\,\ddot\ell_i}\,\dot\ell_i, \qquad
    H = \tilde X\bigl(\tilde X^\top \mathrm{diag}(\ddot\ell)\,\tilde X
        + \lambda\,\mathrm{diag}(0, 1, \dots, 1)\bigr)^{-1}\tilde X^\top,

exact for the square loss and accurate to :math:`O(1/n)` for smooth losses in the
proportional regime. The ridge is the one whose ALO margins score best under
``criterion`` (accuracy, as RAPTOR's validation does; exact ties to the strongest
ridge), and the probe is the path's fit at that ridge, on all the data.
"""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ..core._metrics import accuracy
from ..core._probe import Diagnosed, bare, diagnostics
from ._base import Estimator
from ._logistic_ridge import LogisticRidge
from ._raptor import RAPTOR_C_GRID, _lams
from ._tuned import _scaler, select_index


def alo_margins(
    X: Float[Array, "n d"], y: Float[Array, " n"], z: Float[Array, " n"], lam: Float[Array, ""]
) -> Float[Array, " n"]:
    """The ALO margins :math:`z_{-i}` (module docstring) of a ridge-logistic fit with
    margins ``z`` on ``(X, y)`` at ``lam`` (unpenalised intercept)."""
    Xt = jnp.concatenate([jnp.ones((X.shape[0], 1), X.dtype), X], axis=1)
    p = jax.nn.sigmoid(z)
    d2 = p * (1.0 - p)
    d1 = -y * jax.nn.sigmoid(-y * z)
    penalty = jnp.concatenate([jnp.zeros(1, X.dtype), jnp.full(X.shape[1], lam, X.dtype)])
    A = Xt.T @ (d2[:, None] * Xt) + jnp.diag(penalty)
    h = jnp.sum(Xt * jnp.linalg.solve(A, Xt.T).T, axis=1)
    return z + h / (1.0 - h * d2) * d1


class ALOTuned(Estimator):
    """:class:`LogisticRidge` over ``lams`` with the ridge chosen by ALO (module
    docstring), on features standardised with the data's statistics (``standardize``).
    The probe carries ``lam``, ``C``, ``index``, ``alo_criterion`` (per grid point) and
    ``path_converged``."""

    inner: LogisticRidge
    lams: Float[Array, " L"] = eqx.field(converter=jnp.asarray)
    criterion: Callable = eqx.field(default=accuracy, static=True)
    standardize: bool = eqx.field(default=True, static=True)

    def fit(self, X, y, key=None):
        scaler = _scaler(self.standardize, X)
        Xs = jax.lax.optimization_barrier(scaler.transform(X))
        lams = jnp.asarray(self.lams, X.dtype)
        path = self.inner.path(Xs, y, lams, key, self.inner.shared(Xs, Xs.shape[0]))
        lin = path.linear()
        z = Xs @ lin.w.T + lin.b  # (n, L)
        # one grid point at a time: each solve holds a (d + 1, n) block
        z_alo = jax.lax.map(lambda a: alo_margins(Xs, y, a[0], a[1]), (z.T, lams))
        crit = jax.vmap(self.criterion, in_axes=(None, 0))(y, z_alo)
        index = select_index(crit, lams)
        chosen = jax.tree.map(lambda a: a[index], bare(path))
        info = {
            "lam": lams[index],
            "C": 1.0 / lams[index],
            "index": index,
            "alo_criterion": crit,
            "path_converged": diagnostics(path).get("converged", jnp.ones(lams.shape, bool)),
        }
        return Diagnosed(chosen.unstandardize(scaler), info)


def raptor_alo(Cs=RAPTOR_C_GRID, *, criterion: Callable = accuracy) -> ALOTuned:
    """RAPTOR's probe and grid with the ridge chosen by approximate leave-one-out on all
    the data it is given (train + validation under the protocol) instead of a validation
    split."""
    return ALOTuned(LogisticRidge(), _lams(Cs), criterion=criterion)
