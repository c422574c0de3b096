"""FCN-8s (Long, Shelhamer & Darrell, 2015): DiffSeg30k's weakest baseline (binary mIoU 0.366).

Structure as in the paper and in pytorch-fcn (the code behind DiffSeg30k's numbers):
a classification backbone, ``fc6`` (7x7 conv) and ``fc7`` (1x1 conv) on the 1/32 feature map,
then class scores from fc7, pool4 (1/16) and pool3 (1/8) fused coarse-to-fine:

    score_fr (1/32) --x2--> + score_pool4 (1/16) --x2--> + score_pool3 (1/8) --x8--> logits

with learned ``ConvTranspose2d`` upsampling initialised to bilinear interpolation and the score
layers initialised to zero (pytorch-fcn's choice), so a fresh model predicts uniform logits.

Differences from the Caffe original, stated so nobody hunts for them: no ``pad=100`` + crop
offsets (the convolutions are padded instead and the input is padded to a multiple of 32 by
``SegmentationDetector``), and no "at-once" skip scaling (x0.01 / x0.0001), which compensates the
feature magnitudes of Caffe's pre-trained VGG and would freeze the skips of a randomly
initialised one.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
import torchvision
from torch import nn

from .base import DETECTORS, SegmentationDetector, load_encoder_weights, read_weights_file, weights_follow_active
from .pretrained import resolve_torchvision_weights


class VGG16Encoder(nn.Module):
    """torchvision VGG16 ``features``; returns (pool3, pool4, pool5) at strides 8, 16, 32.

    Its state-dict keys (``features.N.*``) are those of torchvision's ``vgg16`` state dict."""

    channels = (256, 512, 512)
    _pool_ends = (17, 24, 31)  # slice ends: features[:17] ends with pool3, [:24] pool4, [:31] pool5

    def __init__(self) -> None:
        super().__init__()
        # torchvision's own builder for vgg16's ``features`` (config "D"); building the whole
        # vgg16 would also initialise its 120M-parameter classifier only to throw it away.
        self.features = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["D"], batch_norm=False)
        for module in self.features.modules():
            if isinstance(module, nn.Conv2d):  # torchvision VGG's initialisation
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outputs = []
        start = 0
        for end in self._pool_ends:
            x = self.features[start:end](x)
            outputs.append(x)
            start = end
        return tuple(outputs)


class ResNetEncoder(nn.Module):
    """torchvision ResNet trunk; returns (layer2, layer3, layer4) at strides 8, 16, 32, playing
    the roles of VGG's pool3, pool4 and pool5. Keys match torchvision's ``resnet*`` state dicts."""

    def __init__(self, name: str) -> None:
        super().__init__()
        resnet = getattr(torchvision.models, name)(weights=None)
        self.conv1, self.bn1, self.relu, self.maxpool = resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = resnet.layer1, resnet.layer2, resnet.layer3, resnet.layer4
        width = resnet.fc.in_features  # 512 (resnet18/34) or 2048 (resnet50+)
        self.channels = (width // 4, width // 2, width)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        c2 = self.layer2(self.layer1(x))
        c3 = self.layer3(c2)
        c4 = self.layer4(c3)
        return c2, c3, c4


BACKBONES = {
    "vgg16": VGG16Encoder,
    "resnet18": lambda: ResNetEncoder("resnet18"),
    "resnet34": lambda: ResNetEncoder("resnet34"),
    "resnet50": lambda: ResNetEncoder("resnet50"),
    "resnet101": lambda: ResNetEncoder("resnet101"),
}


def bilinear_upsampling_weight(channels: int, kernel_size: int) -> torch.Tensor:
    """(channels, channels, k, k) ConvTranspose2d weight that performs bilinear upsampling per channel."""
    factor = (kernel_size + 1) // 2
    center = factor - 1 if kernel_size % 2 == 1 else factor - 0.5
    rows, cols = np.ogrid[:kernel_size, :kernel_size]
    kernel = (1 - abs(rows - center) / factor) * (1 - abs(cols - center) / factor)
    weight = torch.zeros(channels, channels, kernel_size, kernel_size)
    weight[range(channels), range(channels)] = torch.from_numpy(kernel).float()
    return weight


class FCN8s(nn.Module):
    """FCN-8s head over ``encoder``: normalised (B, 3, H, W), H and W multiples of 32 ->
    logits (B, num_classes, H, W)."""

    def __init__(self, encoder: nn.Module, num_classes: int, fc_channels: int = 4096, dropout: float = 0.5):
        super().__init__()
        self.encoder = encoder
        c3, c4, c5 = encoder.channels
        self.fc6 = nn.Sequential(nn.Conv2d(c5, fc_channels, 7, padding=3), nn.ReLU(inplace=True), nn.Dropout2d(dropout))
        self.fc7 = nn.Sequential(nn.Conv2d(fc_channels, fc_channels, 1), nn.ReLU(inplace=True), nn.Dropout2d(dropout))
        self.score_fr = nn.Conv2d(fc_channels, num_classes, 1)
        self.score_pool4 = nn.Conv2d(c4, num_classes, 1)
        self.score_pool3 = nn.Conv2d(c3, num_classes, 1)
        self.upscore2 = nn.ConvTranspose2d(num_classes, num_classes, 4, stride=2, padding=1, bias=False)
        self.upscore_pool4 = nn.ConvTranspose2d(num_classes, num_classes, 4, stride=2, padding=1, bias=False)
        self.upscore8 = nn.ConvTranspose2d(num_classes, num_classes, 16, stride=8, padding=4, bias=False)
        for score in (self.score_fr, self.score_pool4, self.score_pool3):
            nn.init.zeros_(score.weight)
            nn.init.zeros_(score.bias)
        with torch.no_grad():
            for up in (self.upscore2, self.upscore_pool4, self.upscore8):
                up.weight.copy_(bilinear_upsampling_weight(num_classes, up.kernel_size[0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pool3, pool4, pool5 = self.encoder(x)
        score = self.score_fr(self.fc7(self.fc6(pool5)))
        score = self.upscore2(score) + self.score_pool4(pool4)
        score = self.upscore_pool4(score) + self.score_pool3(pool3)
        return self.upscore8(score)


def _fc_from_vgg_classifier(model: FCN8s, state: Mapping[str, torch.Tensor]) -> bool:
    """Convert torchvision VGG16's fully connected fc6/fc7 into FCN's convolutions (the paper's
    "convolutionalisation"), when the file has them and the widths match."""
    w6, w7 = state.get("classifier.0.weight"), state.get("classifier.3.weight")
    conv6, conv7 = model.fc6[0], model.fc7[0]
    if w6 is None or w7 is None or w6.numel() != conv6.weight.numel() or w7.numel() != conv7.weight.numel():
        return False
    with torch.no_grad():
        conv6.weight.copy_(w6.reshape(conv6.weight.shape))
        conv6.bias.copy_(state["classifier.0.bias"])
        conv7.weight.copy_(w7.reshape(conv7.weight.shape))
        conv7.bias.copy_(state["classifier.3.bias"])
    return True


@DETECTORS.register("fcn8s", description="FCN-8s: VGG16 (or ResNet) backbone, pool3/pool4 skip fusion, learned upsampling")
def build_fcn8s(
    num_classes: int,
    backbone: str = "vgg16",
    fc_channels: int | None = None,
    dropout: float = 0.5,
    encoder_weights: str | None = None,
    single_logit: bool = False,
) -> SegmentationDetector:
    """FCN-8s with ``num_classes`` outputs.

    Args:
        backbone: "vgg16" (the paper's) or "resnet18" / "resnet34" / "resnet50" / "resnet101"
            (torchvision architectures, always built with ``weights=None``).
        fc_channels: width of fc6/fc7; None means 4096 for vgg16 (the paper's) and 1024 for
            ResNets (a 7x7 conv from 2048 to 4096 channels would hold 411M parameters).
        dropout: Dropout2d after fc6 and fc7 (paper: 0.5).
        encoder_weights: LOCAL path of a torchvision-layout state dict for the backbone
            (``.safetensors`` or torch file), or torchvision's weights name ("imagenet" =
            IMAGENET1K_V1) read from torch.hub's cache, or None for random initialisation (warning).
            For vgg16, a file that also holds torchvision's ``classifier.0/3`` weights
            initialises fc6/fc7 from them when ``fc_channels`` is 4096.
        single_logit: binary task only: one output channel trained with BCE (see
            ``SegmentationDetector``) instead of two classes with softmax cross-entropy.

    Raises:
        ValueError: unknown backbone.
    """
    if backbone not in BACKBONES:
        raise ValueError(f"unknown fcn8s backbone {backbone!r}; known: {', '.join(BACKBONES)}")
    if fc_channels is None:
        fc_channels = 4096 if backbone == "vgg16" else 1024
    network = FCN8s(BACKBONES[backbone](), 1 if single_logit else num_classes, fc_channels=fc_channels, dropout=dropout)
    if not weights_follow_active():
        encoder_weights = resolve_torchvision_weights(backbone, encoder_weights)
    state = read_weights_file(Path(encoder_weights)) if encoder_weights is not None else None
    load_encoder_weights(network.encoder, state, detector="fcn8s")
    if state is not None and backbone == "vgg16":
        _fc_from_vgg_classifier(network, state)
    return SegmentationDetector(network, num_classes, input_divisor=32, single_logit=single_logit)
