"""Sweeps (expfam.experiment.sweeps: run, spec, report; expfam.experiment.runs.table and .compare) with fake trial runners: no training here.

Checked: sweep-file parsing and its errors, grid expansion and run lists, resumption
after an interruption, failed trials, the report's table in the seed's layout, the
best-run rule, results.csv, plots, and the comparison of run directories.
"""

from __future__ import annotations

import csv
import doctest
import math
from pathlib import Path

import pytest

import expfam.experiment.runs.compare
import expfam.experiment.runs.table
import expfam.experiment.sweeps.report
import expfam.experiment.sweeps.spec
from expfam.errors import ConfigurationError
from expfam.experiment.config import RunConfig, config_from_mapping
from expfam.experiment.runs.atomic import RunDirectoryError
from expfam.experiment.runs.compare import compare_runs
from expfam.experiment.runs.files import write_config, write_metrics
from expfam.experiment.runs.layout import ERROR_FILE, write_info
from expfam.experiment.runs.table import format_cell, format_learning_rate
from expfam.experiment.sweeps.plots import plot_series, write_plots
from expfam.experiment.sweeps.report import best_result, format_table, report_text, train_command
from expfam.experiment.sweeps.results import TrialResult
from expfam.experiment.sweeps.run import finished_metrics, run_sweep
from expfam.experiment.sweeps.spec import load_sweep, parse_sweep

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "sweeps"

#: The seed's header and separator rows, with the active-cluster count next to NMI (issue 12).
SEED_HEADER = (
    "| Run | n_latent | n_clusters | lr | kl_warmup | conj_weight | entropy_w | post_entropy_w | n_steps "
    "| NMI | Active | R² | Purity | Recon | Notes |"
)
SEED_SEPARATOR = (
    "|-----|----------|------------|------|-----------|-------------|-----------|----------------|---------"
    "|-----|--------|-----|--------|-------|-------|"
)
#: The hyperparameter cells of the seed's rows H1–H16 (H4, skipped there, is n_latent 512).
SEED_ROWS = {
    "H1": "128 | 30 | 1.5e-3 | 120000 | 0.1 | 5.0 | 10.0 | 300000",
    "H2": "64 | 30 | 1.5e-3 | 120000 | 0.1 | 5.0 | 10.0 | 300000",
    "H3": "256 | 30 | 1.5e-3 | 120000 | 0.1 | 5.0 | 10.0 | 300000",
    "H4": "512 | 30 | 1.5e-3 | 120000 | 0.1 | 5.0 | 10.0 | 300000",
    "H5": "128 | 10 | 1.5e-3 | 120000 | 0.1 | 5.0 | 10.0 | 300000",
    "H6": "128 | 20 | 1.5e-3 | 120000 | 0.1 | 5.0 | 10.0 | 300000",
    "H7": "128 | 40 | 1.5e-3 | 120000 | 0.1 | 5.0 | 10.0 | 300000",
    "H8": "128 | 30 | 1e-3 | 120000 | 0.1 | 5.0 | 10.0 | 300000",
    "H9": "128 | 30 | 2e-3 | 120000 | 0.1 | 5.0 | 10.0 | 300000",
    "H10": "128 | 30 | 1.5e-3 | 50000 | 0.1 | 5.0 | 10.0 | 300000",
    "H11": "128 | 30 | 1.5e-3 | 150000 | 0.1 | 5.0 | 10.0 | 300000",
    "H12": "128 | 30 | 1.5e-3 | 120000 | 0.0 | 5.0 | 10.0 | 300000",
    "H13": "128 | 30 | 1.5e-3 | 120000 | 0.05 | 5.0 | 10.0 | 300000",
    "H14": "128 | 30 | 1.5e-3 | 120000 | 0.2 | 5.0 | 10.0 | 300000",
    "H15": "128 | 30 | 1.5e-3 | 120000 | 0.1 | 1.0 | 1.0 | 300000",
    "H16": "128 | 30 | 1.5e-3 | 120000 | 0.1 | 10.0 | 20.0 | 300000",
}


def _sweep(**top) -> dict:
    """A small sweep mapping: three trials over two phases."""
    return {
        "prefix": "H",
        "base": {"model": {"n_latent": 8, "n_clusters": 5}, "train": {"n_steps": 10}},
        "phases": [
            {"name": "Phase 1: Baseline", "runs": [{"note": "baseline"}]},
            {"name": "Phase 2: Latent dimension", "grid": {"n_latent": [4, 16]}},
        ],
        **top,
    }


def fake_metrics(config: RunConfig) -> dict[str, float]:
    """Deterministic metrics from the configuration (NMI grows with n_latent)."""
    return {
        "nmi": config.model.n_latent / 100,
        "r2": 0.99 if config.model.n_latent < 16 else 0.5,
        "purity": 0.768,
        "recon": 3.34,
        "accuracy": 0.7,
    }


def fake_runner(config: RunConfig, run_dir: Path) -> dict[str, float]:
    """A module-level runner (picklable, so it also runs in spawned worker processes)."""
    return fake_metrics(config)


class Recorder:
    """A runner that records the run directories it was called with; optional failure and interruption."""

    def __init__(self, *, fail: str = "", interrupt: str = "") -> None:
        self.calls: list[str] = []
        self.fail, self.interrupt = fail, interrupt

    def __call__(self, config: RunConfig, run_dir: Path) -> dict[str, float]:
        self.calls.append(run_dir.name)
        if run_dir.name == self.interrupt:
            raise KeyboardInterrupt
        if run_dir.name == self.fail:
            raise ValueError("boom | bad")
        return fake_metrics(config)


# ----------------------------------------------------------------- parsing
def test_grid_expansion_names_and_notes():
    spec = parse_sweep(_sweep())
    assert [(t.name, t.phase, t.config.model.n_latent, t.note) for t in spec.trials] == [
        ("H1", "Phase 1: Baseline", 8, "baseline"),
        ("H2", "Phase 2: Latent dimension", 4, ""),
        ("H3", "Phase 2: Latent dimension", 16, ""),
    ]
    assert spec.trials[1].overrides == {"model.n_latent": 4}
    assert spec.swept_keys() == ["model.n_latent"]


def test_grid_is_a_cartesian_product_last_key_fastest():
    spec = parse_sweep({"phases": [{"name": "P", "grid": {"n_latent": [4, 8], "lr": [1e-3, 2e-3, 3e-3]}}]})
    assert [t.name for t in spec.trials] == [f"T{i}" for i in range(1, 7)]
    assert [(t.config.model.n_latent, t.config.train.learning_rate) for t in spec.trials] == [
        (4, 1e-3),
        (4, 2e-3),
        (4, 3e-3),
        (8, 1e-3),
        (8, 2e-3),
        (8, 3e-3),
    ]


def test_run_lists_names_counter_set_and_keys():
    spec = parse_sweep(
        {
            "prefix": "R",
            "start": 0,
            "phases": [
                {
                    "name": "P",
                    "set": {"n_steps": 7},
                    "note": "phase note",
                    "runs": [
                        {"name": "smoke", "n_clusters": 10, "note": "own note"},
                        {"kl_warmup": 50, "entropy_w": 1, "post_entropy_w": 2},
                        {"evaluate.batch_size": 30, "batch_size": 64, "train.seed": 3},
                    ],
                }
            ],
        }
    )
    smoke, second, third = spec.trials
    assert (smoke.name, smoke.note, smoke.config.model.n_clusters, smoke.config.train.n_steps) == (
        "smoke",
        "own note",
        10,
        7,
    )
    assert (second.name, second.note) == ("R1", "phase note")  # the counter advanced past "smoke"
    assert (second.config.train.kl_warmup_steps, second.config.train.entropy_weight) == (50, 1.0)
    assert second.config.train.posterior_entropy_weight == 2.0
    assert (third.config.evaluate.batch_size, third.config.train.batch_size, third.config.train.seed) == (30, 64, 3)


@pytest.mark.parametrize(
    ("change", "fragments"),
    [
        ({"phase": []}, ["unknown field 'phase'", "allowed"]),
        ({"phases": [{"name": "P", "grids": {}}]}, ["phase 'P'", "unknown field 'grids'"]),
        (
            {"phases": [{"name": "P", "grid": {"n_latnet": [1]}}]},
            ["phase 'P' grid", "unknown key 'n_latnet'", "did you mean 'n_latent'?"],
        ),
        (
            {"phases": [{"name": "P", "runs": [{"lerning_rate": 1.0}]}]},
            ["phase 'P' run 1", "unknown key 'lerning_rate'"],
        ),
        (
            {"phases": [{"name": "P", "runs": [{"learning_rate": "fast"}]}]},
            ["run 'T1'", "learning_rate must be float", "'fast'"],
        ),
        ({"phases": [{"name": "P", "grid": {"n_latent": 4}}]}, ["'n_latent' must be a non-empty list"]),
        ({"phases": [{"name": "P", "grid": {"n_latent": [4.5]}}]}, ["n_latent must be int"]),
        ({"phases": [{"name": "P", "runs": [{}], "grid": {"n_latent": [4]}}]}, ["exactly one of 'grid'", "'runs'"]),
        ({"phases": [{"name": "P"}]}, ["exactly one of 'grid'"]),
        ({"phases": []}, ["no phases"]),
        ({"phases": [{"name": "P", "runs": [{"name": "A"}, {"name": "A"}]}]}, ["'A' is used twice"]),
        ({"phases": [{"name": "P", "runs": [{"name": "../x"}]}]}, ["cannot name a directory"]),
        ({"phases": [{"name": "P", "runs": [{"n_clusters": 1}]}]}, ["n_clusters must be ≥ 2"]),
        (
            {"base": {"train": {"n_step": 3}}, "phases": [{"name": "P", "runs": [{}]}]},
            ["unknown key 'n_step' in [train]"],
        ),
        ({"prefix": 3, "phases": [{"name": "P", "runs": [{}]}]}, ["prefix must be a string"]),
    ],
)
def test_parse_errors_name_the_key(change, fragments):
    mapping = {"phases": [{"name": "P", "runs": [{}]}], **change}
    with pytest.raises(ConfigurationError) as info:
        parse_sweep(mapping)
    for fragment in fragments:
        assert fragment in str(info.value), (fragment, str(info.value))


def test_load_sweep_errors_name_the_file(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[[phases]]\nname = "P"\ngrid = {n_latent = [4]}\ncolour = "red"\n')
    with pytest.raises(ConfigurationError, match=r"bad.toml: phase 'P': unknown field 'colour'"):
        load_sweep(path)
    path.write_text("not toml = = 1")
    with pytest.raises(ConfigurationError, match="not valid TOML"):
        load_sweep(path)
    with pytest.raises(ConfigurationError, match="does not exist"):
        load_sweep(tmp_path / "missing.toml")


def test_seed_example_reproduces_the_seed_rows():
    spec = load_sweep(EXAMPLES / "reference_mnist.toml")
    assert [t.name for t in spec.trials] == list(SEED_ROWS)
    table = format_table([TrialResult(t, "pending") for t in spec.trials]).splitlines()
    assert table[:2] == [SEED_HEADER, SEED_SEPARATOR]
    for line, (name, cells) in zip(table[2:], SEED_ROWS.items(), strict=True):
        assert line.startswith(f"| {name} | {cells} | — | — | — | — |"), line
    assert spec.trials[0].config.data.dataset == "idx" and spec.trials[0].config.train.batch_size == 512
    assert len(spec.phases) == 6


def test_digits_small_keeps_the_seed_phases():
    seed, small = load_sweep(EXAMPLES / "reference_mnist.toml"), load_sweep(EXAMPLES / "digits_small.toml")
    assert [p.name for p in small.phases] == [p.name for p in seed.phases]
    # the scaled sweep runs each of the seed's configurations with 3 seeds (repeats = 3)
    configurations = {t.label: t for t in reversed(small.trials)}  # each configuration's first seed
    assert list(reversed(configurations)) == [t.name for t in seed.trials]
    assert [list(configurations[t.name].overrides) for t in seed.trials] == [list(t.overrides) for t in seed.trials]
    assert [t.config.train.seed for t in small.trials[:3]] == [0, 1, 2]
    assert small.base.data.dataset == "digits"


# ----------------------------------------------------------------- running and resuming
def test_run_sweep_writes_runs_results_and_report(tmp_path):
    spec = parse_sweep(_sweep())
    results = run_sweep(spec, tmp_path, runner=Recorder(), command="expfam sweep s.toml --out x")
    assert [r.status for r in results] == ["finished"] * 3
    for name in ("H1", "H2", "H3"):
        assert (tmp_path / name / "config.toml").is_file() and (tmp_path / name / "metrics.json").is_file()
    report = (tmp_path / "report.md").read_text()
    assert "## Phase 1: Baseline" in report and "## Phase 2: Latent dimension" in report
    assert SEED_HEADER in report and "expfam sweep s.toml --out x" in report
    assert (tmp_path / "plots" / "n_latent.png").stat().st_size > 0
    assert "![n_latent](plots/n_latent.png)" in report
    rows = list(csv.DictReader((tmp_path / "results.csv").open()))
    assert [row["Run"] for row in rows] == ["H1", "H2", "H3"]
    assert rows[0]["Phase"] == "Phase 1: Baseline" and rows[0]["status"] == "finished"
    assert float(rows[2]["NMI"]) == 0.16 and float(rows[2]["accuracy"]) == 0.7 and rows[0]["Notes"] == "baseline"


def test_interrupted_sweep_resumes_without_rerunning_finished_trials(tmp_path):
    spec = parse_sweep(_sweep())
    first = Recorder(interrupt="H2")
    with pytest.raises(KeyboardInterrupt):
        run_sweep(spec, tmp_path, runner=first, plots=False)
    assert first.calls == ["H1", "H2"]
    rows = {row["Run"]: row["status"] for row in csv.DictReader((tmp_path / "results.csv").open())}
    assert rows == {"H1": "finished", "H2": "pending", "H3": "pending"}
    assert "not run yet" in (tmp_path / "report.md").read_text()

    second = Recorder()
    results = run_sweep(spec, tmp_path, runner=second, plots=False)
    assert second.calls == ["H2", "H3"]
    assert [(r.status, r.reused) for r in results] == [("finished", True), ("finished", False), ("finished", False)]
    assert results[0].metrics["nmi"] == pytest.approx(0.08)

    third = Recorder()
    run_sweep(spec, tmp_path, runner=third, plots=False)
    assert third.calls == []


def test_changed_configuration_is_refused_unless_overwrite(tmp_path):
    run_sweep(parse_sweep(_sweep()), tmp_path, runner=Recorder(), plots=False)
    changed = _sweep()
    changed["phases"][1]["grid"] = {"n_latent": [4, 32]}
    spec = parse_sweep(changed)
    runner = Recorder()
    with pytest.raises(
        ConfigurationError, match=r"run 'H3' .* another configuration \(n_latent: 16 ≠ 32\).*--overwrite"
    ):
        run_sweep(spec, tmp_path, runner=runner, plots=False)
    assert runner.calls == []
    run_sweep(spec, tmp_path, runner=runner, overwrite=True, plots=False)
    assert runner.calls == ["H3"]


def test_failed_trial_is_recorded_and_the_others_go_on(tmp_path):
    spec = parse_sweep(_sweep())
    results = run_sweep(spec, tmp_path, runner=Recorder(fail="H2"), plots=False)
    assert [r.status for r in results] == ["finished", "failed", "finished"]
    assert results[1].error == "ValueError: boom | bad"
    error_text = (tmp_path / "H2" / ERROR_FILE).read_text()
    assert error_text.startswith("ValueError: boom | bad") and "Traceback" in error_text
    assert not (tmp_path / "H2" / "metrics.json").exists()
    line = next(line for line in (tmp_path / "report.md").read_text().splitlines() if line.startswith("| H2 "))
    assert line.endswith("| — | — | — | — | failed: ValueError: boom \\| bad |")
    rows = {row["Run"]: row for row in csv.DictReader((tmp_path / "results.csv").open())}
    assert (
        rows["H2"]["status"] == "failed" and rows["H2"]["error"] == "ValueError: boom | bad" and rows["H2"]["NMI"] == ""
    )

    retry = Recorder()
    results = run_sweep(spec, tmp_path, runner=retry, plots=False)
    assert retry.calls == ["H2"] and [r.status for r in results] == ["finished"] * 3
    assert not (tmp_path / "H2" / ERROR_FILE).exists()


def test_parallel_jobs_in_spawned_processes(tmp_path):
    spec = parse_sweep(_sweep())
    results = run_sweep(spec, tmp_path, runner=fake_runner, jobs=2, plots=False)
    assert [(r.trial.name, r.status) for r in results] == [("H1", "finished"), ("H2", "finished"), ("H3", "finished")]
    assert results[2].metrics["nmi"] == pytest.approx(0.16)
    with pytest.raises(ConfigurationError, match="cannot be sent to a worker process"):
        run_sweep(spec, tmp_path / "other", runner=lambda config, run_dir: {}, jobs=2)


def dying_runner(config: RunConfig, run_dir: Path) -> dict[str, float]:
    """A module-level runner whose worker process dies (no exception, no result) on trial H2."""
    import os

    if run_dir.name == "H2":
        os._exit(3)
    return fake_runner(config, run_dir)


def test_a_worker_process_that_dies_fails_only_its_trial(tmp_path):
    results = run_sweep(parse_sweep(_sweep()), tmp_path, runner=dying_runner, jobs=2, plots=False)
    assert [(r.trial.name, r.status) for r in results] == [("H1", "finished"), ("H2", "failed"), ("H3", "finished")]
    assert results[1].error == "worker process died: exit code 3"
    assert (tmp_path / "H2" / ERROR_FILE).read_text().startswith("worker process died: exit code 3")


def test_finished_metrics_reads_a_train_run_directory(tmp_path):
    trial = parse_sweep(_sweep()).trials[0]
    assert finished_metrics(trial, tmp_path / "H1") is None
    (tmp_path / "H1").mkdir()
    write_config(tmp_path / "H1", trial.config)
    assert finished_metrics(trial, tmp_path / "H1") is None  # config but no metrics: unfinished
    write_metrics(tmp_path / "H1", {"nmi": 0.5})
    assert finished_metrics(trial, tmp_path / "H1") is None  # metrics but run.json not "completed": unfinished
    write_info(tmp_path / "H1", {"status": "running"})
    assert finished_metrics(trial, tmp_path / "H1") is None  # killed while plotting, say
    write_info(tmp_path / "H1", {"status": "completed"})
    assert finished_metrics(trial, tmp_path / "H1") == {"nmi": 0.5}


# ----------------------------------------------------------------- table and best run
@pytest.mark.parametrize(
    ("column", "value", "text"),
    [
        ("lr", 1.5e-3, "1.5e-3"),
        ("lr", 3e-4, "3e-4"),
        ("lr", 1e-3, "1e-3"),
        ("lr", 0.0123, "1.23e-2"),
        ("NMI", 0.5678, "0.57"),
        ("R²", 0.99612, "0.996"),
        ("Purity", 0.7684, "76.8%"),
        ("Recon", 3.3412, "3.34"),
        ("NMI", None, "—"),
        ("R²", math.nan, "nan"),
        ("conj_weight", 0.0, "0.0"),
        ("entropy_w", 5.0, "5.0"),
        ("n_steps", 300000, "300000"),
        ("Notes", "a | b\nc", "a \\| b c"),
    ],
)
def test_cell_formats(column, value, text):
    assert format_cell(column, value) == text


def test_format_learning_rate_reads_back():
    for value in (1.5e-3, 3e-4, 2e-3, 1e-2, 0.125):
        assert float(format_learning_rate(value)) == value


def _results(*metrics):
    spec = parse_sweep({"phases": [{"name": "P", "grid": {"n_latent": list(range(2, 2 + len(metrics)))}}]})
    return [
        TrialResult(t, "finished" if m is not None else "failed", m, "" if m else "E: x")
        for t, m in zip(spec.trials, metrics, strict=True)
    ], spec


def test_best_rule_prefers_high_r2_then_falls_back():
    results, spec = _results({"nmi": 0.59, "r2": 0.598}, {"nmi": 0.57, "r2": 0.996}, None, {"nmi": 0.55, "r2": 0.95})
    best, qualified = best_result(results, 0.95)
    assert (best.trial.name, qualified) == ("T2", True)
    text = report_text(spec, results)
    assert "Rule: the highest NMI among the runs with R² ≥ 0.95." in text
    assert "**T2** (P): NMI 0.57, R² 0.996" in text

    results, spec = _results({"nmi": 0.4, "r2": 0.1}, {"nmi": 0.5, "r2": math.nan})
    best, qualified = best_result(results, 0.95)
    assert (best.trial.name, qualified) == ("T2", False)
    assert "No run reached R² ≥ 0.95; falling back to the highest NMI" in report_text(spec, results)

    results, spec = _results(None)
    assert best_result(results, 0.95) == (None, False)
    assert "No run has finished yet." in report_text(spec, results)


def test_train_command_lists_the_non_default_flags():
    config = config_from_mapping(
        {"model": {"n_latent": 128}, "train": {"learning_rate": 1.5e-3, "rho_mode": "analytic"}}
    )
    command = train_command(config, per_line=100)
    assert command.startswith("expfam train --block hierarchical --n-latent 128 --n-clusters 20")
    assert "--learning-rate 1.5e-3" in command and "--rho-mode analytic" in command
    assert "--seed" not in command and "--weight-decay" not in command
    assert " \\\n  " in train_command(config)


def test_plot_series_one_factor_slices_and_grids(tmp_path):
    spec = parse_sweep(_sweep())
    results = [TrialResult(t, "finished", fake_metrics(t.config)) for t in spec.trials]
    assert [r.trial.name for r in plot_series(spec, results, "model.n_latent")[""]] == ["H1", "H2", "H3"]

    grid = parse_sweep({"phases": [{"name": "P", "grid": {"n_latent": [4, 8], "lr": [1e-3, 2e-3]}}]})
    results = [TrialResult(t, "finished", fake_metrics(t.config)) for t in grid.trials]
    series = plot_series(grid, results, "model.n_latent")
    assert {label: [r.trial.name for r in runs] for label, runs in series.items()} == {
        "learning_rate=0.001": ["T1", "T3"],
        "learning_rate=0.002": ["T2", "T4"],
    }
    paths = write_plots(grid, results, tmp_path)
    assert [p.name for p in paths] == ["n_latent.png", "learning_rate.png"] and all(p.stat().st_size for p in paths)


# ----------------------------------------------------------------- compare
def _run_dir(path: Path, block: str, metrics: dict) -> Path:
    path.mkdir(parents=True)
    write_config(path, config_from_mapping({"model": {"block": block}}))
    write_metrics(path, metrics)
    write_info(path, {"status": "completed"})
    return path


def test_compare_table_and_ratio(tmp_path):
    full = _run_dir(tmp_path / "full", "full", {"nmi": 0.71, "r2": 0.98, "purity": 0.82, "recon": 3.3})
    hier = _run_dir(tmp_path / "H1", "hierarchical", {"nmi": 0.57, "r2": 0.996, "purity": 0.768, "recon": 3.34})
    lines = compare_runs([full, hier]).splitlines()
    assert lines[0] == "## Comparison: full (full) vs H1 (hierarchical)"
    assert lines[2] == "| Metric | full (full) | H1 (hierarchical) |"
    assert lines[4:8] == [
        "| NMI | 0.71 | 0.57 |",
        "| R² | 0.980 | 0.996 |",
        "| Purity | 82.0% | 76.8% |",
        "| Recon | 3.30 | 3.34 |",
    ]
    assert lines[9] == "H1 (hierarchical) achieves 80% of full (full)'s NMI."
    assert lines[11:] == [  # the one configuration key that differs
        "Configuration keys that differ (from each run's config.toml):",
        "",
        "| Key | full (full) | H1 (hierarchical) |",
        "|-----|-------------|-------------------|",
        '| model.block | "full" | "hierarchical" |',
    ]


def test_compare_refuses_an_unfinished_run(tmp_path):
    (tmp_path / "r").mkdir()
    write_config(tmp_path / "r", RunConfig())
    with pytest.raises(RunDirectoryError, match=r"not finished: it has no readable run\.json"):
        compare_runs([tmp_path / "r"])
    write_metrics(tmp_path / "r", {"nmi": 0.5})
    write_info(tmp_path / "r", {"status": "running"})
    with pytest.raises(RunDirectoryError, match=r"not finished: its run\.json says 'running'.*--resume"):
        compare_runs([tmp_path / "r"])
    with pytest.raises(RunDirectoryError, match="does not exist"):
        compare_runs([tmp_path / "missing"])


@pytest.mark.parametrize(
    "module",
    [
        expfam.experiment.sweeps.spec,
        expfam.experiment.sweeps.report,
        expfam.experiment.runs.table,
        expfam.experiment.runs.compare,
    ],
    ids=lambda m: m.__name__,
)
def test_docstring_examples(module):
    failures, tried = doctest.testmod(module)
    assert tried > 0 and failures == 0


def test_table_shows_active_clusters_and_flags_a_collapse():
    """Active clusters sit next to NMI; a run with fewer than half of K active says so in Notes."""
    results, _ = _results({"nmi": 0.6, "r2": 0.9, "active_clusters": 3}, {"nmi": 0.7, "r2": 0.9, "active_clusters": 12})
    header, _, collapsed, healthy = format_table(results).splitlines()
    columns = [cell.strip() for cell in header.strip("|").split("|")]
    assert columns[columns.index("NMI") + 1] == "Active"
    assert "| 0.60 | 3 |" in collapsed and "cluster collapse: only 3 of 20 clusters are active" in collapsed
    assert "| 0.70 | 12 |" in healthy and "collapse" not in healthy
