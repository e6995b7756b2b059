import pytest
import torch
import torch.nn.functional as F
from torch import nn

from inpaint.networks.contextual_attention import ContextualAttention, co_shifted_sum
from inpaint.networks.ipn import InpaintGenerator, SNPatchGANDiscriminator


def inputs(batch: int, height: int, width: int, seed: int = 0):
    """Damaged image, continuous hole mask and edge map."""
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(batch, 3, height, width, generator=g)
    mask = torch.rand(batch, 1, height, width, generator=g)
    edge = (torch.rand(batch, 1, height, width, generator=g) > 0.9).float()
    return (1 - mask) * image, mask, edge


def smooth_images(batch: int, size: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return F.interpolate(torch.rand(batch, 3, 4, 4, generator=g), size=size, mode="bilinear")


@pytest.mark.parametrize("size", [(32, 32), (32, 48), (64, 40)])
def test_generator_output_shapes_and_range(size):
    torch.manual_seed(0)
    net = InpaintGenerator(cnum=8)
    coarse, refined = net(*inputs(2, *size))
    for out in (coarse, refined):
        assert out.shape == (2, 3, *size)
        assert torch.isfinite(out).all()
        assert out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize("size", [(36, 32), (32, 44)])
def test_generator_size_not_divisible_by_8_is_a_clear_error(size):
    with pytest.raises(ValueError, match=f"divisible by 8, got {size[0]}x{size[1]}"):
        InpaintGenerator(cnum=8)(*inputs(1, *size))


def test_gradients_reach_every_generator_parameter():
    torch.manual_seed(0)
    net = InpaintGenerator(cnum=8)
    image = smooth_images(2, 32)
    mask = torch.zeros(2, 1, 32, 32)
    mask[..., 8:20, 10:24] = 1
    coarse, refined = net(image * (1 - mask), mask, torch.zeros_like(mask))
    ((coarse - image).abs().mean() + (refined - image).abs().mean()).backward()
    missing = [
        name for name, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0
    ]
    assert not missing


def test_refinement_attends_at_quarter_resolution_with_the_mask():
    torch.manual_seed(0)
    net = InpaintGenerator(cnum=8)
    damaged, mask, edge = inputs(2, 32, 48)
    seen = []
    net.attention.register_forward_hook(lambda module, args, out: seen.append((args, out)))
    net(damaged, mask, edge)
    (foreground, background, attention_mask), out = seen[0]
    assert foreground is background and foreground.shape == (2, 16, 8, 12)
    assert attention_mask is mask and out.shape == foreground.shape
    assert (foreground >= 0).all()  # ReLU before attention, as in DeepFill


def test_refinement_starts_from_the_coarse_output_in_the_hole_and_the_input_elsewhere():
    """Both refinement branches take the composite (scaled to [-1, 1]), mask and edges."""
    torch.manual_seed(0)
    net = InpaintGenerator(cnum=8)
    damaged, mask, edge = inputs(1, 32, 32)
    seen = []
    for branch in (net.refine_conv, net.refine_attention_encoder):
        branch.register_forward_hook(lambda module, args, out: seen.append(args[0]))
    with torch.no_grad():
        coarse, _ = net(damaged, mask, edge)
    composite = coarse * mask + damaged * (1 - mask)
    for refine_input in seen:
        assert torch.allclose(refine_input[:, :3], composite * 2 - 1, atol=1e-6)
        assert torch.equal(refine_input[:, 3:4], mask) and torch.equal(refine_input[:, 4:], edge)
    assert len(seen) == 2


@pytest.mark.parametrize("fuse", [False, True])
def test_attention_on_itself_pastes_each_patch_back_in_place(fuse):
    """With an intact mask and a sharp softmax, every patch best matches itself."""
    torch.manual_seed(0)
    x = torch.randn(2, 8, 16, 24)
    attention = ContextualAttention(softmax_scale=1000.0, fuse=fuse)
    out = attention(x, x, torch.zeros(2, 1, 16, 24))
    torch.testing.assert_close(out, x, atol=1e-4, rtol=0)


def hole_at_feature_resolution() -> torch.Tensor:
    """A block and a one-pixel line at an odd column, at 24x24 feature resolution."""
    hole = torch.zeros(1, 1, 24, 24)
    hole[..., 8:15, 5:13] = 1
    hole[..., 2:22, 19] = 1  # thin: nearest downsampling by the rate would miss it
    return hole


@pytest.mark.parametrize("fuse", [False, True])
def test_attention_ignores_background_inside_the_hole(fuse):
    torch.manual_seed(0)
    foreground, background = torch.randn(1, 8, 24, 24), torch.randn(1, 8, 24, 24)
    # The mask comes at image resolution (4x the features), with a one-pixel stroke that
    # nearest resizing would miss; any hole pixel makes its feature cell a hole.
    mask = F.interpolate(hole_at_feature_resolution(), scale_factor=4, mode="nearest")
    mask[..., 40:80, 9] = 1
    hole = hole_at_feature_resolution()
    hole[..., 10:20, 2] = 1
    # Hole content that would dominate the output if it were ever matched or pasted.
    perturbed = background + 100 * hole * foreground.abs().mean(1, keepdim=True)
    attention = ContextualAttention(fuse=fuse)

    out = attention(foreground, background, mask)
    torch.testing.assert_close(attention(foreground, perturbed, mask), out, atol=1e-5, rtol=0)
    # The same perturbation is visible when the mask says there is no hole.
    no_hole = torch.zeros_like(mask)
    changed = attention(foreground, perturbed, no_hole) - attention(foreground, background, no_hole)
    assert changed.abs().max() > 1.0


def reference_attention(fg, bg, mask, scale=10.0, fuse=False):
    """DeepFill's formulation, one image at a time: match with a convolution by normalised
    background patches, paste with a transposed convolution by raw patches. `fuse` sums each
    (foreground, background) score with its neighbours shifted together along y and x, the
    excluded patches' scores zeroed first (DeepFill's identity-kernel fuse, without its
    wrap-around at row ends)."""
    outs = []
    for f, b, m in zip(fg, bg, mask, strict=True):
        f_low, b_low = f[None, :, ::2, ::2], b[None, :, ::2, ::2]
        channels = b.shape[0]
        keys = F.unfold(b_low, 3, padding=1)[0].T.reshape(-1, channels, 3, 3)
        keys = keys / keys.flatten(1).norm(dim=1).clamp_min(1e-4).view(-1, 1, 1, 1)
        scores = F.conv2d(f_low, keys, padding=1) * scale  # (1, Lb, hf, wf)
        hole = F.max_pool2d(F.adaptive_max_pool2d(m[None], b.shape[-2:]), 2)
        valid = F.max_pool2d(hole, 3, stride=1, padding=1).flatten() <= 0
        if fuse:
            (hb, wb), (hf, wf) = b_low.shape[-2:], f_low.shape[-2:]
            pairs = (scores * valid.view(1, -1, 1, 1)).view(1, hb, wb, hf, wf)
            pairs = pairs.permute(0, 3, 4, 1, 2)  # (1, hf, wf, hb, wb)
            pairs = co_shifted_sum(co_shifted_sum(pairs, 3, (1, 3)), 3, (2, 4))
            scores = pairs.permute(0, 3, 4, 1, 2).reshape(1, hb * wb, hf, wf)
        attention = scores.masked_fill(~valid.view(1, -1, 1, 1), float("-inf")).softmax(1)
        raw = F.unfold(b[None], 4, stride=2, padding=1)[0].T.reshape(-1, channels, 4, 4)
        out = F.conv_transpose2d(attention, raw, stride=2, padding=1)
        coverage = F.conv_transpose2d(
            torch.ones_like(attention[:, :1]), torch.ones(1, 1, 4, 4), stride=2, padding=1
        )
        outs.append((out / coverage)[0])
    return torch.stack(outs)


@pytest.mark.parametrize("fuse", [False, True])
def test_attention_matches_the_deepfill_formulation(fuse):
    torch.manual_seed(0)
    fg = torch.randn(2, 6, 16, 20, requires_grad=True)
    bg = torch.randn(2, 6, 16, 20, requires_grad=True)
    mask = torch.zeros(2, 1, 32, 40)
    mask[0, :, 8:20, 4:16] = 1
    mask[1, :, 20:30, 24:38] = 1
    out = ContextualAttention(fuse=fuse)(fg, bg, mask)
    expected = reference_attention(fg, bg, mask, fuse=fuse)
    other = reference_attention(fg, bg, mask, fuse=not fuse)
    assert (expected - other).abs().max() > 0.1  # fusing makes a difference here
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-4)
    weights = torch.randn_like(out)
    grads = torch.autograd.grad((out * weights).sum(), (fg, bg))
    expected_grads = torch.autograd.grad((expected * weights).sum(), (fg, bg))
    for grad, expected_grad in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(grad, expected_grad, atol=1e-4, rtol=1e-4)


def test_co_shifted_sum_matches_a_loop():
    torch.manual_seed(0)
    pairs = torch.randn(1, 3, 4, 5, 2)
    expected = torch.zeros_like(pairs)
    for i, j, k, m in torch.cartesian_prod(*(torch.arange(n) for n in pairs.shape[1:])):
        for d in (-1, 0, 1):
            if 0 <= i + d < 3 and 0 <= k + d < 5:
                expected[0, i, j, k, m] += pairs[0, i + d, j, k + d, m]
    torch.testing.assert_close(co_shifted_sum(pairs, 3, (1, 3)), expected)


def test_attention_hole_threshold_ignores_faint_mask_values():
    torch.manual_seed(0)
    x = torch.randn(1, 8, 24, 24)
    hole = hole_at_feature_resolution()
    attention = ContextualAttention(hole_threshold=0.1)
    faint = torch.maximum(hole, torch.full_like(hole, 0.05))
    torch.testing.assert_close(attention(x, x, faint), attention(x, x, hole))
    strict = ContextualAttention()(x, x, faint)  # every patch excluded: the fallback
    assert (strict - attention(x, x, hole)).abs().max() > 1e-3


def test_attention_with_all_hole_mask_falls_back_to_all_patches_without_nan():
    torch.manual_seed(0)
    x = torch.randn(2, 8, 16, 16, requires_grad=True)
    attention = ContextualAttention()
    out = attention(x, x, torch.ones(2, 1, 64, 64))
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, attention(x, x, torch.zeros(2, 1, 64, 64)))
    out.sum().backward()
    assert torch.isfinite(x.grad).all()


def test_attention_falls_back_per_sample_in_a_batch_mixing_full_and_partial_holes():
    torch.manual_seed(0)
    x = torch.randn(2, 8, 16, 16)
    mask = torch.zeros(2, 1, 64, 64)
    mask[0] = 1
    mask[1, :, 8:40, 8:40] = 1
    attention = ContextualAttention()
    out = attention(x, x, mask)
    assert torch.isfinite(out).all()
    for i in range(2):
        torch.testing.assert_close(
            out[i : i + 1], attention(x[i : i + 1], x[i : i + 1], mask[i : i + 1])
        )


def test_attention_patches_smaller_than_3_are_refused():
    with pytest.raises(ValueError, match="patch_size must be at least 3, got 1"):
        ContextualAttention(patch_size=1)


def test_generator_is_wired_as_deepfill_v2():
    """Dilations 2, 4, 8, 16 in both stages; attention of 3x3 patches at rate 2, softmax scale
    10 and fuse; the hole threshold passed on."""
    net = InpaintGenerator(cnum=8, hole_threshold=0.5)
    dilated = [
        (name.split(".")[0], m.dilation[0])
        for name, m in net.named_modules()
        if isinstance(m, nn.Conv2d) and m.dilation[0] > 1
    ]
    assert dilated == [(stage, d) for stage in ("coarse", "refine_conv") for d in (2, 4, 8, 16)]
    a = net.attention
    settings = (a.patch_size, a.rate, a.softmax_scale, a.fuse, a.hole_threshold)
    assert settings == (3, 2, 10.0, True, 0.5)


def test_attention_gradients_are_finite_with_excluded_patches():
    torch.manual_seed(0)
    x = torch.randn(1, 8, 24, 24, requires_grad=True)
    ContextualAttention()(x, x, hole_at_feature_resolution()).square().sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_attention_runs_in_float32_under_autocast():
    torch.manual_seed(0)
    x = torch.randn(1, 16, 16, 16)
    mask = hole_at_feature_resolution()
    attention = ContextualAttention()
    expected = attention(x, x, mask)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        same = attention(x, x, mask)  # bf16 matmuls would be off by ~1e-2
        low = attention(x.bfloat16(), x.bfloat16(), mask)
    assert same.dtype == torch.float32
    torch.testing.assert_close(same, expected, atol=1e-5, rtol=1e-5)
    assert low.dtype == torch.bfloat16  # scores in float32, the paste in bf16
    assert (low.float() - expected).abs().mean() < 0.01  # mostly the inputs' bf16 rounding


def test_generator_forward_under_bf16_autocast():
    torch.manual_seed(0)
    net = InpaintGenerator(cnum=8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        coarse, refined = net(*inputs(2, 32, 32))
    for out in (coarse, refined):
        assert out.shape == (2, 3, 32, 32) and torch.isfinite(out).all()


def test_discriminator_is_six_spectral_norm_convs_and_keeps_the_patch_map():
    torch.manual_seed(0)
    net = SNPatchGANDiscriminator(cnum=8)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [8, 16, 32, 32, 32, 32]
    assert all(c.kernel_size == (5, 5) and c.stride == (2, 2) for c in convs)
    assert all(hasattr(c, "weight_orig") for c in convs)  # spectral norm's reparametrisation
    slopes = [m.negative_slope for m in net.modules() if isinstance(m, nn.LeakyReLU)]
    assert slopes == [0.2] * 6
    out = net(torch.rand(2, 5, 128, 96))
    assert out.shape == (2, 32, 2, 2)


def test_full_width_generator_has_deepfill_v2_parameter_count():
    torch.manual_seed(0)
    net = InpaintGenerator(in_channels=5, cnum=48)
    count = sum(p.numel() for p in net.parameters())
    print(f"InpaintGenerator(cnum=48) parameters: {count:,}")
    assert abs(count - 4.1e6) < 0.1 * 4.1e6
    with torch.no_grad():
        coarse, refined = net(*inputs(1, 64, 64))
    assert coarse.shape == refined.shape == (1, 3, 64, 64)


def test_overfits_one_batch():
    torch.manual_seed(0)
    net = InpaintGenerator(cnum=8)
    image = smooth_images(4, 32)
    mask = torch.zeros(4, 1, 32, 32)
    mask[..., 8:20, 12:24] = 1
    damaged, edge = image * (1 - mask), torch.zeros_like(mask)
    optimizer = torch.optim.Adam(net.parameters(), lr=2e-3)
    losses = []
    for _ in range(50):
        optimizer.zero_grad()
        coarse, refined = net(damaged, mask, edge)
        loss = (coarse - image).abs().mean() + (refined - image).abs().mean()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses[::10]
