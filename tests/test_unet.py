from functools import partial

import pytest
import torch
from hydra.utils import instantiate
from torch import nn

from inpaint.config import compose_config
from inpaint.inference import Inpainter
from inpaint.models.unet_module import UNetInpainter
from inpaint.networks.unet import UNet
from tests.conftest import quiet_trainer


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


def unet_module(mask_input: bool = False, **options) -> UNetInpainter:
    net = UNet(in_channels=4 if mask_input else 3, widths=(8, 16), bottleneck=32)
    return UNetInpainter(net, partial(torch.optim.Adam, lr=1e-3), mask_input=mask_input, **options)


def test_mask_input_needs_a_four_channel_network():
    net = UNet(widths=(8, 16), bottleneck=32)
    with pytest.raises(ValueError, match="in_channels must be 4 when model.mask_input is true"):
        UNetInpainter(net, partial(torch.optim.Adam), mask_input=True)


def test_unet_given_the_mask_reads_it_and_inference_asks_for_it():
    torch.manual_seed(0)
    module = unet_module(mask_input=True).eval()
    damaged, mask = torch.rand(1, 3, 16, 16), torch.zeros(1, 1, 16, 16)
    mask[..., 4:9, 3:11] = 1
    with torch.no_grad():
        assert not torch.allclose(module(damaged, mask), module(damaged, torch.zeros_like(mask)))
    inpainter = Inpainter(module)
    assert inpainter.needs_mask
    with pytest.raises(ValueError, match="needs a mask"):
        inpainter(damaged)
    output = inpainter(damaged, mask)["output"]
    assert torch.equal(output * (1 - mask), damaged * (1 - mask))
    assert not torch.equal(output * mask, damaged * mask)


def test_paper_unet_needs_no_mask():
    assert not Inpainter(unet_module()).needs_mask


def test_configured_scheduler_decays_the_rate_each_epoch():
    module = unet_module(scheduler=partial(torch.optim.lr_scheduler.StepLR, step_size=1, gamma=0.5))
    cfg = compose_config("train", ["experiment=unet_lines", "debug=fast", "data.image_size=16"])
    datamodule = instantiate(cfg.data, mask=instantiate(cfg.mask))
    quiet_trainer(max_epochs=2, limit_val_batches=0).fit(module, datamodule)
    assert module.optimizers().param_groups[0]["lr"] == pytest.approx(0.25e-3)


def test_a_scheduler_that_watches_a_metric_is_given_the_configured_one():
    """conf/model/unet.yaml's example, watching the damaged input's PSNR: it never improves,
    so with no patience the rate halves after every epoch but the first."""
    plateau = "{_target_:torch.optim.lr_scheduler.ReduceLROnPlateau,_partial_:true,mode:max}"
    overrides = [f"model.scheduler={plateau}", "model.scheduler_monitor=val/psnr_input"]
    overrides += ["+model.scheduler.patience=0", "+model.scheduler.factor=0.5"]
    cfg = compose_config(
        "train", ["experiment=unet_lines", "debug=fast", "data.image_size=16", *overrides]
    )
    module = instantiate(cfg.model, _convert_="all")
    quiet_trainer(max_epochs=3, limit_val_batches=1).fit(
        module, instantiate(cfg.data, mask=instantiate(cfg.mask))
    )
    assert module.optimizers().param_groups[0]["lr"] == pytest.approx(cfg.model.optimizer.lr / 4)
