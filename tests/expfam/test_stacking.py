"""Stacked trials (expfam.experiment.train.loop, expfam.experiment.sweeps.plan, expfam.experiment.runs.group): grouping, equality with solo runs,
a diverging trial in a group, a stacked sweep's run directories and its resumption."""

from __future__ import annotations

import csv
import dataclasses
import doctest
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import expfam.experiment.sweeps.plan
import expfam.experiment.sweeps.workers
import expfam.experiment.train.loop
from expfam import build_registry
from expfam.builder import build_model
from expfam.errors import ConfigurationError, TrainingDivergedError
from expfam.experiment.config import TrainConfig
from expfam.experiment.runs.files import flatten_params, load_params
from expfam.experiment.sweeps.plan import plan_groups
from expfam.experiment.sweeps.run import run_sweep
from expfam.experiment.sweeps.spec import parse_sweep
from expfam.experiment.train.loop import train, train_stacked
from expfam.experiment.train.step import loss_weights
from expfam.hookspecs import hookimpl
from expfam.objective import Objective

# The README's test line leaves stacked sweeps to the slow tier, which .ci/run runs (docs/development.md, "Two tiers").
pytestmark = pytest.mark.slow

#: Three trials of one shape on digits, differing in every kind of per-trial number.
SWEEP = {
    "prefix": "S",
    "base": {
        "model": {"n_latent": 8, "n_clusters": 10},
        "train": {
            "n_steps": 200,
            "log_every": 100,
            "batch_size": 64,
            "n_mc_samples": 4,
            "n_conj_samples": 128,
            "kl_warmup_steps": 100,
            "conj_warmup_steps": 50,
            "lr_warmup_steps": 20,
            "checkpoint_every": 1,
        },
        "evaluate": {"n_r2_samples": 500, "n_iwae_samples": 5, "batch_size": 400},
    },
    "phases": [
        {
            "name": "P",
            "runs": [
                {},
                {"seed": 1, "learning_rate": 2e-3, "kl_warmup_steps": 0, "lr_warmup_steps": 0},
                {"seed": 2, "conj_weight": 0.3, "entropy_weight": 5.0, "posterior_entropy_weight": 2.0},
            ],
        }
    ],
}


def test_plan_groups_by_shape_in_sweep_order_with_a_cap():
    spec = parse_sweep(
        {
            "phases": [
                {"name": "A", "grid": {"learning_rate": [1e-3, 2e-3, 3e-3]}},
                {"name": "B", "runs": [{"n_latent": 8}, {"seed": 4}, {"batch_size": 64}, {"kl_warmup_steps": 7}]},
            ]
        }
    )
    names = [[trial.name for trial in group] for group in plan_groups(spec.trials)]
    # numbers (lr, seed, warmup) stack with the base; n_latent and batch_size are shapes of their own
    assert names == [["T1", "T2", "T3", "T5", "T7"], ["T4"], ["T6"]]
    capped = [[trial.name for trial in group] for group in plan_groups(spec.trials, cap=2)]
    assert capped == [["T1", "T2"], ["T3", "T5"], ["T7"], ["T4"], ["T6"]]
    assert [len(group) for group in plan_groups(spec.trials, cap=1)] == [1] * 7


def test_configs_of_different_shapes_are_refused_before_training():
    model = build_model(observable="bernoulli", data_dim=4, n_latent=2, n_clusters=2, blocks="hierarchical")
    x = jnp.ones((8, 4))
    configs = [TrainConfig(n_steps=2), TrainConfig(n_steps=2, batch_size=7)]
    with pytest.raises(ConfigurationError, match="trial 1 cannot be stacked with trial 0"):
        train_stacked(model, [model.init(jax.random.key(0), x)] * 2, x, configs)
    with pytest.raises(ConfigurationError, match="vectorize must be one of"):
        train_stacked(model, [model.init(jax.random.key(0), x)], x, configs[:1], vectorize="pmap")


def _files(run_dir):
    return sorted(path.name for path in run_dir.iterdir())


@pytest.mark.slow
def test_stacked_sweep_writes_the_solo_runs_files_and_numbers(tmp_path):
    """A stacked group's run directories equal a one-at-a-time sweep's: files, metrics, history, parameters."""
    spec = parse_sweep(SWEEP)
    log: list[str] = []
    stacked = run_sweep(
        spec, tmp_path / "stacked", plots=False, run_plots=False, vectorize="map", log=log.append, stack=None
    )
    solo = run_sweep(spec, tmp_path / "solo", plots=False, run_plots=False, stack=1)
    assert [r.status for r in stacked] == [r.status for r in solo] == ["finished"] * 3
    assert any("[1–3/3] stacked group of 3 (S1, S2, S3): training" in line for line in log)
    for name in ("S1", "S2", "S3"):
        one, two = tmp_path / "stacked" / name, tmp_path / "solo" / name
        assert _files(one) == _files(two)
        assert "checkpoint.npz" in _files(one)
        a, b = json.loads((one / "metrics.json").read_text()), json.loads((two / "metrics.json").read_text())
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_allclose(a[key], b[key], rtol=1e-6, atol=1e-9, err_msg=f"{name} {key}")
        rows_a = list(csv.DictReader((one / "history.csv").open()))
        rows_b = list(csv.DictReader((two / "history.csv").open()))
        assert [r.keys() for r in rows_a] == [r.keys() for r in rows_b] and len(rows_a) == 2
        for row_a, row_b in zip(rows_a, rows_b, strict=True):
            np.testing.assert_allclose(
                [float(v) for v in row_a.values()], [float(v) for v in row_b.values()], rtol=1e-6
            )
        for (path, x), (_, y) in zip(
            flatten_params(load_params(one)).items(), flatten_params(load_params(two)).items(), strict=True
        ):
            np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-9, err_msg=f"{name} {path}")
        info = json.loads((one / "run.json").read_text())
        assert info["status"] == "completed" and info["stack"]["size"] == 3
    # the trials really differ: distinct numbers gave distinct results
    assert (
        len({json.loads((tmp_path / "solo" / n / "metrics.json").read_text())["elbo"] for n in ("S1", "S2", "S3")}) == 3
    )


class _ExplodesFor13(Objective):
    """NaN from step 7 on, in the trial whose KL warmup is 13 steps only."""

    name = "explodes_for_13"

    def finish(self, ctx, key, states, residual):
        value = jnp.where((ctx.step >= 7) & (jnp.asarray(ctx.settings.kl_warmup_steps) == 13), jnp.nan, 0.0)
        return value, value


class _Plugin:
    @hookimpl
    def expfam_objectives(self):
        return [_ExplodesFor13()]


@pytest.mark.parametrize("vectorize", ["map", "vmap"])
def test_one_diverging_trial_leaves_the_others_as_their_solo_runs(vectorize):
    model = build_model(
        observable="binomial",
        observable_options={"n_trials": 4},
        data_dim=6,
        n_latent=3,
        n_clusters=3,
        blocks="hierarchical",
    )
    data = jax.random.binomial(jax.random.key(0), 4, 0.3, (64, 6)).astype(jnp.float64)
    registry = build_registry(extra_plugins=[_Plugin()])
    base = TrainConfig(n_steps=20, log_every=5, batch_size=16, n_mc_samples=2, n_conj_samples=32, lr_warmup_steps=0)
    configs = [
        dataclasses.replace(base, seed=0, kl_warmup_steps=10),
        dataclasses.replace(base, seed=1, kl_warmup_steps=13),
        dataclasses.replace(base, seed=2, kl_warmup_steps=0, learning_rate=1e-2),
    ]
    weights = [{**loss_weights(c), "explodes_for_13": 1.0} for c in configs]
    params = [model.init(jax.random.key(c.seed), data) for c in configs]
    seen: list[tuple[int, int]] = []
    callbacks = [lambda step, p, piece, i=i: seen.append((i, step)) for i in range(3)]
    results = train_stacked(
        model, params, data, configs, weights=weights, registry=registry, callbacks=callbacks, vectorize=vectorize
    )
    diverged = results[1]
    assert isinstance(diverged, TrainingDivergedError)
    assert diverged.step == 7 and diverged.term == "explodes_for_13"
    # trial 1 reported its first chunk only; the others every chunk
    assert sorted(step for i, step in seen if i == 1) == [5]
    assert sorted(step for i, step in seen if i == 0) == [5, 10, 15, 20]
    # its kept parameters are those after step 6, as a solo run's
    with pytest.raises(TrainingDivergedError) as solo_error:
        train(model, params[1], data, configs[1], weights=weights[1], registry=registry)
    tolerance = {"rtol": 1e-9, "atol": 1e-12} if vectorize == "map" else {"rtol": 1e-5, "atol": 1e-7}
    for kept, expected in zip(
        jax.tree.leaves(diverged.last_params), jax.tree.leaves(solo_error.value.last_params), strict=True
    ):
        np.testing.assert_allclose(kept, expected, **tolerance)
    for index in (0, 2):
        result = results[index]
        assert not isinstance(result, TrainingDivergedError) and result.steps == 20
        solo = train(model, params[index], data, configs[index], weights=weights[index], registry=registry)
        for name in solo.history:
            np.testing.assert_allclose(result.history[name], solo.history[name], **tolerance)
        for got, expected in zip(jax.tree.leaves(result.params), jax.tree.leaves(solo.params), strict=True):
            np.testing.assert_allclose(got, expected, **tolerance)


def test_resuming_an_interrupted_stacked_sweep_retrains_no_finished_trial(tmp_path, monkeypatch):
    tiny = {
        "base": {
            "model": {"n_latent": 4, "n_clusters": 3},
            "train": {"n_steps": 10, "log_every": 5, "batch_size": 32, "n_mc_samples": 2, "n_conj_samples": 32},
            "evaluate": {"n_r2_samples": 200, "n_iwae_samples": 2, "batch_size": 400},
        },
        "phases": [{"name": "P", "grid": {"learning_rate": [1e-3, 2e-3, 3e-3, 4e-3]}}],
    }
    spec = parse_sweep(tiny)
    real = expfam.experiment.sweeps.workers.train_group
    groups: list[list[str]] = []

    def interrupt_second_group(configs, run_dirs, **options):
        groups.append([d.name for d in run_dirs])
        if len(groups) == 2:
            raise KeyboardInterrupt
        return real(configs, run_dirs, **options)

    monkeypatch.setattr(expfam.experiment.sweeps.workers, "train_group", interrupt_second_group)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(spec, tmp_path, stack=2, plots=False, run_plots=False)
    assert groups == [["T1", "T2"], ["T3", "T4"]]
    finished = {name: (tmp_path / name / "metrics.json").stat().st_mtime_ns for name in ("T1", "T2")}
    assert not (tmp_path / "T3" / "metrics.json").exists()

    groups.clear()
    results = run_sweep(spec, tmp_path, stack=2, plots=False, run_plots=False)
    assert groups == [["T3", "T4"]]  # only the unfinished trials train, as one group
    assert [(r.trial.name, r.status, r.reused) for r in results] == [
        ("T1", "finished", True),
        ("T2", "finished", True),
        ("T3", "finished", False),
        ("T4", "finished", False),
    ]
    assert {name: (tmp_path / name / "metrics.json").stat().st_mtime_ns for name in ("T1", "T2")} == finished


@pytest.mark.parametrize(
    "module", [expfam.experiment.train.loop, expfam.experiment.sweeps.plan], ids=lambda m: m.__name__
)
def test_docstring_examples(module):
    failures, tried = doctest.testmod(module)
    assert tried > 0 and failures == 0


def test_repeats_expand_to_seeds_and_the_report_shows_mean_and_sd(tmp_path):
    from expfam.experiment.sweeps.report import report_text, results_csv_text
    from expfam.experiment.sweeps.results import FINISHED, TrialResult, by_configuration

    spec = parse_sweep(
        {
            "prefix": "H",
            "base": {"train": {"seed": 5}},
            "phases": [
                {"name": "P", "repeats": 3, "runs": [{}, {"learning_rate": 1e-3, "repeats": 2}]},
                {"name": "Q", "runs": [{"n_latent": 8}]},
            ],
        }
    )
    assert [(t.name, t.label, t.config.train.seed) for t in spec.trials] == [
        ("H1-s5", "H1", 5),
        ("H1-s6", "H1", 6),
        ("H1-s7", "H1", 7),
        ("H2-s5", "H2", 5),
        ("H2-s6", "H2", 6),
        ("H3", "H3", 5),
    ]
    # the seeds of a configuration stack together (seed is a per-trial number)
    assert [len(group) for group in plan_groups(spec.trials)] == [5, 1]
    nmi = {"H1-s5": 0.5, "H1-s6": 0.6, "H1-s7": 0.7, "H2-s5": 0.66, "H2-s6": 0.66, "H3": 0.9}
    results = [
        TrialResult(t, FINISHED, {"nmi": nmi[t.name], "r2": 0.99, "purity": 0.5, "recon": 3.0}) for t in spec.trials
    ]
    summary = by_configuration(results)
    assert [(r.trial.name, r.repeats) for r in summary] == [("H1", 3), ("H2", 2), ("H3", 1)]
    assert summary[0].metrics["nmi"] == pytest.approx(0.6) and summary[0].spread["nmi"] == pytest.approx(0.1)
    assert summary[1].spread["nmi"] == 0.0 and summary[2].spread is None
    text = report_text(spec, results)
    assert "| H1 |" in text and "0.60 ± 0.10" in text and "mean ± sd over 3 seeds" in text
    # the best rule compares means: H2 (mean 0.66) beats H1 (mean 0.60, though one seed reached 0.70)
    spec_p = dataclasses.replace(spec, phases=spec.phases[:1])
    best = report_text(spec_p, results[:5]).split("## Best Configuration")[1]
    assert "**H2**" in best and "mean ± sd over 2 seeds" in best
    rows = list(csv.DictReader(results_csv_text(results).splitlines()))
    assert [(row["Run"], row["Configuration"], row["seed"]) for row in rows][:2] == [
        ("H1-s5", "H1", "5"),
        ("H1-s6", "H1", "6"),
    ]
    with pytest.raises(ConfigurationError, match="repeats must be a whole number ≥ 1"):
        parse_sweep({"phases": [{"name": "P", "repeats": 0, "runs": [{}]}]})


def _counting(monkeypatch, module, name):
    calls = []
    real = getattr(module, name)

    def counted(*args, **kwargs):
        calls.append(name)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, counted)
    return calls


def test_a_group_loads_each_data_split_and_builds_its_model_once(monkeypatch):
    """The Preparer shares a split per (data, seed) and the model per [model]; each run gets prepare_run's values."""
    import numpy as np

    import expfam.experiment.prepare as prepare
    from expfam.experiment.config import config_from_mapping

    loads = _counting(monkeypatch, prepare, "load_dataset")
    builds = _counting(monkeypatch, prepare, "build_model")
    configs = [
        config_from_mapping({"model": {"n_latent": 4}, "train": {"seed": seed, "learning_rate": lr}})
        for seed, lr in ((0, 1e-3), (0, 2e-3), (1, 1e-3))
    ]
    preparer = prepare.Preparer()
    prepared = [preparer.prepare(config) for config in configs]
    assert len(loads) == 2 and len(builds) == 1
    assert prepared[0].split is prepared[1].split and prepared[0].model is prepared[2].model
    for config, shared in zip(configs, prepared, strict=True):
        alone = prepare.prepare_run(config)
        assert alone.config == shared.config and alone.model == shared.model and alone.spec == shared.spec
        np.testing.assert_array_equal(alone.split.x_train, shared.split.x_train)
        np.testing.assert_array_equal(alone.split.x_test, shared.split.x_test)


def test_train_group_prepares_the_group_once(monkeypatch):
    import expfam.experiment.prepare as prepare
    from expfam.experiment.config import config_from_mapping
    from expfam.experiment.runs.group import train_group

    loads = _counting(monkeypatch, prepare, "load_dataset")
    builds = _counting(monkeypatch, prepare, "build_model")
    tiny = {"n_steps": 4, "log_every": 2, "batch_size": 16, "n_mc_samples": 2, "n_conj_samples": 16}
    evaluate = {"n_r2_samples": 50, "n_iwae_samples": 2, "n_elbo_samples": 2, "batch_size": 200}
    configs = [
        config_from_mapping(
            {
                "model": {"n_latent": 2, "n_clusters": 3},
                "train": {**tiny, "learning_rate": lr, "cluster_init": "random"},
                "evaluate": evaluate,
            }
        )
        for lr in (1e-3, 2e-3, 3e-3)
    ]
    outcomes = train_group(configs, [None] * 3, plots=False, vectorize="map")
    assert all(isinstance(outcome, dict) for outcome in outcomes), outcomes
    assert len(loads) == 1 and len(builds) == 1
