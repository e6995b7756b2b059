"""`python -m inpaint.evaluate`: model and classical baselines on the same images and masks."""

from __future__ import annotations

import csv
import itertools
import json
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import open_dict
from skimage.metrics import structural_similarity
from skimage.restoration import inpaint_biharmonic

from inpaint import evaluate as evaluate_module
from inpaint.baselines import inpaint_classical
from inpaint.config import compose_config
from inpaint.data.damage import damage
from inpaint.data.edges import EdgeDetector
from inpaint.data.images import list_images, read_image, write_image, write_pixels
from inpaint.data.mask_files import MaskFiles, read_mask
from inpaint.data.masks import SquareMask
from inpaint.data.sources import SamplePhotos
from inpaint.evaluate import (
    Scores,
    bucket_names,
    bucket_of,
    check_folder,
    evaluate,
    folder_samples,
)
from inpaint.inference import Inpainter
from inpaint.models.metrics import MAX_PSNR
from tests.conftest import run_module

BASELINE_ROWS = {"input", "telea", "navier_stokes", "biharmonic"}
# Image sizes (H, W) and the fraction of each image the mask file covers.
FOLDER = {"a": ((40, 48), 0.05), "b": ((37, 45), 0.25), "c": ((48, 48), 0.55)}


def hole_rows(height: int, width: int, ratio: float) -> np.ndarray:
    """A mask of whole rows from the top covering about `ratio` of the image."""
    mask = np.zeros((height, width), np.uint8)
    mask[: max(1, round(ratio * height))] = 255
    return mask


def write_folder(tmp_path, photo):
    """Top-left crops of `photo` (FOLDER's sizes) in images/, a white-hole mask file each in
    masks/."""
    images, masks = tmp_path / "images", tmp_path / "masks"
    for name, ((height, width), ratio) in FOLDER.items():
        write_image(images / f"{name}.png", photo[:height, :width])
        write_pixels(masks / f"{name}.png", hole_rows(height, width, ratio))
    return images, masks


@pytest.fixture
def photo_folder(tmp_path):
    """Crops of a test photo with one white-hole mask file each."""
    return write_folder(tmp_path, SamplePhotos().split("test")[1])


@pytest.fixture
def edged_folder(tmp_path):
    """Like photo_folder, from a busy part of a test photo: each hole holds Canny edges."""
    return write_folder(tmp_path, SamplePhotos().split("test")[0][240:, 144:])


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
    # Its Hydra config beside the results, not in .hydra/, where a training run keeps its own.
    record = (out / ".evaluate" / "overrides.yaml").read_text()
    assert f"mask.root={masks}" in record and not (out / ".hydra").exists()
    # A second evaluation into the folder is refused, and leaves the first's record.
    refused = run_module(
        "inpaint.evaluate",
        f"ckpt_path={trained_checkpoint('ipn')}",
        "limit=1",
        f"hydra.run.dir={out}",
        returncode=1,
    )
    assert "already holds" in refused.stderr
    assert (out / ".evaluate" / "overrides.yaml").read_text() == record
    log_text = (out / "evaluate.log").read_text()  # both runs', the refusal's reason last
    assert log_text.count("started with overrides:") == 2
    assert "failed: FileExistsError: " in log_text.splitlines()[-1]

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
    common = [f"images={images}", "mask=files", "limit=2"]
    white = evaluate(  # one baseline given as a name, not a list
        evaluate_config(
            tmp_path / "w",
            trained_checkpoint("unet"),
            *common,
            "baselines=telea",
            f"mask.root={masks}",
        )
    )
    inverted = evaluate(
        evaluate_config(
            tmp_path / "b",
            trained_checkpoint("unet"),
            *common,
            "baselines=[telea]",
            f"mask.root={black}",
            "mask.invert=true",
        )
    )
    assert set(white["buckets"]["all"]) == {"count", "model", "telea"}
    assert white["buckets"] == inverted["buckets"]


@pytest.mark.parametrize("kind", ["grey", "rgba", "16-bit", "float"])
def test_a_mask_file_of_any_depth_and_layout_reads_as_its_hole(tmp_path, kind):
    """Bright = hole at any bit depth; an opaque alpha is no hole; floats are clipped."""
    hole = np.zeros((8, 8), np.uint8)
    hole[2:4, 2:6] = 255
    pixels = {
        "grey": hole,
        "rgba": np.dstack([hole] * 3 + [np.full_like(hole, 255)]),
        "16-bit": hole.astype(np.uint16) * 257,
        "float": hole.astype(np.float32) / 255 * 2.0,
    }[kind]
    path = tmp_path / ("mask.tif" if kind == "float" else "mask.png")
    assert cv2.imwrite(str(path), pixels)
    expected = (hole > 0).astype(np.float32)
    assert np.array_equal(read_mask(path), expected)
    assert np.array_equal(read_mask(path, invert=True), 1 - expected)


def test_a_colour_mask_counts_its_brightest_channel(tmp_path):
    pixels = np.zeros((4, 4, 3), np.uint8)
    pixels[..., 2] = 128  # red, as OpenCV writes BGR
    pixels[0, 0] = (200, 0, 0)  # blue
    assert cv2.imwrite(str(tmp_path / "mask.png"), pixels)
    expected = np.full((4, 4), 128 / 255, np.float32)
    expected[0, 0] = 200 / 255
    np.testing.assert_allclose(read_mask(tmp_path / "mask.png"), expected, atol=1e-7)


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
    images = tmp_path / "images"
    for name in ("c.png", "c.jpg"):
        write_pixels(images / name, np.zeros((4, 4), np.uint8))
    with pytest.raises(FileNotFoundError, match=r"no mask for image c\.jpg .*; c\.png would be"):
        masks.find("c.jpg", images / "c.jpg")  # c.png is the mask of the image c.png
    assert masks.find("c.jpg") == tmp_path / "c.png"  # with no image c.png beside it


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
    missing = r"1 of 3 images .* no mask in .*: c\.png \(no mask for image c\.png in"
    with pytest.raises(FileNotFoundError, match=missing):
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
    whole = (images / "c.png").read_bytes()
    (images / "broken.png").write_bytes(whole[: len(whole) // 2])  # its header reads
    with pytest.raises(ValueError, match=r"1 of 4 images .* do not decode whole .*: broken\.png"):
        evaluate(cfg)
    write_pixels(images / "broken.png", np.zeros((5, 80, 3), np.uint8))
    with pytest.raises(ValueError, match=r"1 of 4 images .* under 6 px .*: broken\.png"):
        evaluate(cfg)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", ["metrics.json", "panel.png"])
def test_a_folder_holding_earlier_results_is_refused_before_scoring(
    tmp_path, photo_folder, trained_checkpoint, no_scoring, name
):
    """A training run's folder, or an earlier evaluation's: its files stay as they are."""
    images, _ = photo_folder
    earlier = tmp_path / "out" / name
    earlier.parent.mkdir()
    earlier.write_text("earlier\n")
    cfg = evaluate_config(tmp_path, trained_checkpoint("unet"), f"images={images}", "mask=medium")
    with pytest.raises(FileExistsError, match=rf"out already holds {name} of an earlier"):
        evaluate(cfg)
    assert earlier.read_text() == "earlier\n"


def test_results_of_a_run_that_finished_first_in_the_same_folder_are_kept(tmp_path):
    """Two evaluations begun in one second share the default folder."""
    (tmp_path / "metrics.json").write_text("first\n")
    with pytest.raises(FileExistsError):
        evaluate_module.write_outputs(tmp_path, {}, [], 128)
    assert (tmp_path / "metrics.json").read_text() == "first\n"


def test_the_up_front_checks_decode_the_images_scored_or_used_as_fills(tmp_path):
    for name, shape in (("a.png", (6, 80)), ("b.png", (80, 6)), ("c.png", (80, 5))):
        write_pixels(tmp_path / name, np.zeros((*shape, 3), np.uint8))
    whole = (tmp_path / "a.png").read_bytes()
    (tmp_path / "d.png").write_bytes(whole[: len(whole) // 2])  # its header reads
    paths = list_images(tmp_path)
    check_folder(tmp_path, paths, None, scored=2)  # 6 px is enough; c, d not scored
    with pytest.raises(ValueError, match=r"1 of 3 images .* under 6 px .*: c\.png$"):
        check_folder(tmp_path, paths, None, scored=3)
    with pytest.raises(ValueError, match=r"1 of 4 images .* do not decode whole .*: d\.png$"):
        check_folder(tmp_path, paths, None, scored=2, fills=True)  # any image may fill a hole


def test_a_mask_folder_that_is_the_image_folder_is_refused(
    tmp_path, photo_folder, trained_checkpoint, no_scoring
):
    """Its files would be their own masks: a.png the mask of a.png."""
    images, _ = photo_folder
    common = [f"images={images}", "mask=files", f"mask.root={images}"]
    with pytest.raises(ValueError, match=r"3 of 3 masks .* each image would be its own mask"):
        evaluate(evaluate_config(tmp_path, trained_checkpoint("unet"), *common))


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        (["mask=files", "mask.root=."], "give images=DIR"),
        (["images=.", "mask=files"], "mask=files reads masks from a folder: give mask.root=MASKS"),
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
    with pytest.raises((ValueError, FileNotFoundError, InstantiationException), match=error):
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


@pytest.mark.parametrize("data", ["images", "data=samples"])
def test_seed_null_is_refused_by_name(tmp_path, trained_checkpoint, data):
    images = tmp_path / "images"
    write_image(images / "a.png", np.zeros((32, 32, 3)))
    given = f"images={images}" if data == "images" else data
    cfg = evaluate_config(tmp_path, trained_checkpoint("unet"), given, "seed=null")
    key = "seed" if data == "images" else "data.seed"  # the data module's own key
    with pytest.raises(Exception, match=rf"(^|'){key}=None: give an integer seed"):
        evaluate(cfg)


def test_keys_given_with_plus_change_the_checkpoints_own_data_and_masks(
    tmp_path, trained_checkpoint
):
    """`+data.source.root=DIR` for a moved data set; the stored config keeps the rest."""
    checkpoint = trained_checkpoint("unet")
    stored = Inpainter.from_checkpoint(checkpoint).trained_with["data"]
    cfg = evaluate_config(
        tmp_path,
        checkpoint,
        "+data.eval_length=${panel_rows}",  # resolved in the whole config
        "panel_rows=3",
        "+mask.min_ratio=0.3",
        "baselines=[]",
    )
    report = evaluate(cfg)
    assert report["samples"] == 3 != stored["eval_length"]
    assert all(bucket in ("all", *bucket_names(0.1)[3:]) for bucket in report["buckets"])


def test_missing_checkpoint_is_named(tmp_path):
    cfg = evaluate_config(tmp_path, tmp_path / "none.ckpt")
    with pytest.raises(FileNotFoundError, match="none.ckpt"):
        evaluate(cfg)


def test_training_refuses_mask_files(tmp_path):
    cfg = compose_config("train", ["mask=files", f"mask.root={tmp_path}"])
    with pytest.raises(Exception, match="draws masks, but mask is a MaskFiles"):
        instantiate(cfg.data, mask=instantiate(cfg.mask))


# -- a stand-in model, so that what the report says about it is known exactly --------------
def as_tensor(array: np.ndarray) -> torch.Tensor:
    """(H, W) or (H, W, 3) -> (1, C, H, W)."""
    array = array[:, :, None] if array.ndim == 2 else array
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))[None].float()


class PerfectBlindModel:
    """Stands in for a blind checkpoint's Inpainter: it predicts exactly the true mask and
    the Canny edges of the clean image of the sample being scored, and paints the truth."""

    kind, needs_mask, predicts_mask, paints = "blind", False, True, True

    def __init__(self):
        self.edges = EdgeDetector()
        self.trained_with: dict = {}
        self.sample = None  # the sample evaluate is scoring, set as evaluate draws it

    def true_edges(self, image: np.ndarray) -> np.ndarray:
        return self.edges.numpy(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY))

    def __call__(self, damaged, mask=None):
        assert mask is None  # a blind model is given the damaged image alone
        image = self.sample.image
        return {
            "output": as_tensor(image),
            "paint": as_tensor(image),
            "mask": as_tensor(self.sample.mask),
            "edges": as_tensor(self.true_edges(image)),
        }


@pytest.fixture
def perfect_blind(monkeypatch):
    """evaluate() with a PerfectBlindModel in place of the checkpoint's model."""
    model = PerfectBlindModel()
    drawn = evaluate_module.folder_samples

    def watched(*args):
        for sample in drawn(*args):
            model.sample = sample
            yield sample

    monkeypatch.setattr(evaluate_module, "folder_samples", watched)
    monkeypatch.setattr(
        evaluate_module, "Inpainter", SimpleNamespace(from_checkpoint=lambda *_, **__: model)
    )
    return model


def folder_config(tmp_path, images, masks, *overrides):
    return evaluate_config(
        tmp_path,
        tmp_path / "stand-in.ckpt",
        f"images={images}",
        "mask=files",
        f"mask.root={masks}",
        *overrides,
    )


def test_a_blind_model_that_finds_the_true_mask_and_edges_scores_perfectly_in_every_bucket(
    tmp_path, edged_folder, perfect_blind
):
    images, masks = edged_folder
    for name, ((height, width), ratio) in FOLDER.items():  # every hole has edges to find
        hole = hole_rows(height, width, ratio) > 0
        assert perfect_blind.true_edges(read_image(images / f"{name}.png"))[hole].sum() > 0
    report = evaluate(folder_config(tmp_path, images, masks, "baselines=[input]"))
    buckets = report["buckets"]
    assert list(buckets) == ["all", "0-10%", "20-30%", "50-60%"]
    for bucket, entry in buckets.items():
        model = entry["model"]
        for key in ("mask_iou", "mask_f1", "edge_precision", "edge_recall", "edge_f1"):
            assert model.get(key) == pytest.approx(1.0), (bucket, key)
        assert model["mask_bce"] == pytest.approx(0.0, abs=1e-6), bucket
        assert model["l1"] == 0 and model["psnr"] == pytest.approx(MAX_PSNR), bucket
    md = (tmp_path / "out" / "metrics.md").read_text()
    assert "| 1.000 | 1.000 | 0.000 | 1.000 | 1.000 |" in md  # the blind table


def markdown_rows(text: str, header: str) -> dict[str, list[str]]:
    """The rows of the markdown table that starts with `header`: {first cell: other cells}."""
    lines = text.splitlines()
    start = lines.index(header)
    rows = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        first, *cells = [cell.strip() for cell in line.strip("|").split("|")]
        rows[first] = cells
    return rows


def test_the_markdown_table_holds_the_json_numbers_and_times_per_image(
    tmp_path, photo_folder, perfect_blind, monkeypatch
):
    """Every method is timed 0.25 s per image by a stand-in clock: 250 ms/image whatever the
    number of images."""
    ticks = itertools.count(step=0.25)
    monkeypatch.setattr(evaluate_module, "time", SimpleNamespace(perf_counter=lambda: next(ticks)))
    images, masks = photo_folder
    report = evaluate(folder_config(tmp_path, images, masks, "baselines=[input,telea]"))
    assert report["samples"] == 3
    assert report["ms_per_image"] == pytest.approx({"input": 250, "telea": 250, "model": 250})
    md = (tmp_path / "out" / "metrics.md").read_text()
    header = "| method | PSNR | SSIM | hole PSNR | hole L1 | ms/image |"
    rows = markdown_rows(md, header)
    overall = report["buckets"]["all"]
    assert set(rows) == {"input", "telea", "model"}
    for method, cells in rows.items():
        values = overall[method]
        expected = [values["psnr"], values["ssim"], values["psnr_hole"], values["l1_hole"], 250]
        assert [float(cell) for cell in cells] == pytest.approx(expected, abs=1e-3), method
    assert rows["model"][2:4] == ["100.000", "0.000"]  # a perfect painting: hole PSNR, hole L1
    with (tmp_path / "out" / "metrics.csv").open() as handle:
        assert {float(row["ms_per_image"]) for row in csv.DictReader(handle)} == {250.0}


def test_grey_mask_files_weigh_the_hole_scores_by_their_grey_level(
    tmp_path, photo_folder, perfect_blind
):
    """A grey level m damages a pixel by m (zero fill: damaged = (1 - m) * image) and
    weighs its error by m in the hole PSNR and L1."""
    images, masks = photo_folder
    levels = np.array([255, 191, 128, 77, 26, 0], np.uint8)  # 1, 0.75, 0.5, 0.3, 0.1, 0
    for path in masks.iterdir():
        height, width = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE).shape
        bands = np.repeat(levels, -(-height // len(levels)))[:height]
        write_pixels(path, np.repeat(bands[:, None], width, axis=1))
    report = evaluate(folder_config(tmp_path, images, masks, "baselines=[input]", "limit=1"))
    assert report["samples"] == 1  # the first image, a.png
    image = read_image(images / "a.png")
    m = cv2.imread(str(masks / "a.png"), cv2.IMREAD_GRAYSCALE)[:, :, None] / 255.0
    damaged = (1 - m) * image
    weight = np.broadcast_to(m, image.shape)
    hole_l1 = (np.abs(damaged - image) * weight).sum() / weight.sum()
    hole_mse = ((damaged - image) ** 2 * weight).sum() / weight.sum()
    scored = report["buckets"]["all"]["input"]
    assert scored["l1_hole"] == pytest.approx(hole_l1, rel=1e-4)
    assert scored["psnr_hole"] == pytest.approx(-10 * np.log10(hole_mse), abs=1e-3)


@pytest.mark.parametrize("name", ["telea", "navier_stokes", "biharmonic"])
def test_baselines_paint_every_pixel_a_grey_mask_touches(name):
    """mask > 0 is a hole for the baselines, a grey level below 0.5 too; mask 0 is returned
    as given."""
    rows, columns = np.mgrid[0:24, 0:24] / 23.0
    image = np.stack([0.3 + 0.4 * rows, 0.5 + 0.2 * columns, np.full_like(rows, 0.6)], -1)
    image = image.astype(np.float32)
    mask = np.zeros((24, 24), np.float32)
    mask[6:12, 6:18] = 0.4
    mask[12:18, 6:18] = 1.0
    damaged = damage(image, mask, np.zeros_like(image))
    assert np.abs(damaged - image)[mask == 0.4].min() > 0.1  # the grey damage is visible
    painted = inpaint_classical(name, damaged, mask)
    assert np.array_equal(painted[mask == 0], damaged[mask == 0])
    # the whole hole, grey band included, is painted from its smooth surroundings
    assert np.abs(painted - image)[mask > 0].max() < 0.1


def test_each_baseline_is_the_library_method_it_names_on_the_rounded_pixels():
    """OpenCV takes 8-bit pixels: each float is rounded to its nearest level, not truncated."""
    damaged = np.random.default_rng(0).random((24, 24, 3)).astype(np.float32)
    mask = np.zeros((24, 24), np.float32)
    mask[8:16, 4:20] = 1
    hole, pixels = mask.astype(np.uint8), np.rint(damaged * 255).astype(np.uint8)
    expected = {
        name: cv2.inpaint(pixels, hole, 3, flag) / 255.0
        for name, flag in (("telea", cv2.INPAINT_TELEA), ("navier_stokes", cv2.INPAINT_NS))
    }
    expected["biharmonic"] = inpaint_biharmonic(damaged, hole > 0, channel_axis=-1)
    inside = mask > 0
    for name, painted in expected.items():
        np.testing.assert_allclose(
            inpaint_classical(name, damaged, mask)[inside], painted[inside], atol=1e-6
        )
    assert np.abs(expected["telea"] - expected["navier_stokes"])[inside].max() > 0.05


@pytest.mark.parametrize("name", ["input", "telea", "navier_stokes", "biharmonic"])
def test_a_mask_over_the_whole_image_gives_the_input_back(name):
    damaged = np.random.default_rng(0).random((8, 8, 3)).astype(np.float32)
    assert np.array_equal(inpaint_classical(name, damaged, np.ones((8, 8))), damaged)


def test_letterbox_margins_are_not_a_hole_in_a_mask_column():
    from inpaint.evaluate import MARGIN, letterbox

    intact = torch.zeros(1, 1, 32, 64)  # a mask with no hole, twice as wide as high
    tile = letterbox(intact, 64)
    assert tile.shape == (1, 3, 64, 64)
    assert torch.equal(tile[..., 16:48, :], torch.zeros(1, 3, 32, 64))  # the mask, all intact
    margin = torch.cat([tile[..., :16, :], tile[..., 48:, :]], dim=-2)
    assert torch.equal(margin, torch.tensor(MARGIN).view(1, 3, 1, 1).expand_as(margin))
    assert not torch.equal(margin[:, 0], margin[:, 2])  # not grey: no mask value


def test_each_folder_image_gets_its_own_seeded_mask(tmp_path):
    for name in ("a.png", "b.png", "c.png"):
        write_pixels(tmp_path / name, np.zeros((64, 64, 3), np.uint8))
    paths = list_images(tmp_path)
    mask = instantiate(compose_config("evaluate", ["mask=medium"]).mask)
    first = [s.mask for s in folder_samples(tmp_path, paths, mask, seed=0)]
    again = [s.mask for s in folder_samples(tmp_path, paths, mask, seed=0)]
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))  # seeded
    assert not np.array_equal(first[0], first[1]) and not np.array_equal(first[1], first[2])


def test_a_bucket_of_hole_free_images_reports_no_hole_scores():
    """No NaN in metrics.json, which strict JSON readers refuse."""
    scores, image = Scores(), torch.rand(1, 3, 16, 16)
    scores.count("0-10%")
    scores.add_image("input", "0-10%", image, image, torch.zeros(1, 1, 16, 16))
    values = scores.compute()["0-10%"]["input"]
    assert "psnr_hole" not in values and "l1_hole" not in values
    assert values and all(np.isfinite(v) for v in values.values())
