"""Metrics of probe scores and concept vectors (traceable, vmappable): accuracy, AUROC
with mid-ranks for ties, log-loss, the detection metrics (recall at a fixed
false-positive rate, Brier score) with stratified bootstrap intervals, cosine, and the
pairwise cosine summary that stability reports."""

from .core._metrics import (
    accuracy as accuracy,
    auroc as auroc,
    brier as brier,
    cosine as cosine,
    detection_metrics as detection_metrics,
    log_loss as log_loss,
    pairwise_cosine_summary as pairwise_cosine_summary,
    recall_at_fpr as recall_at_fpr,
)
