"""The preview and benchmark commands produce their files and sane numbers."""

from __future__ import annotations

import json
import re

import cv2
import kornia
import pytest
from omegaconf import open_dict

from inpaint import bench, devices, preview
from inpaint.config import compose_config, mask_generator_names
from tests.conftest import TINY_MODELS, run_module


def test_preview_writes_a_grid_and_prints_hole_statistics_within_bounds(tmp_path):
    result = run_module(
        "inpaint.preview",
        "mask=square",
        "mask.min_ratio=0.1",
        "mask.max_ratio=0.3",
        "count=50",
        "rows=4",
        f"hydra.run.dir={tmp_path}",
        "hydra/job_logging=disabled",  # a user's logging choice replaces the project's whole
        timeout=120,
    )
    grid = cv2.imread(str(tmp_path / "preview.png"))
    assert grid is not None and grid.shape[0] > grid.shape[1]  # 4 rows of 3 columns
    found = re.search(r"mean ([\d.]+)\s+min ([\d.]+)\s+max ([\d.]+)", result.stdout)
    mean, low, high = map(float, found.groups())
    assert 0.1 <= low <= mean <= high <= 0.3


@pytest.mark.parametrize(
    ("override", "error"),
    [
        ("rows=0", "rows must be >= 1"),
        ("count=0", "count must be >= 1"),
        ("split=tset", "split must be one of"),
    ],
)
def test_preview_names_a_bad_setting(tmp_path, override, error):
    cfg = compose_config("preview", [override])
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path)
    with pytest.raises(ValueError, match=error):
        preview.main(cfg)
    assert not (tmp_path / "preview.png").exists()


def test_bench_times_every_mask_generator_and_both_edge_paths(tmp_path, capsys, monkeypatch):
    canny_calls = []
    canny = kornia.filters.canny
    monkeypatch.setattr(
        kornia.filters, "canny", lambda *a, **k: canny_calls.append(1) or canny(*a, **k)
    )
    output = tmp_path / "bench.json"
    arguments = ["--sections", "masks", "edges", "--size", "64", "--seconds", "0.02"]
    results = bench.main([*arguments, "--output", str(output)])
    assert canny_calls  # the kornia row runs kornia, not OpenCV image by image
    written = json.loads(output.read_text())
    assert written == results
    assert sorted(row["mask"] for row in written["masks"]) == mask_generator_names()
    assert all(row["masks_per_s"] > 0 and row["size"] == 64 for row in written["masks"])
    assert {(row["method"], row["size"]) for row in written["edges"]} == {
        (method, size) for method in ("opencv", "kornia") for size in (64, 256)
    }
    assert "Mask synthesis at 64x64" in capsys.readouterr().out


def test_bench_measures_each_network_in_its_own_process_and_aligns_the_rows(tmp_path, capsys):
    output = tmp_path / "bench.json"
    arguments = ["--sections", "networks", "--networks", "mpn", "--precisions", "32"]
    sizes = ["--network-sizes", "16", "32"]
    bench.main([*arguments, *sizes, "--steps", "1", "--output", str(output)])
    rows = json.loads(output.read_text())["networks"]
    assert [(r["network"], r["size"], r["batch"], r["precision"]) for r in rows] == [
        ("mpn", 16, 8, "32"),
        ("mpn", 32, 8, "32"),
    ]
    for row in rows:
        assert row["train_img_per_s"] > 0 and row["infer_ms_per_img"] > 0
        assert row["peak_mem_mib"] >= 0  # above the idle process: a toy network may add nothing
    printed = capsys.readouterr().out.splitlines()
    header = next(i for i, line in enumerate(printed) if "infer_ms_per_img" in line)
    table = printed[header : header + 3]
    column_ends = {tuple(m.end() for m in re.finditer(r"\S+", line)) for line in table}
    assert len(column_ends) == 1  # rows printed as they come still line up under the header


@pytest.mark.parametrize("bf16_kernels", [True, False])
def test_bench_times_the_blind_pipeline_and_its_stages(tmp_path, capsys, monkeypatch, bf16_kernels):
    monkeypatch.setattr(devices, "cpu_computes_bf16", lambda: bf16_kernels)
    output = tmp_path / "bench.json"
    arguments = ["--sections", "pipeline", "--pipeline-size", "32", "--seconds", "0"]
    overrides = ["--pipeline-overrides", *TINY_MODELS["blind"]]
    bench.main([*arguments, *overrides, "--output", str(output)])
    rows = json.loads(output.read_text())["pipeline"]
    # bf16 is timed by default only where the CPU has bf16 kernels, and says so otherwise.
    expected = [("32", 32), ("bf16", 32)] if bf16_kernels else [("32", 32)]
    assert [(row["precision"], row["size"]) for row in rows] == expected
    for row in rows:
        stages = [row["mpn_ms"], row["epn_ms"], row["ipn_ms"]]
        assert min(stages) > 0
        assert sum(stages) == pytest.approx(row["ms_per_image"])
        assert row["peak_mem_mib"] >= 0
    printed = capsys.readouterr().out
    assert "Blind pipeline" in printed
    assert ("bf16 left out: this CPU has no bf16 kernels" in printed) != bf16_kernels


def failing_measurement(queue):
    raise ValueError("a measurement that fails")


def test_a_failing_measurement_is_an_error_not_a_hang():
    with pytest.raises(RuntimeError, match=r"failing_measurement\(\) failed .*exit code 1"):
        bench.measure_in_child(failing_measurement)
    with pytest.raises(SystemExit):
        bench.main(["--sections", "networks", "--precisions", "16-mixed"])


def test_bench_refuses_a_pipeline_size_beyond_the_sample_photo(capsys):
    with pytest.raises(SystemExit):
        bench.main(["--sections", "pipeline", "--pipeline-size", "768"])
    assert "--pipeline-size must be 1 to 512" in capsys.readouterr().err
