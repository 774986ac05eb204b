"""probejax.seq: probes on token sequences (attention, MultiMax, MLP, moment and
prototype probes), trained as vmapped ensembles with early stopping.

Every probe is an Equinox module for one sequence ``(T, d)`` with a mask ``(T,)``; a
:class:`SeqEstimator` makes a family an estimator: ``probejax.evaluate(SeqEstimator(
EfficientProbe, grid=SeqGrid(...)), probejax.core.Tokens(X, mask), y, key)`` splits,
standardises, trains the :class:`SeqGrid` of learning rates, weight decays and seeds
in one compiled program, selects on validation and scores on test.
"""

from ._attention import (
    AttentionPoolProbe as AttentionPoolProbe,
    MultiHeadAttentionProbe as MultiHeadAttentionProbe,
)
from ._base import SeqProbe as SeqProbe, num_params as num_params
from ._efficient import EfficientProbe as EfficientProbe
from ._estimator import SeqEstimator as SeqEstimator, SeqTokensProbe as SeqTokensProbe
from ._families import default_families as default_families
from ._fit import ensemble_scores as ensemble_scores
from ._fitted import FittedSeqProbe as FittedSeqProbe, TokenScaler as TokenScaler
from ._gemini import (
    MeanLinearProbe as MeanLinearProbe,
    MLPAttentionProbe as MLPAttentionProbe,
    MLPMeanProbe as MLPMeanProbe,
    MultiMaxProbe as MultiMaxProbe,
    RollingAttentionProbe as RollingAttentionProbe,
    TokenMLP as TokenMLP,
)
from ._grid import SeqGrid as SeqGrid
from ._losses import (
    IGNORE_INDEX as IGNORE_INDEX,
    SeqData as SeqData,
    SequenceLoss as SequenceLoss,
    TokenLoss as TokenLoss,
)
from ._masked import (
    masked_max as masked_max,
    masked_mean as masked_mean,
    masked_softmax as masked_softmax,
)
from ._mlp import MLPProbe as MLPProbe
from ._moment import MomentProbe as MomentProbe
from ._plot import plot_token_scores as plot_token_scores
from ._prototype import PrototypeProbe as PrototypeProbe
from ._train import (
    Hyper as Hyper,
    TrainConfig as TrainConfig,
    TrainResult as TrainResult,
    train_ensemble as train_ensemble,
    train_probe as train_probe,
)
