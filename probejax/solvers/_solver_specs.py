r"""The ridge-logistic solvers as small frozen specs, validated when they are built.

- :class:`Newton`: damped Newton with an exact line search; representer form
  (:math:`n\times n` Cholesky per step) when :math:`n < d`, primal
  (:math:`d\times d`) otherwise. Quadratic convergence, robust at tiny ridge.
- :class:`LBFGS`: L-BFGS on the eigen-reduced design with a Jacobi preconditioner; one
  eigendecomposition shared by every grid point, then two :math:`O(n\min(n,d))`
  products per iteration. The fast choice for grids.
- :class:`Auto`: its ``lbfgs`` for grids of more than one point when
  :math:`\min(n, d) > 64`, else its ``newton``.

Each solver stops at
:math:`\lVert\nabla F\rVert_2 \le \mathrm{tol}\cdot\lVert\nabla F(0)\rVert_2` with the
decrement test of :func:`probejax.solvers._logistic.tolerance_met`, or after
``max_iter`` iterations (then ``converged=False``). ``tol=None`` is the precision's
default, :func:`default_tol`. A spec holds no arrays and is hashable: it is a static
argument of ``jax.jit``, and a new spec equal to an old one reuses its compiled program.
"""

from __future__ import annotations

import dataclasses
import math
import numbers

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from ._design import reduce_design
from ._lbfgs import lbfgs_path, lbfgs_solve
from ._logistic import RidgeLogisticSolution
from ._newton import newton_form, newton_solve

# Auto: L-BFGS pays for its eigendecomposition only over a grid on a problem this wide
AUTO_MIN_DIM = 64


def default_tol(dtype) -> float:
    """Relative gradient tolerance by precision: 1e-5 in float32, 1e-10 in float64."""
    return 1e-10 if jnp.dtype(dtype) == jnp.float64 else 1e-5


def _tol(value, where: str) -> float | None:
    if value is None:
        return None
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not ok or not (math.isfinite(value) and value > 0):
        raise ValueError(
            f"{where} must be a finite number > 0 or None (the precision's default), got {value!r}."
        )
    return float(value)


def _max_iter(value, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{where} must be an integer >= 1, got {value!r}.")
    return int(value)


def _tol_for(tol: float | None, dtype) -> float:
    return default_tol(dtype) if tol is None else tol


@dataclasses.dataclass(frozen=True)
class Newton:
    """Damped Newton with an exact line search (module docstring).

    - ``tol``: relative gradient tolerance, > 0; ``None``: :func:`default_tol`.
    - ``max_iter``: most Newton steps, >= 1.
    """

    tol: float | None = None
    max_iter: int = 100

    def __post_init__(self):
        object.__setattr__(self, "tol", _tol(self.tol, "Newton.tol"))
        object.__setattr__(self, "max_iter", _max_iter(self.max_iter, "Newton.max_iter"))

    def resolve(self, n: int, d: int, grid_size: int) -> Newton:
        """Itself, for any problem shape."""
        return self

    def describe(self) -> dict:
        """A JSON-able description, ``{"Newton": {"tol": ..., "max_iter": ...}}``."""
        return {"Newton": dataclasses.asdict(self)}

    def solve(
        self,
        X: Float[Array, "n d"],
        y: Float[Array, " n"],
        lam: Float[Array, ""],
        *,
        fit_intercept: bool = True,
        gram: Float[Array, "n n"] | None = None,
        init: tuple[Float[Array, " d"], Float[Array, ""]] | None = None,
    ) -> RidgeLogisticSolution:
        """One fit (:func:`probejax.solvers.solve_ridge_logistic`); the primal form
        (``n >= d``) starts from ``init``, the representer form from zero."""
        form = newton_form(X, gram)
        theta = None if init is None else form.coordinates(init[0])
        start = None if theta is None else (theta, init[1])
        return newton_solve(
            form,
            y,
            lam,
            fit_intercept=fit_intercept,
            tol=_tol_for(self.tol, X.dtype),
            max_iter=self.max_iter,
            init=start,
        )

    def path(
        self,
        X: Float[Array, "n d"],
        y: Float[Array, " n"],
        lams: Float[Array, " L"],
        *,
        fit_intercept: bool = True,
        gram: Float[Array, "n n"] | None = None,
    ) -> RidgeLogisticSolution:
        """:meth:`solve` vmapped over ``lams`` (one Gram matrix for the grid)."""
        one = lambda lam: self.solve(X, y, lam, fit_intercept=fit_intercept, gram=gram)
        return jax.vmap(one)(lams)


@dataclasses.dataclass(frozen=True)
class LBFGS:
    """Preconditioned L-BFGS on the eigen-reduced design (module docstring).

    - ``tol``: relative gradient tolerance, > 0; ``None``: :func:`default_tol`.
    - ``max_iter``: most iterations, >= 1.
    """

    tol: float | None = None
    max_iter: int = 1000

    def __post_init__(self):
        object.__setattr__(self, "tol", _tol(self.tol, "LBFGS.tol"))
        object.__setattr__(self, "max_iter", _max_iter(self.max_iter, "LBFGS.max_iter"))

    def resolve(self, n: int, d: int, grid_size: int) -> LBFGS:
        """Itself, for any problem shape."""
        return self

    def describe(self) -> dict:
        """A JSON-able description, ``{"LBFGS": {"tol": ..., "max_iter": ...}}``."""
        return {"LBFGS": dataclasses.asdict(self)}

    def solve(
        self,
        X: Float[Array, "n d"],
        y: Float[Array, " n"],
        lam: Float[Array, ""],
        *,
        fit_intercept: bool = True,
        gram: Float[Array, "n n"] | None = None,
        init: tuple[Float[Array, " d"], Float[Array, ""]] | None = None,
    ) -> RidgeLogisticSolution:
        """One fit (:func:`probejax.solvers.solve_ridge_logistic`), from zero (``init``
        is not used: the reduced coordinates of a start are not cheap)."""
        return lbfgs_solve(
            reduce_design(X, gram),
            y,
            lam,
            fit_intercept=fit_intercept,
            tol=_tol_for(self.tol, X.dtype),
            max_iter=self.max_iter,
        )

    def path(
        self,
        X: Float[Array, "n d"],
        y: Float[Array, " n"],
        lams: Float[Array, " L"],
        *,
        fit_intercept: bool = True,
        gram: Float[Array, "n n"] | None = None,
    ) -> RidgeLogisticSolution:
        """One reduced design for the grid, then the warm-started continuation
        :func:`probejax.solvers._lbfgs.lbfgs_path`; each ridge has the stopping rule of
        a single fit."""
        return lbfgs_path(
            reduce_design(X, gram),
            y,
            lams,
            fit_intercept=fit_intercept,
            tol=_tol_for(self.tol, X.dtype),
            max_iter=self.max_iter,
        )


@dataclasses.dataclass(frozen=True)
class Auto:
    """``lbfgs`` for grids of more than one ridge on problems with
    :math:`\\min(n, d) > 64`, else ``newton``.

    - ``newton``: the :class:`Newton` used otherwise (its ``tol`` and ``max_iter``).
    - ``lbfgs``: the :class:`LBFGS` used for wide grids.
    """

    newton: Newton = Newton()
    lbfgs: LBFGS = LBFGS()

    def __post_init__(self):
        for name, cls in (("newton", Newton), ("lbfgs", LBFGS)):
            value = getattr(self, name)
            if not isinstance(value, cls):
                raise ValueError(f"Auto.{name} must be a {cls.__name__}(...), got {value!r}.")

    def resolve(self, n: int, d: int, grid_size: int) -> Newton | LBFGS:
        """The solver for ``grid_size`` ridges on an ``(n, d)`` problem."""
        return self.lbfgs if grid_size > 1 and min(n, d) > AUTO_MIN_DIM else self.newton

    def describe(self) -> dict:
        """A JSON-able description, ``{"Auto": {"newton": {...}, "lbfgs": {...}}}``."""
        return {"Auto": {"newton": self.newton.describe(), "lbfgs": self.lbfgs.describe()}}


Solver = Newton | LBFGS | Auto
_KINDS = (Newton, LBFGS, Auto)


def check_solver(solver, where: str = "solver") -> Solver:
    """``solver`` itself when it is a :class:`Newton`, :class:`LBFGS` or :class:`Auto`
    (a ``TypeError`` naming them otherwise, e.g. for the strings of earlier versions)."""
    if not isinstance(solver, _KINDS):
        raise TypeError(
            f"{where} must be probejax.solvers.Newton(...), LBFGS(...) or Auto(...), "
            f"got {solver!r} ({type(solver).__name__})."
        )
    return solver


def resolve_solver(solver: Solver, n: int, d: int, grid_size: int) -> Newton | LBFGS:
    """The concrete solver for ``grid_size`` ridges on an ``(n, d)`` problem (an
    :class:`Auto` applies its rule; the others are themselves)."""
    return check_solver(solver).resolve(n, d, grid_size)
