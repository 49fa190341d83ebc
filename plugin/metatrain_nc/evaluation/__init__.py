"""Accuracy of exported models against reference labels, per force head."""

from .accuracy import HeadErrors, ModelAccuracy, model_accuracy

__all__ = ["HeadErrors", "ModelAccuracy", "model_accuracy"]
