import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from inpaint.networks.epn import (
    EdgeGenerator,
    InstanceNorm,
    PatchDiscriminator,
    ResidualBlock,
    RowSumConv2d,
)

CONVS = (nn.Conv2d, nn.ConvTranspose2d)


def convs(net: nn.Module) -> list[nn.Module]:
    """Every convolution of `net`, in construction order."""
    return [m for m in net.modules() if isinstance(m, CONVS)]


def has_spectral_norm(conv: nn.Module) -> bool:
    """Either flavour of PyTorch's spectral norm (hook or parametrization)."""
    return hasattr(conv, "weight_orig") or parametrize.is_parametrized(conv, "weight")


def n_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def small(**kwargs) -> EdgeGenerator:
    return EdgeGenerator(base=8, residual_blocks=2, **kwargs)


@pytest.mark.parametrize("conv", ["plain", "gated"])
@pytest.mark.parametrize("size", [(32, 32), (32, 48), (48, 16)])
def test_generator_output_shape_and_range(conv, size):
    torch.manual_seed(0)
    net = small(conv=conv)
    for mode in (True, False):
        net.train(mode)
        out = net(torch.rand(2, 3, *size))
        assert out.shape == (2, 1, *size)
        assert out.dtype == torch.float32
        assert out.min() >= 0 and out.max() <= 1
        assert out.std() > 0  # not a constant map


def test_generator_sigmoid_is_float32_under_autocast():
    net = small(use_spectral_norm=False)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = net(torch.rand(1, 3, 16, 16))
    assert out.dtype == torch.float32


@pytest.mark.parametrize("size", [(30, 32), (32, 18)])
def test_generator_size_not_divisible_by_4_is_a_clear_error(size):
    expected = f"EdgeGenerator needs height and width divisible by 4, got {size[0]}x{size[1]}"
    with pytest.raises(ValueError, match=expected):
        small()(torch.rand(1, 3, *size))


def test_generator_too_small_is_a_clear_error():
    with pytest.raises(ValueError, match="at least 12, got 8x16"):
        small()(torch.rand(1, 3, 8, 16))


def test_generator_bad_conv_type_names_the_allowed_values():
    with pytest.raises(ValueError, match="plain.*gated.*'dense'"):
        EdgeGenerator(conv="dense")


@pytest.mark.parametrize("conv", ["plain", "gated"])
def test_gradients_reach_every_generator_parameter(conv):
    torch.manual_seed(0)
    net = small(conv=conv)
    out = net(torch.rand(2, 3, 16, 16))
    (out * torch.randn_like(out)).sum().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("conv", ["plain", "gated"])
def test_spectral_norm_on_every_conv_but_the_last(conv):
    layers = convs(small(conv=conv))
    # plain: stem, 2 down, 2 x 2 residual, 2 transposed, output; gated: same count.
    assert len(layers) == 10
    assert all(has_spectral_norm(c) for c in layers[:-1])
    assert not has_spectral_norm(layers[-1])
    assert layers[-1].out_channels == 1 and layers[-1].kernel_size == (7, 7)


@pytest.mark.parametrize("conv", ["plain", "gated"])
def test_no_spectral_norm_when_disabled(conv):
    assert not any(has_spectral_norm(c) for c in convs(small(conv=conv, use_spectral_norm=False)))


def test_generator_layout_follows_edgeconnect():
    net = EdgeGenerator(base=8, residual_blocks=3, use_spectral_norm=False)
    plain = [c for c in convs(net) if type(c) is nn.Conv2d]
    transposed = [c for c in convs(net) if isinstance(c, nn.ConvTranspose2d)]
    assert [c.kernel_size[0] for c in plain[:3]] == [7, 4, 4]
    assert [c.stride[0] for c in plain[:3]] == [1, 2, 2]
    assert [c.out_channels for c in plain[:3]] == [8, 16, 32]
    blocks = [m for m in net.modules() if isinstance(m, ResidualBlock)]
    assert len(blocks) == 3
    for block in blocks:
        inner = convs(block)
        assert [c.dilation[0] for c in inner] == [2, 1]
        assert all(c.in_channels == c.out_channels == 32 for c in inner)
    assert [(t.in_channels, t.out_channels) for t in transposed] == [(32, 16), (16, 8)]
    assert all(t.kernel_size == (4, 4) and t.stride == (2, 2) for t in transposed)
    norms = [m for m in net.modules() if isinstance(m, nn.InstanceNorm2d)]
    assert norms and all(not n.track_running_stats for n in norms)


def test_gated_variant_uses_no_transposed_convs():
    net = small(conv="gated", use_spectral_norm=False)
    assert not any(isinstance(m, nn.ConvTranspose2d) for m in net.modules())
    assert sum(isinstance(m, nn.Upsample) for m in net.modules()) == 2


def test_residual_block_has_no_relu_after_the_sum():
    torch.manual_seed(0)
    block = small(use_spectral_norm=False).middle[0]
    assert isinstance(block, ResidualBlock)
    x = torch.randn(1, 32, 8, 8)
    out = block(x)
    assert out.min() < 0
    assert not torch.allclose(out, x)


def test_paper_width_parameter_counts():
    plain = n_params(EdgeGenerator())
    gated = n_params(EdgeGenerator(conv="gated"))
    critic = n_params(PatchDiscriminator())
    print(f"\nEdgeGenerator plain {plain:,}  gated {gated:,}  PatchDiscriminator {critic:,}")
    assert abs(plain - 10.8e6) / 10.8e6 < 0.10
    assert abs(critic - 2.8e6) / 2.8e6 < 0.10
    assert gated != plain
    # Spectral norm changes no parameter count (u and v are buffers).
    assert n_params(EdgeGenerator(use_spectral_norm=False)) == plain


def test_instance_norm_matches_pytorchs_on_offset_activations():
    x = torch.randn(2, 8, 24, 40, dtype=torch.float64) * 3 + 5
    expected = nn.functional.instance_norm(x)
    torch.testing.assert_close(InstanceNorm(8)(x.float()).double(), expected, atol=1e-5, rtol=0)


def test_row_sum_conv_matches_a_plain_conv_with_the_same_weights():
    torch.manual_seed(0)
    conv = RowSumConv2d(16, 2, 7)
    x = torch.randn(2, 16, 20, 26)
    expected = nn.functional.conv2d(x, conv.weight, conv.bias)
    torch.testing.assert_close(conv(x), expected, atol=1e-5, rtol=1e-5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = conv(x)
    assert low.dtype == torch.float32  # summed in float32
    torch.testing.assert_close(low, expected, atol=0.02, rtol=0.01)  # a bf16 conv: ~6e-3


@pytest.mark.parametrize("size", [(64, 64), (64, 96)])
def test_discriminator_logits_and_features(size):
    base = 8
    h, w = size
    logits, features = PatchDiscriminator(base=base)(torch.rand(3, 2, h, w))
    expected = [(base, h // 2, w // 2), (2 * base, h // 4, w // 4), (4 * base, h // 8, w // 8)]
    expected += [(8 * base, h // 8 - 1, w // 8 - 1), (1, h // 8 - 2, w // 8 - 2)]
    assert [tuple(f.shape) for f in features] == [(3, *e) for e in expected]
    assert features[-1] is logits  # feature matching includes the output map (EdgeConnect)
    assert logits.min() < 0 < logits.max()  # raw logits, not probabilities


def test_discriminator_takes_24_pixels_and_refuses_fewer():
    net = PatchDiscriminator(base=4)
    assert net(torch.rand(1, 2, 24, 31))[0].shape == (1, 1, 1, 1)
    with pytest.raises(ValueError, match="at least 24, got 23x64: train on data.image_size >= 24"):
        net(torch.rand(1, 2, 23, 64))


def test_discriminator_patch_is_70_pixels():
    torch.manual_seed(0)
    net = PatchDiscriminator(base=4, norm="none", use_spectral_norm=False)
    x = torch.rand(1, 2, 128, 128, requires_grad=True)
    logits, _ = net(x)
    logits[0, 0, 7, 7].backward()
    rows, cols = torch.nonzero(x.grad.abs().sum(dim=(0, 1)), as_tuple=True)
    assert rows.max() - rows.min() + 1 == 70
    assert cols.max() - cols.min() + 1 == 70


@pytest.mark.parametrize("sn", [True, False])
@pytest.mark.parametrize("norm", ["instance", "none"])
def test_discriminator_norms(norm, sn):
    net = PatchDiscriminator(base=8, norm=norm, use_spectral_norm=sn)
    layers = convs(net)
    assert len(layers) == 5
    assert [c.stride[0] for c in layers] == [2, 2, 2, 1, 1]
    assert all(c.kernel_size == (4, 4) and c.padding == (1, 1) for c in layers)
    assert all(has_spectral_norm(c) == sn for c in layers)
    instance = [isinstance(layer[1], nn.InstanceNorm2d) for layer in net.layers]
    assert instance == ([False, True, True, True] if norm == "instance" else [False] * 4)
    assert sum(isinstance(m, nn.LeakyReLU) for m in net.modules()) == 4


def test_discriminator_bad_norm_is_a_clear_error():
    with pytest.raises(ValueError, match="instance.*none.*'batch'"):
        PatchDiscriminator(norm="batch")


def test_generator_overfits_one_batch():
    torch.manual_seed(0)
    net = small()
    x = torch.rand(8, 3, 32, 32)
    target = (torch.rand(8, 1, 32, 32) > 0.5).float()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    losses = []
    for _ in range(60):
        optimizer.zero_grad()
        loss = nn.functional.binary_cross_entropy(net(x), target)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses[::10]
