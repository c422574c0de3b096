"""The U-Net of milesial's Pytorch-UNet (github.com/milesial/Pytorch-UNet, ``unet/unet_model.py``,
``unet/unet_parts.py``; Ronneberger et al., MICCAI 2015) in its ``unet_carvana`` configuration,
written here so that IMDL-BenCo's ``*_unet`` models build without ``torch.hub`` fetching and
executing that repository's code.

The module tree, parameter names and shapes are the repository's (``inc.double_conv.0.weight``,
``down1.maxpool_conv.1.double_conv.0.weight``, ``up1.up.weight``, ``outc.conv.bias``...), so its
published Carvana checkpoint (``unet_carvana_scale1.0_epoch2.pth``, release v3.0) loads with
``strict=True``. Only the ``bilinear=False`` variant exists here: it is the one ``unet_carvana``
builds (transposed-convolution upsampling, 1024 channels at the bottom).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

# The widths of ``unet_carvana`` (encoder 64 .. 1024, decoder back to 64).
CARVANA_WIDTHS = (64, 128, 256, 512, 1024)
# The file name of the Carvana release trained at full scale, what IMDL-BenCo's ``scale=1`` selects.
CARVANA_SCALE1_FILE = "unet_carvana_scale1.0_epoch2.pth"


class DoubleConv(nn.Module):
    """Two (3x3 conv without bias, BatchNorm, ReLU) layers; ``double_conv`` is the Sequential
    (indices 0 and 3 are the convolutions, 1 and 4 the norms)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        layers: list[nn.Module] = []
        for width_in in (in_channels, out_channels):
            layers += [nn.Conv2d(width_in, out_channels, 3, padding=1, bias=False), nn.BatchNorm2d(out_channels),
                       nn.ReLU(inplace=True)]
        self.double_conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.double_conv(x)


class Down(nn.Module):
    """2x2 max pooling, then a ``DoubleConv`` (``maxpool_conv.1``)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.maxpool_conv = nn.Sequential(nn.MaxPool2d(2), DoubleConv(in_channels, out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.maxpool_conv(x)


class Up(nn.Module):
    """2x2 transposed convolution halving the channels, zero-padding to the skip tensor's size
    (odd sizes), concatenation [skip, upsampled], then a ``DoubleConv``."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, in_channels // 2, kernel_size=2, stride=2)
        self.conv = DoubleConv(in_channels, out_channels)

    def forward(self, deep: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        deep = self.up(deep)
        dy, dx = skip.shape[-2] - deep.shape[-2], skip.shape[-1] - deep.shape[-1]
        deep = F.pad(deep, [dx // 2, dx - dx // 2, dy // 2, dy - dy // 2])
        return self.conv(torch.cat([skip, deep], dim=1))


class OutConv(nn.Module):
    """1x1 convolution to the class logits (``conv``)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class PytorchUNet(nn.Module):
    """Pytorch-UNet's ``UNet(n_channels, n_classes, bilinear=False)``.

    ``forward(x)``: float (B, n_channels, H, W) -> logits (B, n_classes, H, W); any H, W >= 16
    (four 2x poolings; odd intermediate sizes are padded back in ``Up``).
    """

    def __init__(self, n_channels: int = 3, n_classes: int = 2):
        super().__init__()
        self.n_channels, self.n_classes, self.bilinear = n_channels, n_classes, False
        w = CARVANA_WIDTHS
        self.inc = DoubleConv(n_channels, w[0])
        self.down1, self.down2, self.down3, self.down4 = (Down(w[i], w[i + 1]) for i in range(4))
        self.up1, self.up2, self.up3, self.up4 = (Up(w[i], w[i - 1]) for i in range(4, 0, -1))
        self.outc = OutConv(w[0], n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = [self.inc(x)]
        for down in (self.down1, self.down2, self.down3, self.down4):
            skips.append(down(skips[-1]))
        x = skips.pop()
        for up in (self.up1, self.up2, self.up3, self.up4):
            x = up(x, skips.pop())
        return self.outc(x)


def read_carvana_checkpoint(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The state dict in one of Pytorch-UNet's checkpoint files (its ``train.py`` format: the
    model's state dict plus a ``mask_values`` list, which is dropped), read with
    ``torch.load(weights_only=True)``.

    Raises:
        FileNotFoundError: ``path`` is not a file.
        ValueError: the file holds something else than that mapping.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Pytorch-UNet checkpoint not found: {path} (e.g. its release file {CARVANA_SCALE1_FILE})")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise ValueError(f"{path}: not a Pytorch-UNet checkpoint (a state dict), got {type(state).__name__}")
    state = {k: v for k, v in state.items() if k != "mask_values"}
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise ValueError(f"{path}: not a Pytorch-UNet checkpoint, entries {bad[:3]} are not tensors")
    return state


def unet_carvana(weights: str | os.PathLike | None) -> PytorchUNet:
    """Pytorch-UNet's ``hubconf.unet_carvana`` (3 input channels, 2 classes) with its weights read
    from the LOCAL file ``weights`` (``strict=True``); None = randomly initialised (the caller
    decides whether that is meant).

    Raises:
        FileNotFoundError / ValueError: see ``read_carvana_checkpoint``; RuntimeError: the file's
        keys or shapes are not this architecture's (``load_state_dict``'s message).
    """
    network = PytorchUNet(n_channels=3, n_classes=2)
    if weights is not None:
        network.load_state_dict(read_carvana_checkpoint(weights))
    return network
