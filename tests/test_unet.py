import pytest
import torch
from torch import nn

from inpaint.networks.unet import UNet


def test_paper_unet_has_19_convolutions_and_the_paper_widths():
    net = UNet()
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 19
    assert [c.out_channels for c in convs[:10:2]] == [32, 64, 128, 256, 512]
    transposed = [m for m in net.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert [t.out_channels for t in transposed] == [256, 128, 64, 32]
    assert all(t.kernel_size == (2, 2) and t.stride == (2, 2) for t in transposed)


@pytest.mark.parametrize("size", [(32, 32), (16, 48)])
def test_output_shape_and_range(size):
    net = UNet(widths=(8, 16, 32, 64), bottleneck=64)
    out = net(torch.rand(2, 3, *size))
    assert out.shape == (2, 3, *size)
    assert out.min() >= 0 and out.max() <= 1


def test_size_not_divisible_is_a_clear_error():
    with pytest.raises(ValueError, match="divisible by 16, got 30x32"):
        UNet(widths=(8, 16, 32, 64), bottleneck=64)(torch.rand(1, 3, 30, 32))


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    net = UNet(widths=(8, 16), bottleneck=32)
    net(torch.rand(2, 3, 16, 16)).mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


def test_overfits_one_batch():
    torch.manual_seed(0)
    net = UNet(widths=(8, 16), bottleneck=32)
    y = nn.functional.interpolate(torch.rand(4, 3, 4, 4), size=16, mode="bilinear")
    x = y.clone()
    x[..., 4:12, 4:12] = 1.0  # a white square hole
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    losses = []
    for _ in range(150):
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(net(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.25 * losses[0], losses[::10]
