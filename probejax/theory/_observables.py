r"""Predictions at a fixed point (derivations: ``docs/theory/observables.md``).

- cosine to the teacher :math:`m/\sqrt{\rho q}`;
- test accuracy against fresh (noisy) labels, a half-line integral:
  :math:`2\int_0^\infty D\xi\, Z_0(+1, (m/\sqrt q)\xi, V_0)`;
- agreement with the sign of the teacher field, :math:`1 - \arccos(\cos)/\pi`;
- training loss :math:`2\,\mathbb E_\xi[Z_0(+1,\cdot)\,\ell(u)]` at the proximal margin;
- training error: :math:`yP < 0 \iff y\omega < -V/2`, the half-line
  :math:`2\int_{-\infty}^{-V/(2\sqrt q)} D\xi\, Z_0(+1,\cdot)`;
- stability across independent samples :math:`m^2/(\rho q)`;
- the minimum of the objective per dimension, :math:`\alpha L_{\rm train} + \lambda q/2`.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ..solvers._prox import prox_terms
from ._channels import partition
from ._fixed_point import FixedPoint, Params, outer_rule
from ._quadrature import Quadrature


class Observables(eqx.Module):
    cos: Float[Array, ""]
    acc: Float[Array, ""]
    acc_teacher: Float[Array, ""]
    train_loss: Float[Array, ""]
    train_acc: Float[Array, ""]
    stability: Float[Array, ""]
    objective: Float[Array, ""]


def _half_line(model, m, q, V, quad: Quadrature, lo, hi):
    (xi, w), V0 = outer_rule(model, m, q, V, quad, lo=lo, hi=hi)
    Z, _ = partition(model, 1.0, (m / jnp.sqrt(q)) * xi, V0, quad)
    return 2.0 * jnp.sum(w * Z)


def generalization_accuracy(model, m, q, quad: Quadrature = Quadrature()):
    """Accuracy on fresh labels of a student with overlaps ``(m, q)`` with the teacher:
    :math:`2\\int_0^\\infty D\\xi\\,Z_0(+1, (m/\\sqrt q)\\xi, \\rho - m^2/q)`. Exact for any
    weight vector (it depends on the weights only through :math:`m, q`), so it also
    scores simulated students without test-set noise (a finite test set would add
    :math:`O(1/\\sqrt{n_{test}})` noise to the comparison)."""
    return _half_line(model, m, q, jnp.ones_like(q), quad, 0.0, quad.half_width)


@eqx.filter_jit
def observables(p: Params, fp: FixedPoint, quad: Quadrature = Quadrature()) -> Observables:
    """Every prediction of :class:`Observables` at the fixed point ``fp`` of ``p``."""
    rho = p.model.rho
    cos = fp.m / jnp.sqrt(rho * fp.q)
    L = quad.half_width
    acc = generalization_accuracy(p.model, fp.m, fp.q, quad)
    train_err = _half_line(p.model, fp.m, fp.q, fp.V, quad, -L, -fp.V / (2 * jnp.sqrt(fp.q)))
    (xi, w), V0 = outer_rule(p.model, fp.m, fp.q, fp.V, quad)
    Z, _ = partition(p.model, 1.0, (fp.m / jnp.sqrt(fp.q)) * xi, V0, quad)
    u, _, _ = prox_terms(1.0, jnp.sqrt(fp.q) * xi, fp.V)
    train_loss = 2.0 * jnp.sum(w * Z * jax.nn.softplus(-u))
    return Observables(
        cos=cos,
        acc=acc,
        acc_teacher=1.0 - jnp.arccos(jnp.clip(cos, -1.0, 1.0)) / jnp.pi,
        train_loss=train_loss,
        train_acc=1.0 - train_err,
        stability=cos**2,
        objective=p.alpha * train_loss + 0.5 * p.lam * fp.q,
    )
