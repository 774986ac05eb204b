"""Theory of ridge-logistic probes in the Gaussian teacher-student model.

The replica / CGMT fixed point, its observables, two learners on overlapping data,
separability limits, and a simulator running the same data model through the core
solver. Use float64 (``jax.config.update("jax_enable_x64", True)``): the theory is
written for it (in float32 the Newton residuals stall near 1e-6, above the default
tolerance, and small-ridge points fail to converge); float32 works with looser tolerances.
Derivations: ``theory/`` at the top of the repository.
"""

from ._fixed_point import (
    FixedPoint as FixedPoint,
    Params as Params,
    Status as Status,
    solve_fixed_point as solve_fixed_point,
)
from ._grid import solve_grid as solve_grid
from ._limits import (
    mle_existence_h as mle_existence_h,
    separability_threshold as separability_threshold,
)
from ._observables import (
    Observables as Observables,
    generalization_accuracy as generalization_accuracy,
    observables as observables,
)
from ._optimal import (
    LamStatus as LamStatus,
    OptimalLam as OptimalLam,
    bayes_optimal_error_sign as bayes_optimal_error_sign,
    bayes_optimal_overlap_sign as bayes_optimal_overlap_sign,
    metric_at as metric_at,
    optimal_lam as optimal_lam,
)
from ._point import predict_point as predict_point
from ._quadrature import Quadrature as Quadrature
from ._simulate import Measured as Measured, simulate as simulate
from ._sweep import theory_sweep as theory_sweep
from ._two_learners import TwoLearners as TwoLearners, two_learner_overlap as two_learner_overlap
