"""The noise-residual front ends of the CPU default detector (models/detectors/residual.py)."""

from __future__ import annotations

import pytest
import torch

from models.detectors import create_detector
from models.detectors.residual import BayarConv2d, SRMFilter


def test_srm_residuals_vanish_on_smooth_content_and_are_truncated():
    srm = SRMFilter(truncation=3.0)
    ramp = torch.linspace(0, 1, 32).view(1, 1, 1, 32).expand(2, 3, 32, 32)  # linear: 2nd/3rd-order residual 0
    residual = srm(ramp)
    assert residual.shape == (2, 9, 32, 32)
    assert residual[..., 4:-4, 4:-4].abs().max() < 1e-4
    noisy = ramp + torch.randn_like(ramp) * 0.05
    out = srm(noisy)
    assert out[..., 4:-4, 4:-4].abs().mean() > 0.1
    assert out.abs().max() <= 1.0 + 1e-6
    with pytest.raises(ValueError, match="truncation"):
        SRMFilter(truncation=0)


def test_bayar_kernel_keeps_its_constraint_through_training():
    conv = BayarConv2d(3, 4, kernel_size=5)
    optimiser = torch.optim.SGD(conv.parameters(), lr=0.5)
    for _ in range(3):
        conv(torch.rand(2, 3, 16, 16)).pow(2).mean().backward()
        optimiser.step()
        optimiser.zero_grad()
    kernel = conv.kernel()
    assert kernel.shape == (4, 3, 5, 5)
    assert torch.allclose(kernel[..., 2, 2], torch.full((4, 3), -1.0))
    assert torch.allclose(kernel.sum(dim=(-1, -2)), torch.zeros(4, 3), atol=1e-5)  # a prediction error
    with pytest.raises(ValueError, match="odd"):
        BayarConv2d(kernel_size=4)


@pytest.mark.parametrize("name", ["srm_unet", "bayar_unet", "rgb_unet"])
def test_residual_unets_take_any_size_and_reject_bad_fronts(name):
    model = create_detector(name, num_classes=4, widths=[8, 16, 16]).eval()
    with torch.no_grad():
        assert model(torch.rand(1, 3, 37, 50)).shape == (1, 4, 37, 50)
    assert model.input_divisor == 8


def test_an_unknown_front_end_is_refused():
    from models.detectors.residual import ResidualUNet

    with pytest.raises(ValueError, match="front"):
        ResidualUNet(2, ("rgb", "dct"), (8, 16))
