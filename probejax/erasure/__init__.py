"""Concept erasure: LEACE (closed form and streamed over chunks), and erase-then-probe
for any estimator."""

from ._erased import ErasedInputs as ErasedInputs, ErasedProbe as ErasedProbe
from ._leace import Eraser as Eraser, LeaceMoments as LeaceMoments, fit_leace as fit_leace
