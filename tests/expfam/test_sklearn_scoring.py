"""HarmoniumClustering's GaussianMixture-style extras: score_samples, sample, n_iter_, verbose.

Each is checked against a reference computed another way: the model's own ``elbo_terms``
row by row, the prior's mixture weights, the configured step count, the printed lines.
"""

from __future__ import annotations

import warnings

import jax
import numpy as np
import pytest
from sklearn.datasets import load_digits

from expfam.errors import ConfigurationWarning
from expfam.experiment.train.streams import run_keys
from expfam.sklearn import HarmoniumClustering
from tiny_shapes import ESTIMATOR, ESTIMATOR_ROWS

# The README's test line leaves the scikit-learn estimator to the slow tier, which .ci/run runs (docs/development.md, "Two tiers").
pytestmark = pytest.mark.slow

#: The suite's canonical estimator settings (shared with test_sklearn.py: the same compiled programs).
SMALL = ESTIMATOR


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    return load_digits().data[:ESTIMATOR_ROWS]


@pytest.fixture(scope="module")
def fitted(digits: np.ndarray) -> HarmoniumClustering:
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConfigurationWarning)  # the warmup ends before the run does: no warning
        return HarmoniumClustering(**SMALL).fit(digits)


def test_score_samples_is_the_models_elbo_of_each_row(fitted: HarmoniumClustering, digits: np.ndarray) -> None:
    rows = digits[:12]
    scores = fitted.score_samples(rows)
    key = run_keys(fitted.seed_)["evaluate"]
    # one row at a time, each its own call of the model's method (one compiled program for all twelve
    # rows: without jit each of its hundreds of operations is compiled on its own)
    elbo_terms = jax.jit(fitted.model_.elbo_terms, static_argnums=3)
    reference = [
        float(elbo_terms(key, fitted.params_, rows[i : i + 1], SMALL["n_elbo_samples"])[1][0]) for i in range(len(rows))
    ]
    assert scores.shape == (12,) and scores.dtype == np.float64
    np.testing.assert_allclose(scores, reference, rtol=1e-6)
    assert np.all(scores < 0)  # bounds on log-probabilities of discrete counts


def test_score_is_the_mean_of_score_samples_and_rows_are_independent(fitted, digits) -> None:
    scores = fitted.score_samples(digits)
    assert fitted.score(digits) == pytest.approx(float(np.mean(scores)), rel=1e-12)
    order = np.random.default_rng(1).permutation(len(digits))
    np.testing.assert_allclose(fitted.score_samples(digits[order]), scores[order], rtol=1e-10)
    np.testing.assert_allclose(fitted.score_samples(digits[:7]), scores[:7], rtol=1e-10)


def test_sample_draws_labels_with_the_prior_weights_and_rows_in_the_support(fitted) -> None:
    n = 20_000
    X, labels = fitted.sample(n)
    assert X.shape == (n, 64) and labels.shape == (n,) and labels.dtype == np.int64
    assert np.array_equal(X, np.round(X)) and X.min() >= 0 and X.max() <= fitted.n_trials
    weights = np.asarray(fitted.model_.mixture.cluster_probabilities(fitted.params_["prior"]))
    frequencies = np.bincount(labels, minlength=SMALL["n_clusters"]) / n
    tolerance = 5 * np.sqrt(weights * (1 - weights) / n) + 1e-3  # five standard errors
    assert np.all(np.abs(frequencies - weights) <= tolerance), (frequencies, weights)
    again, again_labels = fitted.sample(n)
    assert np.array_equal(again, X) and np.array_equal(again_labels, labels)  # an integer random_state


def test_sample_refuses_a_bad_count(fitted) -> None:
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="n_samples"):
            fitted.sample(bad)


def test_n_iter_is_the_number_of_steps_run(fitted) -> None:
    assert fitted.n_iter_ == SMALL["n_steps"] == len(fitted.history_["loss"])


def test_verbose_prints_one_line_per_chunk_and_a_long_warmup_warns(digits, capsys) -> None:
    settings = {**SMALL, "n_steps": 20, "kl_warmup_steps": 20, "verbose": 1}
    with pytest.warns(ConfigurationWarning, match="kl_warmup_steps = 20 is not below n_steps = 20"):
        HarmoniumClustering(**settings).fit(digits)
    lines = capsys.readouterr().err.splitlines()
    assert [line.split("  ")[0] for line in lines] == ["step 10/20", "step 20/20"]
    assert all(" loss " in line and " elbo " in line for line in lines)
    HarmoniumClustering(**{**settings, "verbose": 0, "kl_warmup_steps": 5}).fit(digits)
    assert capsys.readouterr().err == ""
