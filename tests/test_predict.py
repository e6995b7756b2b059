"""`python -m inpaint.predict`: results keep each image's size, depth, channels and orientation,
change only the hole, and never touch the inputs."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image, ImageCms

from inpaint import predict as predict_module
from inpaint.config import PREDICT_CONF_DIR, compose_config
from inpaint.data.images import read_pixels, to_float_rgb, write_pixels
from inpaint.inference import Inpainter
from inpaint.predict import PredictReport, output_names, predict
from tests.conftest import QUIET_OFFLINE, ROOT


def photos() -> dict[str, np.ndarray]:
    """Odd sizes in every format the command takes; the 37x45 ones share a batch."""
    rng = np.random.default_rng(0)
    alpha = np.tile(np.linspace(0, 255, 45).astype(np.uint8), (37, 1))
    return {
        "grey.png": rng.integers(0, 256, (301, 457), np.uint8),
        "rgb.jpg": rng.integers(0, 256, (37, 45, 3), np.uint8),
        "rgba.png": np.dstack([rng.integers(0, 256, (37, 45, 3), np.uint8), alpha]),
        "deep.tif": rng.integers(0, 65536, (37, 45, 3), np.uint16),
        "sub/grey16.png": rng.integers(0, 65536, (37, 45), np.uint16),
    }


def write_photos(folder: Path, images: dict[str, np.ndarray]) -> None:
    for name, pixels in images.items():
        write_pixels(folder / name, pixels)


def hole_mask(shape: tuple, seed: int = 1) -> np.ndarray:
    """8-bit mask, 255 = hole: a block and scattered pixels."""
    rng = np.random.default_rng(seed)
    mask = np.where(rng.random(shape[:2]) < 0.05, 255, 0).astype(np.uint8)
    mask[shape[0] // 4 : shape[0] // 2, shape[1] // 3 : shape[1] // 2] = 255
    return mask


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def run(ckpt: Path, source: Path, output: Path, *overrides: str) -> PredictReport:
    arguments = [f"ckpt_path={ckpt}", f"input={source}", f"output={output}", *overrides]
    return predict(compose_config("predict", arguments, PREDICT_CONF_DIR))


def check_result(source: Path, result: Path, intact: np.ndarray) -> None:
    """Same shape and depth, intact pixels (and alpha) byte for byte the input's, hole painted."""
    raw, out = read_pixels(source), read_pixels(result)
    assert (out.shape, out.dtype) == (raw.shape, raw.dtype)
    assert np.array_equal(out[intact], raw[intact])
    if raw.ndim == 3 and raw.shape[2] == 4:
        assert np.array_equal(out[..., 3], raw[..., 3])
    assert not np.array_equal(out[~intact], raw[~intact])


@pytest.mark.parametrize("kind", ["ipn", "unet"])
def test_given_masks_change_only_the_hole_of_every_format(kind, trained_checkpoint, tmp_path):
    source, masks, output = tmp_path / "in", tmp_path / "masks", tmp_path / "out"
    write_photos(source, photos())
    for name, pixels in photos().items():
        write_pixels((masks / name).with_suffix(".png"), hole_mask(pixels.shape))
    before = snapshot(source)

    report = run(trained_checkpoint(kind), source, output, f"mask={masks}")

    assert not report.failed and len(report.written) == len(photos())
    for name, pixels in photos().items():
        check_result(
            source / name, (output / name).with_suffix(".png"), hole_mask(pixels.shape) == 0
        )
    assert snapshot(source) == before


def test_inputs_with_a_colour_profile_are_named_in_a_warning(trained_checkpoint, tmp_path, caplog):
    """The results carry no ICC profile: a colour-managed viewer shows them in other colours."""
    source = tmp_path / "in"
    write_photos(source, {"plain.png": photos()["rgb.jpg"]})
    for name, space in (("srgb.png", "sRGB"), ("other.png", "LAB")):  # sRGB: no change shown
        profile = ImageCms.ImageCmsProfile(ImageCms.createProfile(space)).tobytes()
        Image.fromarray(photos()["rgb.jpg"]).save(source / name, icc_profile=profile)
    whole = (source / "other.png").read_bytes()
    (source / "truncated.png").write_bytes(whole[: len(whole) // 2])  # fails: no result to name
    with caplog.at_level(logging.WARNING):
        run(trained_checkpoint("unet"), source, tmp_path / "out")
    assert re.search(r"1 inputs embed an ICC colour profile \(\S*other\.png\) ", caplog.text)


def test_blind_model_predicts_the_hole_and_reports_unreadable_files(
    trained_checkpoint, tmp_path, monkeypatch, caplog
):
    ckpt, source, output = trained_checkpoint("blind"), tmp_path / "in", tmp_path / "out"
    images = {name: photos()[name] for name in ("rgba.png", "sub/grey16.png")}
    images["big.png"] = np.random.default_rng(2).integers(0, 256, (64, 80, 3), np.uint8)
    write_photos(source, images)
    (source / "broken.png").write_bytes(np.random.default_rng(3).bytes(200))
    # An untrained MPN predicts about the same damage everywhere: split it at its median.
    first = torch.from_numpy(to_float_rgb(images["big.png"])).permute(2, 0, 1)[None]
    threshold = Inpainter.from_checkpoint(ckpt)(first)["mask"].median().item()
    load = Inpainter.from_checkpoint

    def with_threshold(path, **kwargs):
        inpainter = load(path, **kwargs)
        inpainter.intact_below = threshold
        return inpainter

    monkeypatch.setattr(Inpainter, "from_checkpoint", staticmethod(with_threshold))

    with caplog.at_level(logging.ERROR):
        report = run(ckpt, source, output, "save_mask=true", "save_edges=true", "max_side=48")

    assert list(report.failed) == [source / "broken.png"]
    assert "broken.png" in caplog.text and "cannot decode" in caplog.text
    assert len(report.written) == len(images)  # big.png inpainted at 48 px, written at 64x80
    for name, pixels in images.items():
        png = Path(name).with_suffix(".png")
        saved = {folder: read_pixels(output / folder / png) for folder in ("masks", "edges")}
        assert all(p.shape == pixels.shape[:2] and p.dtype == np.uint8 for p in saved.values())
        intact = saved["masks"] / 255 < threshold - 1 / 255
        assert intact.any()
        check_result(source / name, output / png, intact)


def test_unet_without_mask_repaints_upright_images_with_distinct_names(
    trained_checkpoint, tmp_path
):
    source, output = tmp_path / "in", tmp_path / "out"
    write_photos(source, {"a.png": photos()["rgba.png"]})
    stored = Image.fromarray(photos()["rgb.jpg"][:30, :40])
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 40 wide, shown rotated a quarter turn: 30 wide, 40 high
    stored.save(source / "a.jpg", exif=exif)

    report = run(trained_checkpoint("unet"), source, output)

    assert sorted(report.written) == [output / "a.jpg.png", output / "a.png"]
    assert read_pixels(output / "a.jpg.png").shape == (40, 30, 3)
    check_result(source / "a.png", output / "a.png", np.zeros((37, 45), bool))


def test_grey_with_alpha_is_painted_grey(trained_checkpoint, tmp_path):
    image, mask, output = tmp_path / "la.png", tmp_path / "mask.png", tmp_path / "out"
    grey = np.random.default_rng(5).integers(0, 256, (37, 45), np.uint8)
    alpha = photos()["rgba.png"][..., 3]
    Image.fromarray(np.dstack([grey, alpha]), mode="LA").save(image)
    write_pixels(mask, hole_mask(grey.shape))

    run(trained_checkpoint("ipn"), image, output, f"mask={mask}")

    check_result(image, output / "la.png", hole_mask(grey.shape) == 0)
    result = read_pixels(output / "la.png")
    assert (result[..., :3] == result[..., :1]).all()


def test_a_grey_photo_with_coloured_damage_is_painted_grey(trained_checkpoint, tmp_path):
    image, mask, output = tmp_path / "bw.png", tmp_path / "mask.png", tmp_path / "out"
    grey = np.random.default_rng(6).integers(0, 256, (37, 45), np.uint8)
    pixels = np.dstack([grey] * 3)
    hole = hole_mask(grey.shape) > 0
    pixels[hole] = (200, 40, 30)  # red scribbles, stored in an RGB file
    write_pixels(image, pixels)
    write_pixels(mask, hole_mask(grey.shape))

    run(trained_checkpoint("ipn"), image, output, f"mask={mask}")

    result = read_pixels(output / "bw.png")
    assert (result == result[..., :1]).all()
    assert np.array_equal(result[~hole], pixels[~hole])


def test_a_reduced_image_blends_the_paint_with_the_full_size_photo(
    trained_checkpoint, tmp_path, monkeypatch
):
    """A blind model that predicts damage 0.3 everywhere and paints grey: each result pixel
    is 0.3 grey + 0.7 of the full-size photo, not of its reduced and upscaled copy."""

    def stub(self, damaged, mask):
        shape = damaged.shape
        return {
            "mask": torch.full((shape[0], 1, *shape[2:]), 0.3),
            "edges": torch.zeros(shape[0], 1, *shape[2:]),
            "output": torch.full(shape, 0.5),
        }

    monkeypatch.setattr("inpaint.inference.Inpainter._run", stub)
    pixels = np.random.default_rng(7).integers(0, 256, (64, 80, 3), np.uint8)
    write_pixels(tmp_path / "photo.png", pixels)

    run(trained_checkpoint("blind"), tmp_path / "photo.png", tmp_path / "out", "max_side=32")

    expected = np.rint((0.3 * 0.5 + 0.7 * pixels / 255) * 255)
    assert np.abs(read_pixels(tmp_path / "out" / "photo.png") - expected).max() <= 1


def test_large_image_is_inpainted_reduced_and_written_full_size(trained_checkpoint, tmp_path):
    image, mask, output = tmp_path / "photo.png", tmp_path / "photo_mask.png", tmp_path / "out"
    pixels = np.random.default_rng(4).integers(0, 256, (64, 80, 3), np.uint8)
    write_pixels(image, pixels)
    write_pixels(mask, 255 - hole_mask(pixels.shape))  # black holes
    overrides = [f"mask={mask}", "mask_invert=true", "max_side=32", "save_mask=true"]

    run(trained_checkpoint("ipn"), image, output, *overrides)

    check_result(image, output / "photo.png", hole_mask(pixels.shape) == 0)
    assert np.array_equal(read_pixels(output / "masks" / "photo.png"), hole_mask(pixels.shape))


def test_missing_or_mismatched_masks_fail_their_image_only(trained_checkpoint, tmp_path):
    source, masks, output = tmp_path / "in", tmp_path / "masks", tmp_path / "out"
    images = {name: photos()["rgb.jpg"] for name in ("a.png", "b.png", "c.png")}
    write_photos(source, images)
    write_pixels(masks / "a.png", hole_mask((36, 45)))
    write_pixels(masks / "b.png", hole_mask((37, 45)))

    report = run(trained_checkpoint("ipn"), source, output, f"mask={masks}")

    assert report.written == [output / "b.png"]
    assert str(masks / "a.png") in report.failed[source / "a.png"]
    assert str(source / "a.png") in report.failed[source / "a.png"]
    assert "no mask for image c.png" in report.failed[source / "c.png"]


def test_a_mask_folder_inside_the_input_folder_is_not_taken_for_inputs(
    trained_checkpoint, tmp_path
):
    source, output = tmp_path / "in", tmp_path / "out"
    write_photos(source, {name: photos()["rgb.jpg"] for name in ("a.png", "b.png")})
    for name in ("a.png", "b.png"):
        write_pixels(source / "masks" / name, hole_mask((37, 45)))

    report = run(trained_checkpoint("ipn"), source, output, f"mask={source / 'masks'}")

    assert report.written == [output / "a.png", output / "b.png"] and not report.failed


def test_refuses_to_overwrite_inputs_or_earlier_results(trained_checkpoint, tmp_path):
    ckpt, source = trained_checkpoint("unet"), tmp_path / "in"
    write_photos(source, {"a.png": photos()["rgb.jpg"], "b.png": photos()["rgb.jpg"]})
    write_pixels(tmp_path / "masks" / "a.png", hole_mask((37, 45)))
    before = snapshot(source)
    for given in (source, source / "a.png"):  # a folder, or one file in it
        with pytest.raises(ValueError, match=r"output=.*in is the folder of the input images"):
            run(ckpt, given, source)
    with pytest.raises(ValueError, match=r"output file .*a\.png is the input file"):
        run(ckpt, source, tmp_path / "masks", f"mask={tmp_path / 'masks'}")
    assert snapshot(source) == before

    run(ckpt, source, tmp_path / "out")
    with pytest.raises(FileExistsError, match=r"a\.png already exists \(2 output files.*overwrite"):
        run(ckpt, source, tmp_path / "out")
    assert len(run(ckpt, source, tmp_path / "out", "overwrite=true").written) == 2


def test_results_inside_the_input_folder_are_not_taken_for_inputs(trained_checkpoint, tmp_path):
    ckpt, source = trained_checkpoint("unet"), tmp_path / "in"
    write_photos(source, {"a.png": photos()["rgb.jpg"], "b.jpg": photos()["rgb.jpg"]})

    first = run(ckpt, source, source / "out")
    again = run(ckpt, source, source / "out", "overwrite=true")

    assert (
        sorted(first.written)
        == sorted(again.written)
        == [source / "out/a.png", source / "out/b.png"]
    )
    assert sorted(p.name for p in source.rglob("*.png")) == ["a.png", "a.png", "b.png"]


def test_its_logs_go_under_the_log_dir_in_single_runs_and_sweeps():
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(PREDICT_CONF_DIR), version_base="1.3"):
        cfg = compose("predict", ["paths.log_dir=/logs"], return_hydra_config=True)
    assert cfg.hydra.run.dir.startswith("/logs/predict/runs/")
    assert cfg.hydra.sweep.dir.startswith("/logs/predict/multiruns/")  # not ./multirun


def test_refuses_configs_that_cannot_work(trained_checkpoint, tmp_path, monkeypatch):
    write_photos(tmp_path / "in", {"a.png": photos()["rgb.jpg"]})
    ipn = trained_checkpoint("ipn")
    with pytest.raises(ValueError, match="ckpt_path is required"):
        predict(
            compose_config("predict", [f"input={tmp_path}", f"output={tmp_path}"], PREDICT_CONF_DIR)
        )
    with pytest.raises(FileNotFoundError, match="input=.*nowhere does not exist"):
        run(ipn, tmp_path / "nowhere", tmp_path / "out")
    with pytest.raises(IsADirectoryError, match="ckpt_path=.* is a folder: give a checkpoint"):
        run(tmp_path, tmp_path / "in", tmp_path / "out")
    with pytest.raises(ValueError, match=r"mask must be a file or folder path.*mask_invert=true"):
        run(ipn, tmp_path / "in", tmp_path / "out", "+mask.invert=true")
    with pytest.raises(FileNotFoundError, match="mask=2024 does not exist"):  # read as a number
        run(ipn, tmp_path / "in", tmp_path / "out", "mask=2024")
    with pytest.raises(ValueError, match="is one file but input=.* is a folder"):
        run(ipn, tmp_path / "in", tmp_path / "out", f"mask={tmp_path / 'in' / 'a.png'}")
    for given in (tmp_path / "in", tmp_path / "in" / "a.png"):  # a folder, or one file in it
        with pytest.raises(ValueError, match=r"mask=.*in is the folder of the input images"):
            run(ipn, given, tmp_path / "out", f"mask={tmp_path / 'in'}")
    with pytest.raises(NotADirectoryError, match=r"output=.*a\.png is a file"):
        run(ipn, tmp_path / "in", tmp_path / "in" / "a.png")
    with pytest.raises(ValueError, match=r"needs mask=FILE_OR_DIR"):
        run(ipn, tmp_path / "in", tmp_path / "out")
    joint = SimpleNamespace(kind="joint_epn_mpn", paints=False)
    monkeypatch.setattr(Inpainter, "from_checkpoint", staticmethod(lambda path, **_: joint))
    with pytest.raises(ValueError, match="paints nothing; use a blind, ipn or unet checkpoint"):
        run(ipn, tmp_path / "in", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_command_writes_what_it_can_and_exits_nonzero_on_a_broken_file(
    trained_checkpoint, tmp_path
):
    """In a sweep too: each job writes what it can, and the command fails at the end."""
    source, outputs = tmp_path / "in", [tmp_path / "out0", tmp_path / "out1"]
    write_photos(source, {"good.png": photos()["rgb.jpg"]})
    (source / "broken.png").write_bytes(b"not an image")
    arguments = [
        f"ckpt_path={trained_checkpoint('unet')}",
        f"input={source}",
        f"output={outputs[0]},{outputs[1]}",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
    ]

    result = subprocess.run(
        [sys.executable, "-m", "inpaint.predict", "-m", *arguments],
        cwd=ROOT,
        env={**os.environ, **QUIET_OFFLINE},
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 1, result.stderr[-3000:]
    assert result.stdout.count("1 of 2 images failed") == 2 and "broken.png" in result.stdout
    assert "images failed in 2 jobs" in result.stdout
    for job, output in enumerate(outputs):
        assert read_pixels(output / "good.png").shape == (37, 45, 3)
        log_text = (tmp_path / "sweep" / str(job) / "predict.log").read_text()
        assert re.search(f"started with overrides: .*output={output}\n", log_text)
        assert "broken.png" in log_text


def test_a_refused_command_says_why_in_its_log_file(tmp_path):
    missing = tmp_path / "nowhere.ckpt"
    arguments = [f"ckpt_path={missing}", f"input={tmp_path}", f"output={tmp_path / 'out'}"]
    result = subprocess.run(
        [sys.executable, "-m", "inpaint.predict", *arguments, f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=ROOT,
        env={**os.environ, **QUIET_OFFLINE},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    log_text = (tmp_path / "run" / "predict.log").read_text()
    assert f"failed: FileNotFoundError: ckpt_path={missing} does not exist" in log_text


class FakeNetwork:
    """An Inpainter stand-in: `respond(damaged, mask)` gives the result dict; each call's
    inputs are kept in `seen`."""

    def __init__(self, kind, respond):
        self.kind, self.respond, self.seen = kind, respond, []
        self.paints, self.needs_mask, self.intact_below = True, kind == "ipn", 0.1

    def __call__(self, damaged, mask=None):
        self.seen.append((damaged, mask))
        return self.respond(damaged, mask)


def fake_network(monkeypatch, tmp_path, kind, respond) -> tuple[Path, FakeNetwork]:
    """A checkpoint path whose loading gives a FakeNetwork of that kind."""
    network = FakeNetwork(kind, respond)
    monkeypatch.setattr(Inpainter, "from_checkpoint", staticmethod(lambda path, **_: network))
    ckpt = tmp_path / "fake.ckpt"
    ckpt.write_bytes(b"")
    return ckpt, network


def paint_given_hole(colour):
    """An IPN that paints `colour` where its mask is a hole and keeps its input elsewhere."""

    def respond(damaged, mask):
        paint = torch.tensor(colour, dtype=torch.float32)[None, :, None, None]
        output = torch.where(mask > 0, paint, damaged)
        return {"output": output, "paint": output, "mask": mask}

    return respond


def test_a_long_image_is_reduced_by_its_longer_side(monkeypatch, tmp_path):
    ckpt, network = fake_network(monkeypatch, tmp_path, "ipn", paint_given_hole((1.0, 1.0, 1.0)))
    height, width, max_side = 40, 200, 32
    write_pixels(tmp_path / "wide.png", np.zeros((height, width, 3), np.uint8))
    write_pixels(tmp_path / "mask.png", hole_mask((height, width)))

    run(
        ckpt,
        tmp_path / "wide.png",
        tmp_path / "out",
        f"mask={tmp_path / 'mask.png'}",
        "max_side=32",
    )

    ((damaged, mask),) = network.seen
    reduced = (round(height * max_side / width), max_side)
    assert damaged.shape == (1, 3, *reduced) and mask.shape == (1, 1, *reduced)
    assert read_pixels(tmp_path / "out" / "wide.png").shape == (height, width, 3)


def test_every_pixel_of_a_thin_hole_is_painted_at_reduced_scale(monkeypatch, tmp_path):
    """One-pixel lines and dots, far thinner than a reduced pixel, still reach the network as
    holes: every full-size hole pixel gets paint, every other keeps the black photo."""
    ckpt, _ = fake_network(monkeypatch, tmp_path, "ipn", paint_given_hole((1.0, 1.0, 1.0)))
    mask = np.zeros((64, 80), np.uint8)
    mask[20, 5:70] = mask[30:60, 50] = mask[5, 5] = mask[60, 75] = mask[44, 13] = 255
    write_pixels(tmp_path / "photo.png", np.zeros((64, 80, 3), np.uint8))
    write_pixels(tmp_path / "mask.png", mask)

    run(
        ckpt,
        tmp_path / "photo.png",
        tmp_path / "out",
        f"mask={tmp_path / 'mask.png'}",
        "max_side=32",
    )

    result = read_pixels(tmp_path / "out" / "photo.png")
    assert (result[mask > 0] > 0).all()
    assert (result[mask == 0] == 0).all()


def test_a_float_image_is_written_16_bit(monkeypatch, tmp_path):
    ckpt, _ = fake_network(monkeypatch, tmp_path, "ipn", paint_given_hole((0.25, 0.5, 0.75)))
    pixels = np.random.default_rng(8).random((37, 45, 3)).astype(np.float32)
    write_pixels(tmp_path / "float.tif", pixels)
    write_pixels(tmp_path / "mask.png", hole_mask(pixels.shape))
    hole = hole_mask(pixels.shape) > 0

    run(ckpt, tmp_path / "float.tif", tmp_path / "out", f"mask={tmp_path / 'mask.png'}")

    result = read_pixels(tmp_path / "out" / "float.png")
    assert result.dtype == np.uint16 and result.shape == pixels.shape
    assert np.array_equal(result[~hole], np.rint(pixels[~hole] * 65535).astype(np.uint16))
    painted = np.rint(np.array([0.25, 0.5, 0.75]) * 65535)
    assert np.array_equal(result[hole], np.broadcast_to(painted, result[hole].shape))


def test_a_grey_photo_gets_the_luminance_of_a_coloured_paint(monkeypatch, tmp_path):
    """Grey results are the paint's luminance, 0.299 R + 0.587 G + 0.114 B."""
    colour = (0.9, 0.5, 0.1)
    ckpt, _ = fake_network(monkeypatch, tmp_path, "ipn", paint_given_hole(colour))
    grey = np.random.default_rng(9).integers(0, 256, (37, 45), np.uint8)
    write_pixels(tmp_path / "grey.png", grey)
    write_pixels(tmp_path / "mask.png", hole_mask(grey.shape))
    hole = hole_mask(grey.shape) > 0

    run(ckpt, tmp_path / "grey.png", tmp_path / "out", f"mask={tmp_path / 'mask.png'}")

    result = read_pixels(tmp_path / "out" / "grey.png")
    luminance = np.dot([0.299, 0.587, 0.114], colour) * 255
    assert result.shape == grey.shape and np.array_equal(result[~hole], grey[~hole])
    assert np.abs(result[hole].astype(float) - luminance).max() <= 1


def test_an_upscaled_predicted_mask_blends_between_photo_and_paint(monkeypatch, tmp_path):
    """A blind model that predicts a sharp-edged hole (right half) at reduced scale: each result
    pixel lies between the photo's and the paint's value, bicubic overshoot or not."""

    def respond(damaged, mask):
        predicted = torch.zeros(damaged.shape[0], 1, *damaged.shape[2:])
        predicted[..., damaged.shape[-1] // 2 :] = 1.0
        paint = torch.full(damaged.shape, 0.5)
        return {"output": paint, "paint": paint, "mask": predicted, "edges": predicted}

    ckpt, _ = fake_network(monkeypatch, tmp_path, "blind", respond)
    pixels = np.random.default_rng(10).integers(0, 256, (64, 80, 3), np.uint8)
    write_pixels(tmp_path / "photo.png", pixels)

    run(ckpt, tmp_path / "photo.png", tmp_path / "out", "max_side=32")

    result = read_pixels(tmp_path / "out" / "photo.png").astype(int)
    paint = np.rint(0.5 * 255)
    assert (result >= np.minimum(pixels, paint) - 1).all()
    assert (result <= np.maximum(pixels, paint) + 1).all()
    assert (result[:, -10:] == paint).all() and np.array_equal(result[:, :10], pixels[:, :10])


@pytest.mark.parametrize("error", [ValueError, RuntimeError, torch.OutOfMemoryError])
def test_a_batch_the_network_refuses_is_reported_and_the_other_batches_written(
    monkeypatch, tmp_path, caplog, error
):
    """Images are batched by size; a network error in one batch (a refusal, memory running
    out on the CPU or the GPU) skips its images only."""
    paint = paint_given_hole((1.0, 1.0, 1.0))

    def respond(damaged, mask):
        if damaged.shape[-1] == 30:
            raise error("the network cannot take 30 px wide images")
        return paint(damaged, mask)

    ckpt, _ = fake_network(monkeypatch, tmp_path, "ipn", respond)
    photos, masks = tmp_path / "photos", tmp_path / "masks"
    for name, shape in {"a.png": (20, 30), "b.png": (20, 40), "c.png": (20, 30)}.items():
        write_pixels(photos / name, np.zeros((*shape, 3), np.uint8))
        write_pixels(masks / name, hole_mask(shape))
    (photos / "0.png").write_bytes(b"not an image")  # an image's own problem, first
    with caplog.at_level(logging.ERROR, logger="inpaint.predict"):
        report = run(ckpt, photos, tmp_path / "out", f"mask={masks}", "batch_size=4")
    assert sorted(path.name for path in report.failed) == ["0.png", "a.png", "c.png"]
    reason = f"{error.__name__}: the network cannot take 30 px wide images"
    assert {report.failed[photos / name] for name in ("a.png", "c.png")} == {reason}
    # The network's error (not an image's own problem) shows its traceback, once.
    tracebacks = [record for record in caplog.records if record.exc_info]
    assert len(tracebacks) == (0 if error is ValueError else 1)
    assert [path.name for path in report.written] == ["b.png"]
    assert read_pixels(tmp_path / "out" / "b.png").shape == (20, 40, 3)


def test_an_image_whose_mask_cannot_be_written_leaves_no_file_and_can_be_run_again(
    monkeypatch, tmp_path
):
    ckpt, _ = fake_network(monkeypatch, tmp_path, "ipn", paint_given_hole((1.0, 1.0, 1.0)))
    photos, masks, out = tmp_path / "photos", tmp_path / "masks", tmp_path / "out"
    for name in ("a.png", "b.png"):
        write_pixels(photos / name, np.zeros((16, 16, 3), np.uint8))
        write_pixels(masks / name, hole_mask((16, 16)))
    write_image = predict_module.write_image

    def full_disk_for_b(path, image):
        if path.name == "b.png":
            raise OSError(f"cannot write image file: {path}")
        write_image(path, image)

    monkeypatch.setattr(predict_module, "write_image", full_disk_for_b)
    report = run(ckpt, photos, out, f"mask={masks}", "save_mask=true")
    assert [path.name for path in report.failed] == ["b.png"]
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.png")) == ["a.png", "masks/a.png"]
    monkeypatch.setattr(predict_module, "write_image", write_image)
    again = run(ckpt, photos / "b.png", out, f"mask={masks / 'b.png'}", "save_mask=true")
    assert not again.failed and (out / "b.png").is_file() and (out / "masks" / "b.png").is_file()


def test_an_image_whose_only_namesake_mask_is_another_images_is_reported(monkeypatch, tmp_path):
    """pair.png's mask is not pair.jpg's: pair.jpg, with no mask of its own, is skipped."""
    ckpt, _ = fake_network(monkeypatch, tmp_path, "ipn", paint_given_hole((1.0, 1.0, 1.0)))
    photos, masks = tmp_path / "photos", tmp_path / "masks"
    for name in ("pair.png", "pair.jpg"):
        write_pixels(photos / name, np.zeros((16, 16, 3), np.uint8))
    write_pixels(masks / "pair.png", hole_mask((16, 16)))
    report = run(ckpt, photos, tmp_path / "out", f"mask={masks}")
    assert [path.name for path in report.failed] == ["pair.jpg"]
    assert "no mask for image pair.jpg" in report.failed[photos / "pair.jpg"]
    assert [path.name for path in report.written] == ["pair.png"]


def test_non_png_inputs_of_one_stem_get_distinct_names():
    """a.jpeg takes a.png; a.jpg, whose .png name is now taken, gets a.jpg.png."""
    assert output_names([Path("a.jpeg"), Path("a.jpg")]) == [Path("a.png"), Path("a.jpg.png")]


def test_a_result_that_would_land_on_a_saved_mask_is_refused(monkeypatch, tmp_path):
    """in/masks/x.png's result and in/x.png's saved mask are both out/masks/x.png."""
    ckpt, _ = fake_network(monkeypatch, tmp_path, "blind", lambda damaged, mask: {})
    source = tmp_path / "in"
    for name in ("x.png", "masks/x.png"):
        write_pixels(source / name, np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match=r"two results would be written to .*masks/x\.png"):
        run(ckpt, source, tmp_path / "out", "save_mask=true")
    assert not (tmp_path / "out").exists()


def test_saved_masks_and_edges_are_the_networks_own(monkeypatch, tmp_path):
    def respond(damaged, mask):
        count, _, height, width = damaged.shape
        predicted = torch.zeros(count, 1, height, width)
        predicted[..., : width // 2] = 1.0
        edges = torch.zeros(count, 1, height, width)
        edges[..., height // 2, :] = 1.0
        paint = torch.full(damaged.shape, 0.5)
        return {"output": paint, "paint": paint, "mask": predicted, "edges": edges}

    ckpt, _ = fake_network(monkeypatch, tmp_path, "blind", respond)
    write_pixels(tmp_path / "photo.png", np.zeros((16, 20, 3), np.uint8))
    run(ckpt, tmp_path / "photo.png", tmp_path / "out", "save_mask=true", "save_edges=true")
    mask = read_pixels(tmp_path / "out" / "masks" / "photo.png")
    edges = read_pixels(tmp_path / "out" / "edges" / "photo.png")
    assert (mask[:, :10] == 255).all() and (mask[:, 10:] == 0).all()
    assert (edges[8] == 255).all() and (np.delete(edges, 8, axis=0) == 0).all()


def test_an_overwriting_run_removes_the_earlier_results_of_an_image_that_fails_now(
    monkeypatch, tmp_path
):
    """With overwrite=true a failed image keeps none of its files, an earlier run's neither:
    left, they would pass for this run's."""
    ckpt, _ = fake_network(monkeypatch, tmp_path, "ipn", paint_given_hole((1.0, 1.0, 1.0)))
    photos, masks, out = tmp_path / "photos", tmp_path / "masks", tmp_path / "out"
    for name in ("a.png", "b.png"):
        write_pixels(photos / name, np.zeros((16, 16, 3), np.uint8))
        write_pixels(masks / name, hole_mask((16, 16)))
    run(ckpt, photos, out, f"mask={masks}", "save_mask=true")
    (photos / "b.png").write_bytes(b"not an image any more")
    report = run(ckpt, photos, out, f"mask={masks}", "save_mask=true", "overwrite=true")
    assert [path.name for path in report.failed] == ["b.png"]
    assert sorted(p.relative_to(out) for p in out.rglob("*.png")) == [
        Path("a.png"),
        Path("masks/a.png"),
    ]
