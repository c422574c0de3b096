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
    torch.manual_seed(0)
    conv = BayarConv2d(3, 4, kernel_size=5)
    # AdamW as in training (SGD at lr 0.5 on x255 residuals sent the free weights to 1e38 and
    # made this test fail for some random draws)
    optimiser = torch.optim.AdamW(conv.parameters(), lr=0.01)
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


def test_generator_balance_weights_the_rarer_generator_up_and_leaves_binary_alone():
    from models.detectors.base import IGNORE_INDEX
    from models.detectors.residual import generator_balanced_weights

    target = torch.zeros(1, 10, 10, dtype=torch.long)
    target[0, :2] = 1            # 20 pixels of generator 1
    target[0, 2, :5] = 2         # 5 pixels of generator 2 (rarer)
    target[0, 9] = IGNORE_INDEX  # ignored pixels are not counted
    weights = generator_balanced_weights(target, 4, balance=1.0)
    assert weights[0] == 1.0 and weights[3] == 1.0            # background and an absent class untouched
    assert torch.allclose(weights[1:3], torch.tensor([12.5 / 20, 12.5 / 5]))
    assert torch.allclose(generator_balanced_weights(target, 4, balance=0.0), torch.ones(4))
    binary = (target > 0).long().masked_fill(target == IGNORE_INDEX, IGNORE_INDEX)
    assert torch.allclose(generator_balanced_weights(binary, 2, balance=1.0), torch.ones(2))


def test_generator_balanced_loss_is_cross_entropy_at_zero_and_shifts_towards_the_rare_class():
    torch.manual_seed(0)
    target = torch.zeros(2, 16, 16, dtype=torch.long)
    target[:, :6] = 1
    target[:, 6, :4] = 2
    plain = create_detector("srm_unet", num_classes=3, widths=[8, 16])
    balanced = create_detector("srm_unet", num_classes=3, widths=[8, 16], generator_balance=1.0)
    balanced.load_state_dict(plain.state_dict())
    x = torch.rand(2, 3, 16, 16)
    out = plain.forward_outputs(x)
    expected = torch.nn.functional.cross_entropy(out.pixel_logits, target)
    assert torch.allclose(plain.loss(out, target, torch.ones(2, dtype=torch.long))[0], expected, atol=1e-6)
    loss_b = balanced.loss(balanced.forward_outputs(x), target, torch.ones(2, dtype=torch.long))[0]
    assert not torch.allclose(loss_b, expected)
    assert balanced.config["generator_balance"] == 1.0   # rebuilt from a checkpoint with the same loss
    binary = create_detector("srm_unet", num_classes=2, widths=[8, 16], generator_balance=1.0)
    out_bin, target_bin = binary.forward_outputs(x), (target > 0).long()
    assert torch.allclose(binary.loss(out_bin, target_bin, torch.ones(2, dtype=torch.long))[0],
                          torch.nn.functional.cross_entropy(out_bin.pixel_logits, target_bin), atol=1e-6)  # plain CE
    with pytest.raises(ValueError, match="generator_balance"):
        create_detector("srm_unet", num_classes=3, widths=[8, 16], generator_balance=2.0)


def test_dice_term_scores_the_overlap_and_leaves_ignored_pixels_and_authentic_batches_alone():
    from models.detectors.base import IGNORE_INDEX, DetectorOutputs
    from models.detectors.residual import soft_dice_loss

    target = torch.zeros(1, 8, 8, dtype=torch.long)
    target[0, :4] = 1
    perfect = torch.where(target == 1, 20.0, -20.0).float().unsqueeze(1)
    perfect = torch.cat([torch.zeros_like(perfect), perfect], dim=1)  # (1, 2, 8, 8)
    assert soft_dice_loss(perfect, target) < 1e-3
    assert soft_dice_loss(-perfect, target) > 0.9                    # edited and untouched swapped
    ignored = target.clone()
    ignored[0, 4:] = IGNORE_INDEX                                     # false alarms only on ignored pixels
    everywhere = torch.cat([torch.zeros(1, 1, 8, 8), torch.full((1, 1, 8, 8), 20.0)], dim=1)
    assert soft_dice_loss(everywhere, ignored) < 1e-3 < soft_dice_loss(everywhere, target) - 0.3
    authentic = torch.zeros(1, 8, 8, dtype=torch.long)
    assert float(soft_dice_loss(everywhere, authentic)) == 0.0      # no edited pixel: no Dice term
    model = create_detector("srm_unet", num_classes=2, widths=[8, 16], dice_weight=0.5)
    total, parts = model.loss(DetectorOutputs(everywhere, None), target, torch.ones(1, dtype=torch.long))
    assert torch.isclose(total, parts["pixel"] + 0.5 * parts["dice"])
    with pytest.raises(ValueError, match="dice_weight"):
        create_detector("srm_unet", num_classes=2, dice_weight=-1.0)


@pytest.mark.parametrize("global_context", [False, True])
def test_global_context_lets_a_far_corner_change_a_pixels_logits(global_context):
    torch.manual_seed(0)
    model = create_detector("srm_unet", num_classes=2, widths=[8, 16], global_context=global_context).eval()
    x = torch.rand(1, 3, 96, 96)
    far = x.clone()
    far[..., -16:, -16:] = 0.5  # change only the bottom-right corner, well outside the top-left's receptive field
    with torch.no_grad():
        moved = (model(x) - model(far))[..., :16, :16].abs().max()
    assert bool(moved > 1e-6) is global_context
