"""DeepLabv3+ (Chen et al., 2018) via segmentation_models_pytorch: DiffSeg30k's strongest baseline,
with a ResNet-50 encoder at output stride 16 in the seed paper.

Note: smp's DeepLabV3+ cannot run a training step on a batch of ONE image: the ASPP pooling
branch reduces each image to 1x1 and its BatchNorm then sees a single value per channel and
raises. ``training.train_detector`` therefore never forms a batch of 1; evaluation (``eval()``
mode) is unaffected.
"""

from __future__ import annotations

import segmentation_models_pytorch as smp

from .base import DETECTORS, SegmentationDetector, load_encoder_weights


@DETECTORS.register("deeplabv3plus", description="DeepLabv3+ (smp), ResNet encoder, ASPP + low-level decoder")
def build_deeplabv3plus(
    num_classes: int,
    encoder_name: str = "resnet50",
    encoder_output_stride: int = 16,
    encoder_weights: str | None = None,
    decoder_channels: int = 256,
    single_logit: bool = False,
) -> SegmentationDetector:
    """DeepLabv3+ with ``num_classes`` outputs.

    Args:
        encoder_name: any smp encoder name (seed: "resnet50").
        encoder_output_stride: 8 or 16 (seed: 16); input sides are padded to a multiple of it.
        encoder_weights: LOCAL path of encoder weights (``.safetensors`` or a torch state dict),
            or smp's weight name for ``encoder_name`` (e.g. "imagenet", read from the Hugging Face
            cache, see ``pretrained.py``), or None for random initialisation (a warning is logged).
        decoder_channels: width of the ASPP/decoder convolutions (smp default 256).
        single_logit: binary task only: one output channel trained with BCE (see
            ``SegmentationDetector``) instead of two classes with softmax cross-entropy.
    """
    network = smp.DeepLabV3Plus(
        encoder_name=encoder_name,
        encoder_weights=None,
        encoder_output_stride=encoder_output_stride,
        decoder_channels=decoder_channels,
        classes=1 if single_logit else num_classes,
    )
    load_encoder_weights(network.encoder, encoder_weights, detector="deeplabv3plus", smp_encoder=encoder_name)
    divisor = network.encoder.output_stride if network.requires_divisible_input_shape else 1
    return SegmentationDetector(network, num_classes, input_divisor=divisor, single_logit=single_logit)
