"""`python -m inpaint.evaluate`: model and classical baselines on the same images and masks."""

from __future__ import annotations

import csv
import json

import cv2
import numpy as np
import pytest
from hydra.utils import instantiate
from omegaconf import open_dict
from skimage.metrics import structural_similarity

from inpaint.config import compose_config
from inpaint.data.images import list_images, read_image, write_image, write_pixels
from inpaint.data.mask_files import MaskFiles, read_mask
from inpaint.data.masks import SquareMask
from inpaint.data.sources import SamplePhotos
from inpaint.evaluate import bucket_of, evaluate, folder_samples
from tests.conftest import run_module

BASELINE_ROWS = {"input", "telea", "navier_stokes", "biharmonic"}
# Image sizes (H, W) and the fraction of each image the mask file covers.
FOLDER = {"a": ((40, 48), 0.05), "b": ((37, 45), 0.25), "c": ((48, 48), 0.55)}


def hole_rows(height: int, width: int, ratio: float) -> np.ndarray:
    """A mask of whole rows from the top covering about `ratio` of the image."""
    mask = np.zeros((height, width), np.uint8)
    mask[: max(1, round(ratio * height))] = 255
    return mask


@pytest.fixture
def photo_folder(tmp_path):
    """Crops of a test photo with one white-hole mask file each."""
    photo = SamplePhotos().split("test")[1]
    images, masks = tmp_path / "images", tmp_path / "masks"
    for name, ((height, width), ratio) in FOLDER.items():
        write_image(images / f"{name}.png", photo[:height, :width])
        write_pixels(masks / f"{name}.png", hole_rows(height, width, ratio))
    return images, masks


def evaluate_config(tmp_path, checkpoint, *overrides):
    cfg = compose_config("evaluate", [f"ckpt_path={checkpoint}", "device=cpu", *overrides])
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path / "out")
    return cfg


def test_buckets_are_tenths_of_the_hole_ratio():
    assert bucket_of(0.0, 0.1) == "0-10%"
    assert bucket_of(0.55, 0.1) == "50-60%"
    assert bucket_of(1.0, 0.1) == "90-100%"


@pytest.mark.parametrize("width", [0.1, 0.05, 0.2])
def test_a_ratio_on_a_bucket_boundary_opens_the_next_bucket(width):
    """0.3 / 0.1 is 2.999... in floating point; a mask covering exactly 30% of an image
    (its float32 mean) still belongs to 30-40%."""
    for k in range(round(1 / width)):
        expected = f"{round(100 * k * width)}-{round(100 * (k + 1) * width)}%"
        mask = np.zeros(10_000, np.float32)
        mask[: round(10_000 * k * width)] = 1
        assert bucket_of(k * width, width) == expected
        assert bucket_of(float(mask.mean()), width) == expected


def test_cli_writes_every_row_and_bucket_and_recomputes_a_baseline(
    tmp_path, photo_folder, trained_checkpoint
):
    images, masks = photo_folder
    out = tmp_path / "run"
    run_module(
        "inpaint.evaluate",
        f"ckpt_path={trained_checkpoint('ipn')}",
        f"images={images}",
        "mask=files",
        f"mask.root={masks}",
        f"hydra.run.dir={out}",
    )
    report = json.loads((out / "metrics.json").read_text())
    buckets = report["buckets"]
    assert list(buckets) == ["all", "0-10%", "20-30%", "50-60%"]
    assert [buckets[b]["count"] for b in buckets] == [3, 1, 1, 1]
    for entry in buckets.values():
        assert set(entry) - {"count"} == BASELINE_ROWS | {"model"}
    assert report["model"] == "ipn" and report["model_given_mask"] is True

    with (out / "metrics.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert {(r["method"], r["bucket"]) for r in rows} == {
        (m, b) for m in BASELINE_ROWS | {"model"} for b in buckets
    }
    panel = read_image(out / "panel.png")
    assert panel.shape[0] > 3 * 128  # three letterboxed rows
    assert "hole PSNR" in (out / "metrics.md").read_text()

    # Telea on image a (the 0-10% bucket), recomputed with OpenCV and numpy alone.
    image = read_image(images / "a.png")
    mask = read_mask(masks / "a.png")
    damaged = image * (1 - mask[:, :, None])  # mask files damage with zeros by default
    pixels = np.rint(damaged * 255).astype(np.uint8)
    painted = cv2.inpaint(pixels, (mask > 0).astype(np.uint8), 3, cv2.INPAINT_TELEA) / 255.0
    telea = np.where(mask[:, :, None] > 0, painted, damaged)
    error = (telea - image) ** 2
    hole = np.broadcast_to(mask[:, :, None] > 0, error.shape)
    expected = {
        "psnr": -10 * np.log10(error.mean()),
        "psnr_hole": -10 * np.log10(error[hole].mean()),
        "l1_hole": np.abs(telea - image)[hole].mean(),
        "ssim": structural_similarity(
            telea,
            image,
            data_range=1.0,
            channel_axis=-1,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
        ),
    }
    measured = buckets["0-10%"]["telea"]
    assert measured["psnr"] == pytest.approx(expected["psnr"], abs=1e-3)
    assert measured["psnr_hole"] == pytest.approx(expected["psnr_hole"], abs=1e-3)
    assert measured["l1_hole"] == pytest.approx(expected["l1_hole"], abs=1e-5)
    assert measured["ssim"] == pytest.approx(expected["ssim"], abs=0.02)
    # The damaged input scores what it is: every hole pixel of the zero fill is wrong.
    assert buckets["0-10%"]["input"]["l1_hole"] == pytest.approx(image[mask > 0].mean(), abs=1e-5)


def test_blind_model_on_its_own_test_data_reports_mask_and_edge_scores(
    tmp_path, trained_checkpoint
):
    cfg = evaluate_config(tmp_path, trained_checkpoint("blind"), "limit=6", "baselines=[input]")
    report = evaluate(cfg)
    assert report["samples"] == 6 and report["model_given_mask"] is False
    model = report["buckets"]["all"]["model"]
    for key in ("psnr_hole", "mask_iou", "mask_f1", "mask_bce", "edge_precision", "edge_recall"):
        assert key in model
    assert 0 <= model["mask_iou"] <= 1
    assert set(report["buckets"]["all"]) == {"count", "input", "model"}
    assert report["panel_columns"][-3:] == ["predicted mask", "model", "ground truth"]


def test_inverted_masks_name_the_same_holes(tmp_path, photo_folder, trained_checkpoint):
    images, masks = photo_folder
    black = tmp_path / "black"
    for path in masks.iterdir():
        write_pixels(black / path.name, 255 - cv2.imread(str(path), cv2.IMREAD_GRAYSCALE))
    common = [f"images={images}", "mask=files", "baselines=[telea]", "limit=2"]
    white = evaluate(
        evaluate_config(tmp_path / "w", trained_checkpoint("unet"), *common, f"mask.root={masks}")
    )
    inverted = evaluate(
        evaluate_config(
            tmp_path / "b",
            trained_checkpoint("unet"),
            *common,
            f"mask.root={black}",
            "mask.invert=true",
        )
    )
    assert white["buckets"] == inverted["buckets"]


def test_a_mask_folder_inside_the_image_folder_is_not_scored_as_images(
    tmp_path, photo_folder, trained_checkpoint
):
    images, masks = photo_folder
    masks.rename(images / "masks")
    common = [f"images={images}", "mask=files", f"mask.root={images / 'masks'}", "baselines=[]"]
    report = evaluate(evaluate_config(tmp_path, trained_checkpoint("unet"), *common))
    assert report["samples"] == len(FOLDER)


def test_mask_files_are_found_by_name_with_any_image_suffix_in_any_case(tmp_path):
    for name in ("IMG_1.PNG", "sub/x.tif", "a.b.png", "c.png", "d.png", "d.jpg.png"):
        write_pixels(tmp_path / name, np.zeros((4, 4), np.uint8))
    masks = MaskFiles(str(tmp_path))
    assert masks.find("d.jpg") == tmp_path / "d.jpg.png"  # as predict save_mask names it
    assert masks.find("d.png") == tmp_path / "d.png"
    assert masks.find("IMG_1.JPG") == tmp_path / "IMG_1.PNG"
    assert masks.find("sub/x.jpg") == tmp_path / "sub/x.tif"
    assert masks.find("c.png") == tmp_path / "c.png"
    with pytest.raises(FileNotFoundError, match=r"no mask for image a\.jpg"):
        masks.find("a.jpg")  # a.b.png is the mask of a.b.*, not of a.*


@pytest.fixture
def no_scoring(monkeypatch):
    """Fails the test if any image is scored."""

    def scored(*_):
        pytest.fail("an image was scored before the inputs were checked")

    monkeypatch.setattr("inpaint.evaluate.inpaint_classical", scored)
    return monkeypatch


def test_masks_of_another_size_or_unreadable_are_named_before_any_image_is_scored(
    tmp_path, photo_folder, trained_checkpoint, no_scoring
):
    images, masks = photo_folder
    write_pixels(masks / "c.png", np.zeros((10, 10), np.uint8))  # the last image's
    cfg = evaluate_config(
        tmp_path, trained_checkpoint("unet"), f"images={images}", "mask=files", f"mask.root={masks}"
    )
    with pytest.raises(
        ValueError, match=r"1 of 3 masks .* mask .*c\.png is 10x10 pixels but image .*c\.png"
    ):
        evaluate(cfg)
    (masks / "b.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match=r"2 of 3 masks .* cannot decode image file: .*b\.png"):
        evaluate(cfg)
    assert not (tmp_path / "out").exists()


def test_missing_masks_are_named_before_any_image_is_scored(
    tmp_path, photo_folder, trained_checkpoint, no_scoring
):
    images, masks = photo_folder
    (masks / "c.png").unlink()
    cfg = evaluate_config(
        tmp_path, trained_checkpoint("unet"), f"images={images}", "mask=files", f"mask.root={masks}"
    )
    with pytest.raises(FileNotFoundError, match=r"1 of 3 images .* no mask in .*: c\.png$"):
        evaluate(cfg)
    with open_dict(cfg):
        cfg.limit = 2  # the images evaluated all have their masks
    no_scoring.undo()
    assert evaluate(cfg)["buckets"]["all"]["count"] == 2


def test_unreadable_images_are_named_before_any_image_is_scored(
    tmp_path, photo_folder, trained_checkpoint, no_scoring
):
    images, _ = photo_folder
    (images / "broken.png").write_bytes(b"not an image")
    cfg = evaluate_config(tmp_path, trained_checkpoint("unet"), f"images={images}", "mask=medium")
    with pytest.raises(ValueError, match=r"1 of 4 files in images=.* not readable .*: broken\.png"):
        evaluate(cfg)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        (["mask=files", "mask.root=."], "give images=DIR"),
        (["baselines=[telea,magic]"], "unknown .*magic"),
        (["images=/nowhere"], "images=/nowhere is not a folder"),
        (["limit=0"], "limit must be a number of samples >= 1"),
        (["split=tset"], r"split must be one of \['test', 'train', 'val'\], got 'tset'"),
        (["bucket_width=0"], r"bucket_width must split 0-100% .*; got 0"),
        (["bucket_width=0.3"], r"bucket_width must split 0-100% .*; got 0.3"),
        (["bucket_width=0.005"], r"bucket_width must split 0-100% .*; got 0.005"),
    ],
)
def test_bad_settings_are_named(tmp_path, trained_checkpoint, overrides, error):
    cfg = evaluate_config(tmp_path, trained_checkpoint("unet"), *overrides)
    with pytest.raises((ValueError, FileNotFoundError), match=error):
        evaluate(cfg)


def test_image_fills_come_from_another_image_of_the_folder(tmp_path, trained_checkpoint):
    photo = SamplePhotos().split("test")[0]
    images = tmp_path / "images"
    for k in range(3):
        write_image(images / f"{k}.png", photo[40 * k : 40 * k + 32, :32])
    paths = list_images(images)
    for seed in range(8):
        for sample in folder_samples(images, paths, SquareMask(fill="image"), seed):
            hole = sample.mask > 0.5
            assert np.abs(sample.damaged - sample.image)[hole].max() > 0.05, sample.name
    write_image(tmp_path / "one" / "only.png", photo[:32, :32])
    overrides = [f"images={tmp_path / 'one'}", "mask=square", "mask.fill=image"]
    cfg = evaluate_config(tmp_path, trained_checkpoint("unet"), *overrides)
    with pytest.raises(ValueError, match=r"mask.fill=image .* images=.*one holds one"):
        evaluate(cfg)


def test_missing_checkpoint_is_named(tmp_path):
    cfg = evaluate_config(tmp_path, tmp_path / "none.ckpt")
    with pytest.raises(FileNotFoundError, match="none.ckpt"):
        evaluate(cfg)


def test_training_refuses_mask_files(tmp_path):
    cfg = compose_config("train", ["mask=files", f"mask.root={tmp_path}"])
    with pytest.raises(Exception, match="draws masks, but mask is a MaskFiles"):
        instantiate(cfg.data, mask=instantiate(cfg.mask))
