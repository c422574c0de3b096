"""Baselines protocol: train and evaluate a list of detectors on one split and write one table in
IMDL-BenCo's layout (pixel F1 / IoU / AUC, image F1 / Acc / AUC, training time, parameters)."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
