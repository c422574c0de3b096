"""SegFormer (Xie et al., 2021) via segmentation_models_pytorch: a Mix Transformer (MiT) encoder
with an all-MLP decoder. DiffSeg30k's later baseline; NFA-ViT (BR-Gen) builds on MiT-b2/b0."""

from __future__ import annotations

import segmentation_models_pytorch as smp

from .base import DETECTORS, SegmentationDetector, load_encoder_weights


@DETECTORS.register("segformer", description="SegFormer (smp), Mix Transformer encoder + MLP decoder")
def build_segformer(
    num_classes: int,
    encoder_name: str = "mit_b0",
    encoder_weights: str | None = None,
    decoder_segmentation_channels: int = 256,
    single_logit: bool = False,
) -> SegmentationDetector:
    """SegFormer with ``num_classes`` outputs.

    Args:
        encoder_name: an smp encoder name, normally "mit_b0" ... "mit_b5".
        encoder_weights: LOCAL path of encoder weights (``.safetensors`` or a torch state dict),
            or smp's weight name for ``encoder_name`` (e.g. "imagenet", read from the Hugging Face
            cache, see ``pretrained.py``), or None for random initialisation (a warning is logged).
        decoder_segmentation_channels: width of the MLP decoder (smp default 256).
        single_logit: binary task only: one output channel trained with BCE (see
            ``SegmentationDetector``) instead of two classes with softmax cross-entropy.
    """
    network = smp.Segformer(
        encoder_name=encoder_name,
        encoder_weights=None,
        decoder_segmentation_channels=decoder_segmentation_channels,
        classes=1 if single_logit else num_classes,
    )
    load_encoder_weights(network.encoder, encoder_weights, detector="segformer", smp_encoder=encoder_name)
    divisor = network.encoder.output_stride if network.requires_divisible_input_shape else 1
    return SegmentationDetector(network, num_classes, input_divisor=divisor, single_logit=single_logit)
