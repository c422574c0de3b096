"""Detectors: segmentation networks that localise AI edits, one registry, one factory.

>>> from models.detectors import create_detector, list_detectors
>>> list_detectors()
['deeplabv3plus', 'fcn8s', 'segformer']
>>> model = create_detector("deeplabv3plus", num_classes=2, encoder_name="resnet18")

Every entry returns a ``SegmentationDetector``: float (B, 3, H, W) images in [0, 1] in, logits
(B, num_classes, H, W) out, class 0 = untouched. Nothing is ever downloaded: ``encoder_weights``
is a local file path or None (random initialisation, with a warning).
"""

from models.registry import UnknownNameError

from . import deeplabv3plus, fcn8s, segformer  # noqa: F401  (registers the entries)
from .base import DETECTORS, SegmentationDetector, create_detector, list_detectors
from .checkpoint import detector_from_state, detector_state, load_checkpoint, save_checkpoint

__all__ = [
    "DETECTORS",
    "SegmentationDetector",
    "UnknownNameError",
    "create_detector",
    "detector_from_state",
    "detector_state",
    "list_detectors",
    "load_checkpoint",
    "save_checkpoint",
]
