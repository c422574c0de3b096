"""CNNSpot (Wang et al., CVPR 2020, "CNN-generated images are surprisingly easy to spot... for
now"): an ImageNet ResNet-50 fine-tuned as a real / fake image classifier. DiffSeg30k's
image-level baseline (Acc 0.942 / mAP 0.979).

As in the paper: torchvision ResNet-50, the 1000-way fc replaced by one logit trained with BCE,
and the "Blur+JPEG (0.5)" augmentation: with probability 0.5 a Gaussian blur with
sigma ~ U[0, 3], with probability 0.5 JPEG re-compression with quality ~ U[30, 100]
(``train_augmentation`` below; the trainer uses it for every field its caller leaves unset).
The paper trains on 224 px random crops with flips; crop size and flips come from the trainer.

An image-level model: its logits are constant over space and ``pixel_level`` is False (see
``ImageClassifierDetector``). For the semantic task the head has one logit per class (0 =
authentic, k = the image's dominant generator) and is trained with cross-entropy.
"""

from __future__ import annotations

import torchvision
from torch import nn

from .base import DETECTORS, ImageClassifierDetector, load_encoder_weights, weights_follow_active
from .pretrained import resolve_torchvision_weights

RESNETS = ("resnet18", "resnet34", "resnet50", "resnet101")


class ResNetClassifier(nn.Module):
    """torchvision ResNet whose ``fc`` emits ``outputs`` logits; state-dict keys are torchvision's."""

    def __init__(self, backbone: str, outputs: int):
        super().__init__()
        self.resnet = getattr(torchvision.models, backbone)(weights=None)
        self.resnet.fc = nn.Linear(self.resnet.fc.in_features, outputs)

    def forward(self, x):
        return self.resnet(x)


class CNNSpotDetector(ImageClassifierDetector):
    train_augmentation = {"blur_prob": 0.5, "blur_sigma": [0.0, 3.0], "jpeg_prob": 0.5, "jpeg_quality": [30, 100]}


@DETECTORS.register("cnnspot", description="CNNSpot: ResNet-50 real/fake image classifier with blur+JPEG augmentation (image-level only)")
def build_cnnspot(num_classes: int, backbone: str = "resnet50", encoder_weights: str | None = None) -> CNNSpotDetector:
    """CNNSpot with one logit (binary task) or ``num_classes`` logits (semantic task).

    Args:
        backbone: torchvision ResNet name (paper: "resnet50").
        encoder_weights: LOCAL torchvision-layout ResNet weights (e.g. ImageNet), ``.safetensors``
            or a torch state dict, or torchvision's weights name ("imagenet" = IMAGENET1K_V1,
            from torch.hub's cache); the file's ``fc`` is ignored. None: random init (warning).

    Raises:
        ValueError: unknown backbone.
    """
    if backbone not in RESNETS:
        raise ValueError(f"unknown cnnspot backbone {backbone!r}; known: {', '.join(RESNETS)}")
    network = ResNetClassifier(backbone, 1 if num_classes == 2 else num_classes)
    trunk = {k: v for k, v in network.resnet.named_children() if k != "fc"}
    if not weights_follow_active():
        encoder_weights = resolve_torchvision_weights(backbone, encoder_weights)
    load_encoder_weights(nn.ModuleDict(trunk), encoder_weights, detector="cnnspot")
    return CNNSpotDetector(network, num_classes, input_divisor=1)
