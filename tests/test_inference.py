"""`Inpainter`: how the painted image and the input are put together, by the kind of mask."""

from __future__ import annotations

import pytest
import torch
from hydra.utils import instantiate

from inpaint.data.edges import EdgeDetector, to_gray
from inpaint.inference import Inpainter, load_checkpoint
from tests.conftest import tiny_config


def tiny_module(tmp_path, experiment: str):
    cfg = tiny_config(tmp_path, [f"experiment={experiment}"], model=experiment)
    torch.manual_seed(0)
    return instantiate(cfg.model, _convert_="all").eval()


def test_masks_of_another_shape_than_the_images_are_refused(tmp_path):
    inpainter = Inpainter(tiny_module(tmp_path, "ipn"))
    damaged = torch.rand(2, 3, 20, 28)
    for shape in ((2, 1, 24, 32), (1, 1, 20, 28), (2, 20, 28)):  # padded, one for two, no C
        with pytest.raises(ValueError, match=r"masks must be \(B, 1, H, W\) = \(2, 1, 20, 28\)"):
            inpainter(damaged, torch.zeros(shape))


@pytest.mark.parametrize("kind", ["ipn", "blind"])
def test_a_given_edge_detector_replaces_the_checkpoints(trained_checkpoint, kind):
    detector = EdgeDetector(sigma=1.0, method="kornia")
    inpainter = Inpainter.from_checkpoint(trained_checkpoint(kind), edges=detector)
    assert inpainter.edges is detector
    if kind == "blind":  # the chain's own EPN stage uses it
        assert inpainter.module.edges is detector


def test_a_checkpoint_keeps_the_canny_settings_it_trained_with(tmp_path, trained_checkpoint):
    checkpoint = torch.load(trained_checkpoint("ipn"), weights_only=False)
    checkpoint["hyper_parameters"]["data"]["edges"]["sigma"] = 1.25
    torch.save(checkpoint, tmp_path / "sigma.ckpt")
    assert Inpainter.from_checkpoint(tmp_path / "sigma.ckpt").edges.sigma == 1.25


def test_a_chain_without_an_ipn_predicts_masks_and_edges_and_paints_nothing(tmp_path):
    inpainter = Inpainter(tiny_module(tmp_path, "joint_epn_mpn"))
    assert (inpainter.kind, inpainter.paints, inpainter.predicts_mask) == (
        "joint_epn_mpn",
        False,
        True,
    )
    result = inpainter(torch.rand(1, 3, 20, 28))
    assert sorted(result) == ["edges", "mask"]
    assert result["mask"].shape == result["edges"].shape == (1, 1, 20, 28)


@pytest.mark.parametrize("size", [(30, 30), (4, 4), (5, 13)])
def test_a_padded_image_is_cropped_back_to_its_own_pixels(tmp_path, size):
    """Padding goes below and to the right (reflected, or repeated where the image is no
    larger than the pad): the result's mask is the given one, pixel for pixel."""
    inpainter = Inpainter(tiny_module(tmp_path, "ipn"))
    mask = torch.zeros(1, 1, *size)
    mask[..., : size[0] // 2, : size[1] // 2] = 1
    result = inpainter(torch.rand(1, 3, *size), mask)
    assert torch.equal(result["mask"], mask)
    assert result["output"].shape == result["paint"].shape == (1, 3, *size)


def test_a_given_grey_mask_is_painted_wherever_it_is_above_zero(tmp_path):
    """The damage (1 - m) x + m fill leaves no pixel under m > 0 worth keeping: the result
    there is the network's, as in IPN training and for the classical baselines."""
    module = tiny_module(tmp_path, "ipn")
    damaged = torch.rand(1, 3, 32, 32)
    mask = torch.zeros(1, 1, 32, 32)
    mask[..., 8:24, 8:24] = 0.4
    inpainter = Inpainter(module)
    output = inpainter(damaged, mask)["output"]
    with torch.no_grad():
        edges = inpainter.edges(to_gray(damaged), mask)
        _, refined = module.generator(damaged, mask, edges)
    hole = mask.expand_as(damaged) > 0
    torch.testing.assert_close(output[hole], refined.clamp(0, 1)[hole])
    assert torch.equal(output[~hole], damaged[~hole])


def test_a_predicted_mask_blends_the_paint_in_and_keeps_pixels_below_the_threshold(tmp_path):
    module = tiny_module(tmp_path, "blind")
    damaged = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        chain = module.run_chain(damaged)
    mask, painted = chain["mask"], chain["refined"].clamp(0, 1)
    threshold = float(mask.median())  # half the pixels on each side
    output = Inpainter(module, intact_below=threshold)(damaged)["output"]
    expected = torch.where(mask < threshold, damaged, mask * painted + (1 - mask) * damaged)
    torch.testing.assert_close(output, expected)
    assert torch.equal(
        output[(mask < threshold).expand_as(output)], damaged[(mask < threshold).expand_as(damaged)]
    )


@pytest.mark.parametrize("content", [b"", b"not a checkpoint", b"\x89PNG\r\n\x1a\n"])
def test_a_file_that_is_not_a_checkpoint_is_a_clear_error_naming_it(tmp_path, content):
    (tmp_path / "model.ckpt").write_bytes(content)
    with pytest.raises(ValueError, match=r"model\.ckpt is not a checkpoint that torch can read"):
        load_checkpoint(tmp_path / "model.ckpt")


@pytest.mark.parametrize("size", [(6, 20), (1, 1), (3, 13), (8, 8)])
def test_images_smaller_than_a_network_takes_are_padded_up_to_it(tmp_path, size):
    """The EPN's residual blocks need 3 pixels at 1/4 resolution, 12 px: padded to 16, the
    next multiple of the IPN's 8."""
    module = tiny_module(tmp_path, "blind")
    inpainter = Inpainter(module)
    assert module.generator["epn"].min_size == 12 and inpainter.multiple == 8
    assert inpainter.min_side == 16
    damaged = torch.rand(2, 3, *size)
    # An untrained MPN predicts about the same everywhere: split it at its mean.
    inpainter.intact_below = inpainter(damaged)["mask"].mean().item()
    result = inpainter(damaged)
    assert result["output"].shape == damaged.shape
    assert result["mask"].shape == result["edges"].shape == (2, 1, *size)
    keep = (result["mask"] < inpainter.intact_below).expand_as(damaged)
    assert keep.any()
    assert torch.equal(result["output"][keep], damaged[keep])
