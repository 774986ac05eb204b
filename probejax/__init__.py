"""probejax: probe theory and scaling in JAX.

The common path is here: estimators (``Estimator``, ``get_estimator``, ``register``;
the estimators themselves in :mod:`probejax.estimators`), the protocol
(``evaluate``, ``stability``, ``compare`` with their specs), the fitted probe types and
the data models. Everything else lives in subpackages, one per layer of the package,
bottom to top: ``io`` (atomic writes, results identity, the compiled-program cache),
``core`` (input checks, splits, standardisation, probe types), ``metrics``,
``solvers``, ``estimators``, ``protocol`` (also controls, k-direction curves and
layer sweeps), ``sweep`` (the resumable sharded runner), ``theory`` and
``datamodels``; applications on top: ``llm``, ``seq``, ``reproduce``, ``cli``,
``sklearn``.
"""

# ruff: noqa: E402  (the flags are set before the imports below can start JAX)
from .io._xla_flags import set_xla_flags

set_xla_flags()  # before any computation: batched CPU linear algebra can deadlock otherwise

from . import estimators as estimators, metrics as metrics
from .core._probe import LinearProbe as LinearProbe, Probe as Probe
from .datamodels import (
    GaussianMixture as GaussianMixture,
    GaussianTeacherStudent as GaussianTeacherStudent,
)
from .estimators import Estimator as Estimator, get_estimator as get_estimator, register as register
from .io._compile_cache import enable_compile_cache as enable_compile_cache
from .protocol import (
    Comparison as Comparison,
    Evaluation as Evaluation,
    Splits as Splits,
    SplitSpec as SplitSpec,
    Stability as Stability,
    StabilitySpec as StabilitySpec,
    compare as compare,
    evaluate as evaluate,
    protocol_splits as protocol_splits,
    stability as stability,
)
