"""Detectors: segmentation networks that localise AI edits, one registry, one factory.

>>> from models.detectors import create_detector, list_detectors
>>> list_detectors()
['cnnspot', 'deeplabv3plus', 'fcn8s', 'maskclip', 'nfa_vit', 'segformer', 'universal_fake_det']
>>> model = create_detector("deeplabv3plus", num_classes=2, encoder_name="resnet18")

Every entry returns a ``SegmentationDetector``: float (B, 3, H, W) images in [0, 1] in, logits
(B, num_classes, H, W) out, class 0 = untouched. Entries with their own image head (NFA-ViT,
MaskCLIP, the classifiers) are ``ImageHeadDetector``s with ``forward_with_image(x) ->
(logits, image logit)``; the image-level classifiers (CNNSpot, UniversalFakeDet) have
``pixel_level = False`` and logits constant over space. Nothing is ever downloaded: weights are
local file paths (CLIP: a local folder or an id already in the Hugging Face cache) or None
(random initialisation, with a warning).
"""

from models.registry import UnknownNameError

from . import cnnspot, deeplabv3plus, fcn8s, imdl, maskclip, nfa_vit, residual, segformer, universal_fake_det  # noqa: F401  (registers the entries)
from .base import (
    DETECTORS,
    DetectorOutputs,
    ImageClassifierDetector,
    ImageHeadDetector,
    SegmentationDetector,
    create_detector,
    detector_tasks,
    list_detectors,
)
from .checkpoint import detector_from_state, detector_state, load_checkpoint, save_checkpoint

__all__ = [
    "DETECTORS",
    "DetectorOutputs",
    "ImageClassifierDetector",
    "ImageHeadDetector",
    "SegmentationDetector",
    "UnknownNameError",
    "create_detector",
    "detector_from_state",
    "detector_state",
    "detector_tasks",
    "list_detectors",
    "load_checkpoint",
    "save_checkpoint",
]
