import pytest
import torch
from torch import nn

from inpaint.networks.mpn import MaskPredictionNetwork, ResidualBlock


def small(**kwargs) -> MaskPredictionNetwork:
    return MaskPredictionNetwork(base=8, **kwargs)


@pytest.mark.parametrize(
    ("levels", "size"), [(4, (32, 32)), (4, (32, 48)), (2, (12, 20)), (3, (16, 8))]
)
def test_output_shape_and_logits(levels, size):
    torch.manual_seed(0)
    net = small(levels=levels)
    for mode in (True, False):
        net.train(mode)
        out = net(torch.rand(2, 3, *size))
        assert out.shape == (2, 1, *size)
        assert out.dtype == torch.float32
        assert torch.isfinite(out).all() and out.std() > 0


def test_in_eval_mode_an_image_gets_the_same_logits_alone_as_in_a_batch():
    """Batch norm uses its running statistics at inference: no image affects another."""
    torch.manual_seed(0)
    net = small(levels=4)
    net(torch.rand(4, 3, 16, 16))  # one training pass moves the running statistics
    net.eval()
    images = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(net(images[:1]), net(images)[:1], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize(("levels", "size"), [(4, (24, 32)), (4, (32, 40)), (2, (30, 32))])
def test_size_not_divisible_is_a_clear_error(levels, size):
    factor = 2**levels
    expected = f"divisible by {factor}, got {size[0]}x{size[1]}"
    with pytest.raises(ValueError, match=expected):
        small(levels=levels)(torch.rand(1, 3, *size))


def test_bad_levels_is_a_clear_error():
    with pytest.raises(ValueError, match="levels must be at least 1, got 0"):
        small(levels=0)


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    net = small(levels=3, blocks_per_level=2)
    out = net(torch.rand(2, 3, 16, 16))
    (out * torch.randn_like(out)).sum().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_widths_double_and_cap_at_eight_times_base():
    net = small(levels=5)
    downs = [level[0][0] for level in net.down]
    assert [c.stride for c in downs] == [(2, 2)] * 5
    assert [c.out_channels for c in downs] == [16, 32, 64, 64, 64]
    ups = [up[1][0] for up in net.up]
    assert [c.out_channels for c in ups] == [64, 64, 32, 16, 8]
    # Each decoder stage sees its upsampled features and the encoder skip side by side.
    merges = [merge[0][0] for merge in net.merge]
    assert [c.in_channels for c in merges] == [128, 128, 64, 32, 16]
    assert net.head.out_channels == 1


@pytest.mark.parametrize("blocks", [1, 2])
def test_residual_blocks_per_level(blocks):
    levels = 3
    net = small(levels=levels, blocks_per_level=blocks)
    count = sum(isinstance(m, ResidualBlock) for m in net.modules())
    assert count == (1 + 2 * levels) * blocks


def test_decoder_concatenates_the_encoder_features_of_the_same_size():
    torch.manual_seed(0)
    net = small(levels=2).eval()
    seen = {}
    net.stem.register_forward_hook(lambda m, args, out: seen.update(stem=out.clone()))
    net.down[0].register_forward_hook(lambda m, args, out: seen.update(down0=out.clone()))
    for i, merge in enumerate(net.merge):
        merge.register_forward_pre_hook(lambda m, args, i=i: seen.update({f"merge{i}": args[0]}))
    net(torch.rand(2, 3, 16, 16))
    # Deepest decoder stage first: its skip is the first downsampled level, then the stem.
    assert torch.equal(seen["merge0"][:, 16:], seen["down0"])
    assert torch.equal(seen["merge1"][:, 8:], seen["stem"])


def test_default_parameter_count():
    count = sum(p.numel() for p in MaskPredictionNetwork().parameters())
    print(f"\nMaskPredictionNetwork (base 32, 4 levels) {count:,} parameters")
    assert 1e6 < count < 20e6


def test_overfits_one_batch():
    torch.manual_seed(0)
    net = small(levels=2)
    x = torch.rand(8, 3, 32, 32)
    target = (torch.rand(8, 1, 32, 32) > 0.5).float()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    losses = []
    for _ in range(60):
        optimizer.zero_grad()
        logits = net(x)
        loss = nn.functional.binary_cross_entropy_with_logits(logits, target)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses[::10]
    # The network speaks in logits: trained on hard targets they leave [0, 1].
    assert logits.min() < 0 and logits.max() > 1
