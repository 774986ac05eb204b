"""Metrics of probe scores and concept vectors (traceable, vmappable): accuracy, AUROC
with mid-ranks for ties, log-loss, cosine, and the pairwise cosine summary that
stability reports."""

from .core._metrics import (
    accuracy as accuracy,
    auroc as auroc,
    cosine as cosine,
    log_loss as log_loss,
    pairwise_cosine_summary as pairwise_cosine_summary,
)
