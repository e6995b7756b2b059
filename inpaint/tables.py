"""`python -m inpaint.tables MULTIRUN_DIR`: the paper's Table 1 and Table 2 from a sweep.

Reads every job folder of a Hydra multirun (its `.hydra/` configs and `metrics.json`),
and writes `tables.md`, `table1.csv`, `table2.csv` and `tables.png` (a bar chart) into the
sweep folder, or into `--output`. Several seeds of one (experiment, data set) become
mean and standard deviation; jobs of one (experiment, data set) that differ in another
setting (the experiment file included), or repeat a seed, are refused rather than
averaged. A job without `metrics.json`, or without a finite value of its row's metrics
(a run that diverged writes NaN), is reported as failed; the jobs of the sweep (its
`multirun.yaml`) that have no folder (killed before they started, or still queued) and jobs
of a task in neither table are listed too.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import OmegaConf

# What each experiment's row reports: (row label, PSNR key, SSIM key).
TABLE1 = {
    "mpn": ("MPN", "test/mask_psnr", "test/mask_ssim"),
    "epn": ("EPN", "test/edge_psnr", "test/edge_ssim"),
    "ipn": ("IPN", "test/psnr", "test/ssim"),
}
TABLE2 = {
    "epn": ("EPN", "test/edge_psnr", "test/edge_ssim"),
    "joint_epn_mpn": ("EPN+MPN", "test/edge_psnr", "test/edge_ssim"),
}
# The paper's figures, for comparison (Paris StreetView).
PAPER = {
    ("table1", "EPN", "psv"): (22.21, 0.957),
    ("table1", "IPN", "psv"): (19.15, 0.84),
    ("table2", "EPN", "psv"): (22.21, 0.957),
    ("table2", "EPN+MPN", "psv"): (23.10, 0.975),
}


# Overrides that make no other setting: a table cell's column (data), a repeat of it (seed),
# a resume or a test of the job's checkpoint in its folder (ckpt_path, train=false). The row
# is the job's task_name; `experiment=` stays among the settings compared, so two experiment
# files of one task (a variant that inherits it) are not averaged as seeds of one setting.
NOT_SETTINGS = {"data", "seed", "ckpt_path", "train"}


@dataclass
class Job:
    folder: Path
    experiment: str
    data: str
    seed: int | None  # None: seed=null, which inpaint.run refuses
    metrics: dict[str, float] | None  # None: the job failed
    overrides: tuple[str, ...] = ()  # its command-line overrides, as the sweep gave them

    @property
    def settings(self) -> tuple[str, ...]:
        """Its overrides that make another setting (not data, seed, ckpt_path, train)."""
        return other_settings(self.overrides)


def other_settings(overrides: list[str]) -> tuple[str, ...]:
    """A job's overrides but those of NOT_SETTINGS (`seed=1`, `+data=x`, `~seed` alike)."""
    return tuple(sorted(o for o in overrides if o.split("=")[0].lstrip("+~") not in NOT_SETTINGS))


@dataclass
class Cell:
    psnr: list[float] = field(default_factory=list)
    ssim: list[float] = field(default_factory=list)
    failed: int = 0

    def text(self, values: list[float], digits: int) -> str:
        if not values:
            return "failed" if self.failed else ""
        mean = statistics.fmean(values)
        spread = f" ± {statistics.stdev(values):.{digits}f}" if len(values) > 1 else ""
        failed = f" ({self.failed} failed)" if self.failed else ""
        return f"{mean:.{digits}f}{spread}{failed}"


def read_jobs(multirun: Path) -> list[Job]:
    """Every job folder below `multirun` (those holding `.hydra/config.yaml`)."""
    if not multirun.is_dir():
        raise FileNotFoundError(f"{multirun} is not a folder; give the sweep folder of a multirun")
    jobs = []
    for config_path in sorted(multirun.glob("**/.hydra/config.yaml")):
        folder = config_path.parent.parent
        config = OmegaConf.load(config_path)
        choices = OmegaConf.load(folder / ".hydra" / "hydra.yaml").hydra.runtime.choices
        overrides = [str(o) for o in OmegaConf.load(folder / ".hydra" / "overrides.yaml")]
        jobs.append(
            Job(
                folder,
                str(config.get("task_name")),
                str(choices.get("data")),  # a predict run's has none: in neither table
                config.get("seed"),
                read_metrics(folder / "metrics.json"),
                tuple(overrides),
            )
        )
    if not jobs:
        raise FileNotFoundError(f"{multirun} holds no Hydra job folders (.hydra/config.yaml)")
    check_repeats([job for job in jobs if row_keys(job)])  # others are only listed
    return jobs


def read_metrics(path: Path) -> dict[str, float] | None:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not a JSON object of metrics ({error})") from None


def jobs_without_folder(multirun: Path, jobs: list[Job]) -> list[str]:
    """The overrides of each job that the sweep's `multirun.yaml` asked for and no folder
    holds (a job resumed in place holds more: `ckpt_path`). Only a basic sweep's jobs can be
    listed: not an Optuna search's, nor a sweep over `glob(...)`, which needs the configs."""
    path = multirun / "multirun.yaml"
    if not path.is_file():
        return []
    hydra = OmegaConf.load(path).hydra
    if not str(hydra.sweeper.get("_target_", "")).endswith("BasicSweeper"):
        return []
    # As the basic sweeper reads them: its config's params first, then the command line's,
    # ${...} kept as written (the job folders hold them unresolved).
    params = hydra.sweeper.get("params")
    params = OmegaConf.to_container(params, resolve=False) if params else {}
    given = OmegaConf.to_container(hydra.overrides.task, resolve=False)
    try:
        parsed = OverridesParser.create().parse_overrides(
            [f"{key}={value}" for key, value in params.items()] + [str(o) for o in given]
        )
        planned = [job for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]
    except HydraException:
        return []
    held = [set(job.overrides) for job in jobs]
    return [" ".join(job) for job in planned if not any(set(job) <= h for h in held)]


def check_repeats(jobs: list[Job]) -> None:
    """The jobs of one cell must be seeds of one setting, or their mean means nothing."""
    cells: dict[tuple[str, str], list[Job]] = {}
    for job in jobs:
        cells.setdefault((job.experiment, job.data), []).append(job)
    for (experiment, data), group in cells.items():
        cell = f"jobs of experiment={experiment} data={data}"
        first = group[0]
        for job in group[1:]:
            if job.settings != first.settings:
                raise ValueError(
                    f"{cell} differ in more than the seed: {first.folder} has "
                    f"{list(first.settings)}, {job.folder} has {list(job.settings)}; "
                    "give a sweep over seeds alone"
                )
        seeds = [job.seed for job in group]
        for job in group:
            if seeds.count(job.seed) > 1:
                twins = [str(j.folder) for j in group if j.seed == job.seed]
                raise ValueError(
                    f"{cell} repeat seed={job.seed} ({', '.join(twins)}); "
                    "give the folder of one sweep, not of several"
                )


def failure(job: Job, keys: tuple[str, ...]) -> str | None:
    """Why a job gives its cell no numbers (no metrics.json, a key missing or not finite: a
    run that diverged writes NaN), or None."""
    if job.metrics is None:
        return "no metrics.json"
    for key in keys:
        if key not in job.metrics:
            return f"metrics.json lacks {key}"
        if not math.isfinite(job.metrics[key]):
            return f"{key} is {job.metrics[key]}"
    return None


def row_keys(job: Job) -> tuple[str, ...]:
    """The metrics its row in Table 1 or 2 reports (both tables report an EPN alike)."""
    label_and_keys = TABLE1.get(job.experiment) or TABLE2.get(job.experiment)
    return label_and_keys[1:] if label_and_keys else ()


def build_table(jobs: list[Job], rows: dict) -> tuple[list[str], dict[str, dict[str, Cell]]]:
    """Rows in the paper's order, a Cell per data set, only for rows that ran."""
    datasets = sorted({job.data for job in jobs if job.experiment in rows})
    table: dict[str, dict[str, Cell]] = {}
    for experiment, (label, psnr_key, ssim_key) in rows.items():
        for job in (j for j in jobs if j.experiment == experiment):
            cell = table.setdefault(label, {}).setdefault(job.data, Cell())
            if failure(job, (psnr_key, ssim_key)):
                cell.failed += 1
            else:
                cell.psnr.append(job.metrics[psnr_key])
                cell.ssim.append(job.metrics[ssim_key])
    return datasets, table


def markdown(title: str, name: str, datasets: list[str], table: dict[str, dict[str, Cell]]) -> str:
    header = "| | " + " | ".join(f"{d} PSNR | {d} SSIM" for d in datasets) + " |"
    lines = [f"## {title}", "", header, "|---" * (1 + 2 * len(datasets)) + "|"]
    for label, cells in table.items():
        values = []
        for dataset in datasets:
            cell = cells.get(dataset, Cell())
            values += [cell.text(cell.psnr, 2), cell.text(cell.ssim, 3)]
        lines.append(f"| {label} | " + " | ".join(values) + " |")
    paper = [(k[1], k[2], v) for k, v in PAPER.items() if k[0] == name and k[1] in table]
    if paper:
        lines += [
            "",
            "The paper: " + "; ".join(f"{r} on {d}: {p:.2f} / {s:.3f}" for r, d, (p, s) in paper),
        ]
    return "\n".join(lines) + "\n"


def write_csv(path: Path, datasets: list[str], table: dict[str, dict[str, Cell]]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["row", "data", "psnr_mean", "psnr_std", "ssim_mean", "ssim_std", "runs", "failed"]
        )
        for label, cells in table.items():
            for dataset in datasets:
                cell = cells.get(dataset)
                if cell is None:
                    continue
                stats = []
                for values in (cell.psnr, cell.ssim):
                    stats += [
                        f"{statistics.fmean(values):.4f}" if values else "",
                        f"{statistics.stdev(values):.4f}" if len(values) > 1 else "",
                    ]
                writer.writerow([label, dataset, *stats, len(cell.psnr), cell.failed])


def bar_chart(path: Path, tables: list[tuple[str, list[str], dict[str, dict[str, Cell]]]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(tables), figsize=(6 * len(tables), 4), squeeze=False)
    for axis, (title, datasets, table) in zip(axes[0], tables, strict=True):
        labels = list(table)
        width = 0.8 / max(1, len(datasets))
        for index, dataset in enumerate(datasets):
            cells = [table[label].get(dataset, Cell()) for label in labels]
            means = [statistics.fmean(c.psnr) if c.psnr else 0.0 for c in cells]
            errors = [statistics.stdev(c.psnr) if len(c.psnr) > 1 else 0.0 for c in cells]
            positions = [i + index * width for i in range(len(labels))]
            axis.bar(positions, means, width, yerr=errors, capsize=3, label=dataset)
        axis.set_xticks([i + width * (len(datasets) - 1) / 2 for i in range(len(labels))], labels)
        axis.set_ylabel("PSNR (dB)")
        axis.set_title(title)
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def main(argv: list[str] | None = None) -> dict[str, Path]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("multirun", type=Path, help="the sweep folder of a Hydra multirun")
    parser.add_argument("--output", type=Path, default=None, help="default: the sweep folder")
    args = parser.parse_args(argv)
    jobs = read_jobs(args.multirun)  # before anything is created: a mistyped folder stays absent
    output = args.output or args.multirun
    output.mkdir(parents=True, exist_ok=True)
    sections, tables, written = [], [], {}
    for name, title, rows in (("table1", "Table 1", TABLE1), ("table2", "Table 2", TABLE2)):
        datasets, table = build_table(jobs, rows)
        if not table:
            continue
        sections.append(markdown(title, name, datasets, table))
        written[name] = output / f"{name}.csv"
        write_csv(written[name], datasets, table)
        tables.append((title, datasets, table))
    if not tables:
        raise ValueError(
            f"{args.multirun}: no job ran an experiment of Table 1 or 2 "
            f"({sorted({*TABLE1, *TABLE2})}); the jobs' task_name: "
            f"{sorted({job.experiment for job in jobs})}"
        )
    notes = [
        f"- failed ({why}): {job.folder}" for job in jobs if (why := failure(job, row_keys(job)))
    ]
    notes += [
        f"- in neither table (task_name={job.experiment}): {job.folder}"
        for job in jobs
        if job.experiment not in {*TABLE1, *TABLE2}
    ]
    notes += [
        f"- no job folder (killed before it started, or still queued): {overrides}"
        for overrides in jobs_without_folder(args.multirun, jobs)
    ]
    written["markdown"] = output / "tables.md"
    written["markdown"].write_text(
        "\n".join(sections) + ("\n" + "\n".join(notes) + "\n" if notes else "")
    )
    written["chart"] = output / "tables.png"
    bar_chart(written["chart"], tables)
    print("\n".join(sections))
    print("\n".join(notes))
    for path in written.values():
        print(f"written: {path}")
    return written


if __name__ == "__main__":
    main()
