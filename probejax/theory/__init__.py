"""Theory of ridge-logistic probes in the Gaussian teacher-student model and in a
two-class Gaussian mixture with a general covariance.

The replica / CGMT fixed point, its observables, two learners on overlapping data,
separability limits, and a simulator running the same data model through the core
solver; the mixture fixed point in spectral form for any margin loss (``Logistic``,
``Square``, ``Hinge``), its observables, and predictions for a real layer from a pool's
moments (``predict_layer``, ``predict_raptor``). Use float64 (``jax.config.update("jax_enable_x64", True)``): the theory is
written for it (in float32 the Newton residuals stall near 1e-6, above the default
tolerance, and small-ridge points fail to converge); float32 works with looser tolerances.
Derivations: ``docs/theory/`` in the repository (the "Theory derivations" pages of the documentation site).
"""

from ..solvers._losses import (
    Hinge as Hinge,
    Logistic as Logistic,
    Loss as Loss,
    Square as Square,
)
from ._fixed_point import (
    FixedPoint as FixedPoint,
    Params as Params,
    solve_fixed_point as solve_fixed_point,
)
from ._grid import solve_grid as solve_grid
from ._layer import (
    mixture_curves as mixture_curves,
    pool_overlap as pool_overlap,
    predict_layer as predict_layer,
    predict_raptor as predict_raptor,
)
from ._limits import (
    mle_existence_h as mle_existence_h,
    separability_threshold as separability_threshold,
)
from ._losses import theory_loss as theory_loss
from ._mixture import (
    MixtureFixedPoint as MixtureFixedPoint,
    Spectrum as Spectrum,
    solve_mixture as solve_mixture,
    solve_mixture_grid as solve_mixture_grid,
)
from ._mixture_observables import (
    MixtureObservables as MixtureObservables,
    mixture_observables as mixture_observables,
    mixture_overlap as mixture_overlap,
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
from ._solver import FixedPointSolver as FixedPointSolver, Solution as Solution, Status as Status
from ._sweep import theory_sweep as theory_sweep
from ._two_learners import TwoLearners as TwoLearners, two_learner_overlap as two_learner_overlap
