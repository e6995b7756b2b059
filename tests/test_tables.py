"""`inpaint.tables` on a real (tiny) multirun: two experiments x two seeds."""

from __future__ import annotations

import csv
import json
import shutil
import statistics

import pytest

from inpaint import tables
from tests.conftest import TINY_MODELS, run_module

# Experiments at toy widths, added to the real ones through Hydra's search path.
TINY_EXPERIMENT = """# @package _global_
defaults:
  - /experiment/{name}
{overrides}
"""


def tiny_experiment_dir(tmp_path):
    folder = tmp_path / "conf" / "experiment"
    folder.mkdir(parents=True)
    for name in ("epn", "joint_epn_mpn"):
        lines = []
        for override in TINY_MODELS[name]:
            key, value = override.split("=")
            lines.append(f"{key}: {value}")
        nested = "\n".join(_nest(lines))
        (folder / f"tiny_{name}.yaml").write_text(
            TINY_EXPERIMENT.format(name=name, overrides=nested)
        )
    return tmp_path / "conf"


def _nest(lines: list[str]) -> list[str]:
    """`a.b.c: v` lines as one nested YAML mapping."""
    tree: dict = {}
    for line in lines:
        key, value = line.split(": ")
        node = tree
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value

    def render(node, depth):
        for key, value in node.items():
            if isinstance(value, dict):
                yield "  " * depth + f"{key}:"
                yield from render(value, depth + 1)
            else:
                yield "  " * depth + f"{key}: {value}"

    return list(render(tree, 0))


@pytest.fixture(scope="module")
def multirun(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("sweep")
    conf = tiny_experiment_dir(tmp_path)
    logs = tmp_path / "logs"
    run_module(
        "inpaint.run",
        "-m",
        "experiment=tiny_epn,tiny_joint_epn_mpn",
        "seed=1,2",
        "debug=fast",
        "data.image_size=32",
        f"hydra.searchpath=[file://{conf}]",
        f"paths.log_dir={logs}",
        timeout=600,
    )
    # The default sweep folder: every job of the sweep in it, whatever its experiment's
    # task name, as `inpaint.tables` expects.
    (sweep,) = (logs / "multiruns").iterdir()
    assert sorted(path.name for path in sweep.iterdir() if path.is_dir()) == ["0", "1", "2", "3"]
    return sweep


def job_metrics(sweep, task):
    values = []
    for path in sorted(sweep.glob("*/metrics.json")):
        config = (path.parent / ".hydra" / "config.yaml").read_text()
        if f"task_name: {task}\n" in config:
            values.append(json.loads(path.read_text()))
    return values


def test_tables_hold_the_jobs_numbers(multirun, tmp_path):
    written = tables.main([str(multirun), "--output", str(tmp_path)])
    rows = {row["row"]: row for row in csv.DictReader(written["table2"].open())}
    assert set(rows) == {"EPN", "EPN+MPN"}
    for label, task in (("EPN", "epn"), ("EPN+MPN", "joint_epn_mpn")):
        runs = job_metrics(multirun, task)
        assert len(runs) == 2
        psnr = [run["test/edge_psnr"] for run in runs]
        assert float(rows[label]["psnr_mean"]) == pytest.approx(statistics.fmean(psnr), abs=1e-4)
        assert float(rows[label]["psnr_std"]) == pytest.approx(statistics.stdev(psnr), abs=1e-4)
        assert rows[label]["data"] == "samples" and rows[label]["runs"] == "2"
    table1 = {row["row"] for row in csv.DictReader(written["table1"].open())}
    assert table1 == {"EPN"}
    markdown = written["markdown"].read_text()
    assert "## Table 2" in markdown and "| EPN+MPN |" in markdown and "samples PSNR" in markdown
    assert written["chart"].stat().st_size > 1000


def test_a_failed_job_is_reported_not_dropped(multirun, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(multirun, copy)
    broken = next(p for p in sorted(copy.glob("*/metrics.json")))
    broken.unlink()
    written = tables.main([str(copy), "--output", str(tmp_path / "out")])
    markdown = written["markdown"].read_text()
    assert "failed" in markdown and str(broken.parent) in markdown
    rows = list(csv.DictReader(written["table2"].open()))
    assert sum(int(row["failed"]) for row in rows) == 1


def test_not_a_sweep_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="holds no Hydra job folders"):
        tables.main([str(tmp_path)])
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        tables.main([str(tmp_path / "mistyped")])
    assert not (tmp_path / "mistyped").exists()


def test_jobs_that_differ_in_more_than_the_seed_are_refused(multirun, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(multirun, copy)
    job = next(path.parent.parent for path in sorted(copy.glob("*/.hydra/overrides.yaml")))
    overrides = job / ".hydra" / "overrides.yaml"
    overrides.write_text(overrides.read_text() + "- model.g_lr=0.1\n")
    with pytest.raises(ValueError, match=r"differ in more than the seed: .*model.g_lr=0.1"):
        tables.main([str(copy), "--output", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()


def test_a_seed_run_twice_is_refused(multirun, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(multirun, copy)
    shutil.copytree(copy / "0", copy / "4")
    with pytest.raises(ValueError, match=r"repeat seed=1 \(.*/0, .*/4\)"):
        tables.main([str(copy)])
