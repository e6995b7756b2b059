"""`inpaint.tables` on a real (tiny) multirun: two experiments x two seeds."""

from __future__ import annotations

import csv
import json
import shutil
import statistics

import pytest
from omegaconf import OmegaConf

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
    assert "in neither table" not in markdown and "no job folder" not in markdown


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


# -- job folders written by hand: known numbers in, the tables' numbers checked ------------
def fake_job(folder, experiment, seed, metrics=None, overrides=None, data="samples"):
    """A job folder as a multirun leaves it (what inpaint.tables reads of it); no metrics:
    a failed job."""
    hydra = folder / ".hydra"
    hydra.mkdir(parents=True)
    (hydra / "config.yaml").write_text(f"task_name: {experiment}\nseed: {seed}\n")
    (hydra / "hydra.yaml").write_text(f"hydra:\n  runtime:\n    choices:\n      data: {data}\n")
    given = overrides or [f"experiment={experiment}", f"seed={seed}"]
    (hydra / "overrides.yaml").write_text("".join(f"- {o}\n" for o in given))
    if metrics is not None:
        (folder / "metrics.json").write_text(json.dumps(metrics))


EPN_RUNS = {1: (20.0, 0.80), 2: (22.5, 0.90), 3: (21.0, 0.83)}  # seed: (edge PSNR, SSIM)


def epn_sweep(root, overrides=lambda seed: None):
    """Three EPN seeds that ran and one that failed."""
    for index, (seed, (psnr, ssim)) in enumerate(EPN_RUNS.items()):
        metrics = {"test/edge_psnr": psnr, "test/edge_ssim": ssim}
        fake_job(root / str(index), "epn", seed, metrics, overrides(seed))
    fake_job(root / "3", "epn", 4, None, overrides(4))
    return root


def mean_and_spread(values, digits):
    """mean ± sample standard deviation (n - 1), as a paper's table gives them."""
    mean = sum(values) / len(values)
    std = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5
    return mean, std, f"{mean:.{digits}f} ± {std:.{digits}f}"


def test_table_cells_hold_mean_and_sample_std_of_psnr_and_ssim(tmp_path):
    written = tables.main([str(epn_sweep(tmp_path / "sweep")), "--output", str(tmp_path)])
    psnr = [p for p, _ in EPN_RUNS.values()]
    ssim = [s for _, s in EPN_RUNS.values()]
    psnr_mean, psnr_std, psnr_text = mean_and_spread(psnr, 2)
    ssim_mean, ssim_std, ssim_text = mean_and_spread(ssim, 3)
    for name in ("table1", "table2"):
        (row,) = list(csv.DictReader(written[name].open()))
        assert row["row"] == "EPN" and row["data"] == "samples"
        assert float(row["psnr_mean"]) == pytest.approx(psnr_mean, abs=1e-4)
        assert float(row["psnr_std"]) == pytest.approx(psnr_std, abs=1e-4)
        assert float(row["ssim_mean"]) == pytest.approx(ssim_mean, abs=1e-4)
        assert float(row["ssim_std"]) == pytest.approx(ssim_std, abs=1e-4)
        assert (row["runs"], row["failed"]) == ("3", "1")  # runs: those with numbers
    markdown = written["markdown"].read_text()
    line = f"| EPN | {psnr_text} (1 failed) | {ssim_text} (1 failed) |"
    assert markdown.count(line) == 2, markdown  # Table 1 and Table 2


def test_a_job_run_with_seed_null_counts_as_failed(tmp_path):
    """inpaint.run refuses `seed=null`; its job folder holds a config but no metrics."""
    sweep = epn_sweep(tmp_path / "sweep")
    shutil.rmtree(sweep / "3")
    fake_job(sweep / "3", "epn", "null")
    written = tables.main([str(sweep), "--output", str(tmp_path)])
    (row,) = list(csv.DictReader(written["table2"].open()))
    assert (row["runs"], row["failed"]) == ("3", "1")


def test_jobs_with_a_metric_missing_or_not_finite_count_as_failed_and_are_named(tmp_path):
    """A diverged run writes NaN (the standard deviation of two NaNs raised), a run tested on
    no batch writes no key (it was counted as failed, but named nowhere)."""
    sweep = epn_sweep(tmp_path / "sweep")
    for index, metrics in (
        (0, {"test/edge_psnr": float("nan"), "test/edge_ssim": 0.5}),
        (1, {"test/edge_psnr": 20.0}),
    ):
        (sweep / str(index) / "metrics.json").write_text(json.dumps(metrics))
    written = tables.main([str(sweep), "--output", str(tmp_path)])
    (row,) = list(csv.DictReader(written["table2"].open()))
    assert (row["runs"], row["failed"]) == ("1", "3")
    assert float(row["psnr_mean"]) == EPN_RUNS[3][0]
    markdown = written["markdown"].read_text()
    assert f"- failed (test/edge_psnr is nan): {sweep / '0'}" in markdown
    assert f"- failed (metrics.json lacks test/edge_ssim): {sweep / '1'}" in markdown
    assert f"- failed (no metrics.json): {sweep / '3'}" in markdown


@pytest.mark.parametrize("experiment", ["mpn", "ipn", "joint_epn_mpn"])
@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")])
def test_a_not_finite_row_metric_of_every_experiment_is_named(tmp_path, experiment, value):
    _, psnr_key, ssim_key = {**tables.TABLE1, **tables.TABLE2}[experiment]
    fake_job(tmp_path / "0", experiment, 1, {psnr_key: value, ssim_key: 0.5})
    fake_job(tmp_path / "1", experiment, 2, {psnr_key: 20.0, ssim_key: 0.8})
    written = tables.main([str(tmp_path), "--output", str(tmp_path / "out")])
    markdown = written["markdown"].read_text()
    assert f"- failed ({psnr_key} is {value}): {tmp_path / '0'}" in markdown
    assert "(1 failed)" in markdown


def test_a_predict_run_beside_the_sweep_is_in_neither_table(tmp_path):
    """inpaint.predict records its job in .hydra too, with no data group."""
    sweep = epn_sweep(tmp_path / "sweep")
    hydra = sweep / "predict" / ".hydra"
    hydra.mkdir(parents=True)
    (hydra / "config.yaml").write_text("task_name: predict\nckpt_path: x.ckpt\n")
    (hydra / "hydra.yaml").write_text("hydra:\n  runtime:\n    choices:\n      device: auto\n")
    (hydra / "overrides.yaml").write_text("- ckpt_path=x.ckpt\n")
    written = tables.main([str(sweep), "--output", str(tmp_path)])
    (row,) = list(csv.DictReader(written["table2"].open()))
    assert (row["runs"], row["failed"]) == ("3", "1")
    assert f"- in neither table (task_name=predict): {sweep / 'predict'}" in (
        written["markdown"].read_text()
    )


def test_a_seed_given_as_a_plus_override_is_still_a_seed(tmp_path):
    """`+seed=N` (or `~seed`) picks a repeat like `seed=N`: the jobs are seeds of one setting."""
    sweep = epn_sweep(tmp_path / "sweep", lambda seed: ["experiment=epn", f"+seed={seed}"])
    written = tables.main([str(sweep), "--output", str(tmp_path)])
    (row,) = list(csv.DictReader(written["table2"].open()))
    assert (row["runs"], row["failed"]) == ("3", "1")
    assert tables.other_settings(["+seed=3", "~seed", "+data=x", "model.g_lr=0.1"]) == (
        "model.g_lr=0.1",
    )


def test_a_job_folder_missing_from_the_sweep_is_listed(multirun, tmp_path):
    """A job killed before it started (or still queued) has no folder: multirun.yaml says
    which jobs the sweep asked for."""
    copy = tmp_path / "copy"
    shutil.copytree(multirun, copy)
    gone = []
    for job in ("0", "3"):  # the first and the last
        gone.append(" ".join(OmegaConf.load(copy / job / ".hydra" / "overrides.yaml")))
        shutil.rmtree(copy / job)
    written = tables.main([str(copy), "--output", str(tmp_path / "out")])
    notes = [
        line for line in written["markdown"].read_text().split("\n") if "no job folder" in line
    ]
    assert notes == [
        f"- no job folder (killed before it started, or still queued): {g}" for g in gone
    ]


def test_two_experiment_files_of_one_task_are_not_averaged_as_seeds(tmp_path):
    """A variant experiment that inherits the EPN's task_name is another setting, not a seed."""
    fake_job(tmp_path / "0", "epn", 1, {"test/edge_psnr": 20.0, "test/edge_ssim": 0.8})
    variant = ["experiment=epn_gated", "seed=2"]
    fake_job(tmp_path / "1", "epn", 2, {"test/edge_psnr": 25.0, "test/edge_ssim": 0.9}, variant)
    with pytest.raises(ValueError, match=r"differ in more than the seed: .*experiment=epn_gated"):
        tables.main([str(tmp_path)])


def test_a_job_of_a_task_in_neither_table_is_listed(tmp_path):
    sweep = epn_sweep(tmp_path / "sweep")
    # Two jobs of it that differ in more than the seed (an Optuna search's trials) are no
    # cell of a table: they are listed, not refused as repeats.
    for index, lr in ((4, "0.1"), (5, "0.01")):
        overrides = ["experiment=epn_lr_test", f"model.lr={lr}"]
        metrics = {"test/edge_psnr": 30.0, "test/edge_ssim": 0.9}
        fake_job(sweep / str(index), "epn_lr_test", 1, metrics, overrides)
    written = tables.main([str(sweep), "--output", str(tmp_path)])
    (row,) = list(csv.DictReader(written["table2"].open()))
    assert (row["runs"], row["failed"]) == ("3", "1")
    markdown = written["markdown"].read_text()
    for index in (4, 5):
        assert f"- in neither table (task_name=epn_lr_test): {sweep / str(index)}" in markdown
    fake_only = tmp_path / "only"
    fake_job(fake_only / "0", "epn_lr_test", 1, {"test/edge_psnr": 30.0})
    fake_job(fake_only / "1", "epn_lr_test", 1, {"test/edge_psnr": 31.0}, ["model.lr=0.1"])
    with pytest.raises(ValueError, match=r"task_name: \['epn_lr_test'\]"):
        tables.main([str(fake_only)])


def test_an_unreadable_metrics_file_is_named(tmp_path):
    sweep = epn_sweep(tmp_path / "sweep")
    (sweep / "0" / "metrics.json").write_text('{"test/edge_psnr": 2')
    with pytest.raises(ValueError, match=r"sweep/0/metrics.json is not a JSON object"):
        tables.main([str(sweep), "--output", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()


def fake_multirun(root, task, params=None, optuna=False):
    """The part of a sweep's multirun.yaml that inpaint.tables reads."""
    target = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"
    if optuna:
        target = "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper"
    sweeper = {"_target_": target}
    hydra = {"sweeper": {**sweeper, "params": params}, "overrides": {"task": task}}
    OmegaConf.save({"hydra": hydra}, root / "multirun.yaml")


JOB_OVERRIDES = {  # how a seed's job folder holds its overrides
    "plain": lambda seed: None,
    # resumed in place: ckpt_path too
    "resumed": lambda seed: ["experiment=epn", f"seed={seed}", "ckpt_path=/run/last.ckpt"],
    # one job's checkpoint tested again in place (a repair of a failed test)
    "tested": lambda seed: (
        ["experiment=epn", f"seed={seed}"]
        + (["train=false", "ckpt_path=/b.ckpt"] if seed == 1 else [])
    ),
    # ${...} given on the command line: escaped in the job folders
    "interpolation": lambda seed: ["experiment=epn", "lr=$\\{g.lr\\}", f"seed={seed}"],
}


@pytest.mark.parametrize(
    "task, params, held, missing",
    [
        # seeds from a config's hydra.sweeper.params, one of them never started
        (["experiment=epn"], {"seed": "1,2,3,4,5"}, "plain", ["seed=5 experiment=epn"]),
        (["experiment=epn", "seed=1,2,3,4"], None, "resumed", []),
        (["experiment=epn", "seed=1,2,3,4"], None, "tested", []),
        (["experiment=epn", "lr=${g.lr}", "seed=1,2,3,4"], None, "interpolation", []),
        # glob(...) needs the configs to expand: not listed, and no error
        (["experiment=epn", "data=glob(sa*)", "seed=1,2,3,4"], None, "plain", []),
        # an Optuna search's trials are not planned up front: not listed
        (["experiment=epn"], {"seed": "range(1,9)"}, "plain", "optuna"),
    ],
)
def test_jobs_without_folder_as_the_basic_sweeper_plans_them(tmp_path, task, params, held, missing):
    sweep = epn_sweep(tmp_path / "sweep", JOB_OVERRIDES[held])
    optuna = missing == "optuna"
    fake_multirun(sweep, task, params, optuna)
    missing = [] if optuna else missing
    written = tables.main([str(sweep), "--output", str(tmp_path / "out")])
    notes = [
        line for line in written["markdown"].read_text().split("\n") if "no job folder" in line
    ]
    assert [note.split(": ", 1)[1] for note in notes] == missing


def test_the_chart_error_bars_are_the_sample_std(tmp_path, monkeypatch):
    import matplotlib.axes

    errors = []
    bar = matplotlib.axes.Axes.bar

    def recording(self, *args, yerr=None, **kwargs):
        errors.append(yerr)
        return bar(self, *args, yerr=yerr, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "bar", recording)
    cell = tables.Cell([1.0, 2.0, 3.0])
    tables.bar_chart(tmp_path / "t.png", [("Table 1", ["psv"], {"IPN": {"psv": cell}})])
    assert errors == [[1.0]] and (tmp_path / "t.png").is_file()
