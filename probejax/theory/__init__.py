"""Theory of ridge-logistic probes in the Gaussian teacher-student model.

The replica / CGMT fixed point, its observables, two learners on overlapping data,
separability limits, and a simulator running the same data model through the core
solver. Use float64 (``jax.config.update("jax_enable_x64", True)``): the theory is
written for it (THEORY.md pitfall 4); float32 works with looser tolerances.
Derivations: ``theory/`` at the top of the repository.
"""

from ._fixed_point import (
    FixedPoint as FixedPoint,
    Params as Params,
    Status as Status,
    solve_fixed_point as solve_fixed_point,
)
from ._observables import (
    Observables as Observables,
    generalization_accuracy as generalization_accuracy,
    observables as observables,
)
from ._point import predict_point as predict_point
from ._quadrature import Quadrature as Quadrature
from ._simulate import Measured as Measured, simulate as simulate
