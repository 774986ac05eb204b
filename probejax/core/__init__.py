"""Core pieces every layer above uses: input checks, metrics, splits, standardisation,
the fitted-probe types and example pytrees."""

from ._probe import (
    Diagnosed as Diagnosed,
    LinearProbe as LinearProbe,
    OnStandardized as OnStandardized,
    Probe as Probe,
    bare as bare,
    diagnostics as diagnostics,
)
from ._rows import Tokens as Tokens, n_rows as n_rows, rows as rows
from ._scaler import Standardizer as Standardizer
