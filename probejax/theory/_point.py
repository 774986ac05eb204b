"""One theory point as plain Python values (the command line's ``theory point``)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from ..datamodels._teacher_student import CHANNELS, GaussianTeacherStudent
from ._fixed_point import Params, solve_fixed_point
from ._observables import observables


def check_point(alpha, lam, teacher, *, beta, delta, rho, eps):
    """Raise ``ValueError`` naming the first invalid argument."""
    checks = [
        ("alpha", alpha, alpha > 0, "> 0"),
        ("lam", lam, lam >= 0, ">= 0"),
        ("rho", rho, rho > 0, "> 0"),
        ("beta", beta, beta >= 0, ">= 0"),
        ("delta", delta, delta > 0, "> 0"),
        ("eps", eps, 0 <= eps < 0.5, "in [0, 0.5)"),
    ]
    for name, value, ok, want in checks:
        if not (math.isfinite(value) and ok):
            raise ValueError(f"{name} must be finite and {want}, got {value!r}.")
    if teacher not in CHANNELS:
        raise ValueError(f"teacher must be one of {CHANNELS}, got {teacher!r}.")


def predict_point(alpha, lam, teacher="logistic", *, beta=1.0, delta=1.0, rho=1.0, eps=0.0):
    """Fixed point and observables at one point, in float64, as a ``dict`` of floats.

    Keys: m, q, V, cos, acc, acc_teacher, train_loss, train_acc, stability
    (independent samples), objective, converged, status, residual, n_iter. Values are
    ``None`` (JSON null) where no fixed point was found (``converged`` false).
    """
    check_point(alpha, lam, teacher, beta=beta, delta=delta, rho=rho, eps=eps)
    with jax.enable_x64(True):
        model = GaussianTeacherStudent(teacher, rho=rho, beta=beta, delta=delta, eps=eps)
        fp = solve_fixed_point(model, alpha, lam)
        p = Params(jnp.asarray(alpha), jnp.asarray(lam), jax.tree.map(jnp.asarray, model))
        obs = observables(p, fp)
        out = {"m": fp.m, "q": fp.q, "V": fp.V}
        out.update({k: getattr(obs, k) for k in vars(obs)})
        out = {k: float(v) if math.isfinite(float(v)) else None for k, v in out.items()}
        out.update(
            converged=bool(fp.converged),
            status=int(fp.status),
            residual=float(fp.residual),
            n_iter=int(fp.n_iter),
        )
    return out
