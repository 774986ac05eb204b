r"""The proximal point of the logistic loss, with its implicit derivative.

For :math:`\ell(u) = \log(1 + e^{-u})`, the proximal point
:math:`P = \arg\min_z (z-\omega)^2/(2V) + \ell(yz)` satisfies, with :math:`u = yP` and
:math:`a = y\omega`,

.. math::

    G(u) = u - a - V\sigma(-u) = 0, \qquad G'(u) = 1 + V\sigma(u)\sigma(-u) \ge 1,

so the root is unique and lies in :math:`[a, a + V]` (:math:`G(a) \le 0 \le G(a + V)`). It is found by Newton's
method safeguarded by that bracket (plain Newton cycles at large :math:`V`, e.g. :math:`V \approx 25`,
:math:`a \approx -22`),
and differentiated by the implicit function theorem,
:math:`du = (da + \sigma(-u)\,dV)/(1 + V\sigma(u)\sigma(-u))`, so derivatives never unroll
the iterations. Then :math:`f = (P - \omega)/V = y\sigma(-u)` and
:math:`\partial_\omega f = -\ell''(u)/(1 + V\ell''(u))`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

MAX_STEPS = 60


@jax.custom_jvp
def prox_margin(a, V):
    """The root :math:`u` of :math:`u = a + V\\sigma(-u)` (elementwise, ``V > 0``)."""
    a, V = jnp.broadcast_arrays(a, V)
    # Regime-wise start: u ~ a (a >> 0), u ~ a + V (a << -V), u ~ 0 on the ramp between.
    u0 = a + V * jnp.clip(-a / V, 0.0, 1.0)
    tol = 4 * jnp.finfo(a.dtype).eps

    def cond(c):
        _, _, _, k, done = c
        return (k < MAX_STEPS) & ~jnp.all(done)

    def body(c):
        u, lo, hi, k, done = c
        s = jax.nn.sigmoid(-u)
        g = u - a - V * s
        lo = jnp.where(g < 0, u, lo)
        hi = jnp.where(g > 0, u, hi)
        un = u - g / (1 + V * s * (1 - s))
        un = jnp.where((un >= lo) & (un <= hi), un, 0.5 * (lo + hi))
        un = jnp.where(done, u, un)
        done = done | (jnp.abs(un - u) <= tol * (1 + jnp.abs(u)))
        return un, lo, hi, k + 1, done

    u, *_ = jax.lax.while_loop(cond, body, (u0, a, a + V, 0, jnp.zeros(a.shape, bool)))
    return u


@prox_margin.defjvp
def _prox_margin_jvp(primals, tangents):
    a, V = primals
    da, dV = tangents
    u = prox_margin(a, V)
    s = jax.nn.sigmoid(-u)
    return u, (da + s * dV) / (1 + V * s * (1 - s))


def prox_terms(y, omega, V):
    """``(u, f, df_domega)`` at the proximal point: :math:`u = yP`, :math:`f = y\\sigma(-u)`,
    :math:`\\partial_\\omega f = -D/(1 + VD)` with :math:`D = \\sigma(u)\\sigma(-u)`."""
    u = prox_margin(y * omega, V)
    s = jax.nn.sigmoid(-u)
    D = s * (1 - s)
    return u, y * s, -D / (1 + V * D)
