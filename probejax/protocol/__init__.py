"""The protocol layer, written once for every estimator: splits, fit-and-score,
stability, comparison, validity controls, and the one engine that runs them over
layers.

The common path is re-exported at the top level (``probejax.evaluate``,
``probejax.stability``, ``probejax.compare`` and their specs); the rest lives here.
"""

from ._compare import Comparison as Comparison, compare as compare
from ._controls import (
    Controls as Controls,
    ControlSplits as ControlSplits,
    PermutationTest as PermutationTest,
    chance_z as chance_z,
    control_labels as control_labels,
    control_layers as control_layers,
    control_splits as control_splits,
    controls as controls,
    permutation_p_value as permutation_p_value,
    permutation_test as permutation_test,
)
from ._engine import (
    LayerSweep as LayerSweep,
    describe_estimator as describe_estimator,
    sweep_layers as sweep_layers,
)
from ._evaluate import (
    Evaluation as Evaluation,
    Stability as Stability,
    evaluate as evaluate,
    evaluate_on as evaluate_on,
    fit_key as fit_key,
    stability as stability,
    stability_runs as stability_runs,
)
from ._kdirection import (
    KDirectionCurve as KDirectionCurve,
    RandomBaseline as RandomBaseline,
    k_direction_curve as k_direction_curve,
    random_direction_baseline as random_direction_baseline,
)
from ._layers import path_sweep as path_sweep, probe_sweep as probe_sweep
from ._specs import (
    ControlsSpec as ControlsSpec,
    SplitSpec as SplitSpec,
    Spread as Spread,
    StabilitySpec as StabilitySpec,
)
from ._splits import (
    Splits as Splits,
    protocol_splits as protocol_splits,
    resampled_runs as resampled_runs,
    resampled_splits as resampled_splits,
)
