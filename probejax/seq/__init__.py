"""probejax.seq: probes on token sequences (attention, MultiMax, MLP, moment and
prototype probes), trained as vmapped ensembles with early stopping.

Every probe is an Equinox module for one sequence ``(T, d)`` with a mask ``(T,)``;
:func:`fit_seq_probe` splits, standardises, trains a grid of learning rates, weight
decays and seeds in one compiled program and selects on validation.
"""

from ._attention import (
    AttentionPoolProbe as AttentionPoolProbe,
    MultiHeadAttentionProbe as MultiHeadAttentionProbe,
)
from ._base import SeqProbe as SeqProbe, num_params as num_params
from ._efficient import EfficientProbe as EfficientProbe
from ._estimator import (
    SeqEstimator as SeqEstimator,
    SeqTokensProbe as SeqTokensProbe,
    seq_estimator as seq_estimator,
)
from ._fit import (
    SeqFitResult as SeqFitResult,
    ensemble_scores as ensemble_scores,
    fit_seq_probe as fit_seq_probe,
)
from ._fitted import FittedSeqProbe as FittedSeqProbe, TokenScaler as TokenScaler
from ._gemini import (
    MeanLinearProbe as MeanLinearProbe,
    MLPAttentionProbe as MLPAttentionProbe,
    MLPMeanProbe as MLPMeanProbe,
    MultiMaxProbe as MultiMaxProbe,
    RollingAttentionProbe as RollingAttentionProbe,
    TokenMLP as TokenMLP,
)
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
