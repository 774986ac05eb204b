"""probejax.llm: probes on frozen language-model activations (needs the ``llm`` extra:
torch, transformers, safetensors, gguf, tqdm, vaderSentiment)."""

from ._cache import (
    CacheCorruptError as CacheCorruptError,
    CacheMismatchError as CacheMismatchError,
    cached_activations as cached_activations,
)
from ._datasets import (
    DatasetEntry as DatasetEntry,
    TextDataset as TextDataset,
    contrast_pairs as contrast_pairs,
    load_dataset as load_dataset,
    read_text_dataset as read_text_dataset,
    register_dataset as register_dataset,
    registered_datasets as registered_datasets,
)
from ._erase import EraseAt as EraseAt
from ._export import (
    ExportedActivations as ExportedActivations,
    export_activations as export_activations,
)
from ._extract import (
    ExtractionSpec as ExtractionSpec,
    extract as extract,
    length_order as length_order,
)
from ._generate import (
    Generations as Generations,
    ab_probabilities as ab_probabilities,
    ab_sweep as ab_sweep,
    continuation_nll as continuation_nll,
    generate_batch as generate_batch,
)
from ._hooks import (
    SITES as SITES,
    decoder_layers as decoder_layers,
    hooked as hooked,
)
from ._intervention import (
    Intervention as Intervention,
    Positions as Positions,
    SteerRecord as SteerRecord,
)
from ._model import LoadedModel as LoadedModel, load_model as load_model
from ._rowsteer import RowSteering as RowSteering
from ._steer import (
    EditRule as EditRule,
    ExactEdit as ExactEdit,
    FixedSteering as FixedSteering,
    TargetSteering as TargetSteering,
    UnitVectorEdit as UnitVectorEdit,
    generate as generate,
    probe_probability as probe_probability,
    steering_demo as steering_demo,
)
from ._steer_data import NEUTRAL_PROMPTS as NEUTRAL_PROMPTS, SENTIMENT_PAIRS as SENTIMENT_PAIRS
from ._steer_eval import (
    bootstrap_ci as bootstrap_ci,
    dose_response as dose_response,
    repeated_ngram_rate as repeated_ngram_rate,
    vader as vader,
)
from ._sweep import (
    GroupedSplit as GroupedSplit,
    SweepOutputs as SweepOutputs,
    llm_sweep as llm_sweep,
    probe_activations as probe_activations,
)
from ._tokens import (
    AfterMarker as AfterMarker,
    AllTokens as AllTokens,
    AssistantTurn as AssistantTurn,
    Chat as Chat,
    LastTokens as LastTokens,
    TokenMask as TokenMask,
)
from ._vectors import SteeringVector as SteeringVector, residual_norms as residual_norms
