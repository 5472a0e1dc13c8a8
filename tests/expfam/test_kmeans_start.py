"""Clusters started from KMeans (docs/collapse.md, "The remedy"): exact fits, exact shares, nothing else moved."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.datasets import load_digits

from expfam.builder import build_model
from expfam.errors import ConfigurationError
from expfam.experiment import load_run
from expfam.experiment.config import config_from_mapping, validate_config
from expfam.experiment.runs.solo import train_run
from expfam.experiment.train.cluster_start import kmeans_cluster_init, kmeans_labels

# The README's test line leaves cluster starts to the slow tier, which .ci/run runs (docs/development.md, "Two tiers").
pytestmark = pytest.mark.slow

K = 8


@pytest.fixture(scope="module")
def digits():
    return jnp.asarray(load_digits().data[:300], dtype=jnp.float32)


def _model(blocks: str = "full", n_latent: int = 6):
    return build_model(
        observable="binomial",
        observable_options={"n_trials": 16},
        data_dim=64,
        n_latent=n_latent,
        n_clusters=K,
        blocks=blocks,
    )


@pytest.fixture(scope="module")
def started(digits):
    model = _model()
    params = model.init(jax.random.PRNGKey(3), digits)
    return model, params, kmeans_cluster_init(model, params, digits, seed=5), kmeans_labels(digits, K, seed=5)


def test_prior_shares_are_the_kmeans_shares(started):
    model, _, params, labels = started
    shares = np.bincount(labels, minlength=K) / labels.size
    np.testing.assert_allclose(np.asarray(model.mixture.cluster_probabilities(params["prior"])), shares, atol=1e-5)


def test_each_cluster_bias_is_the_fit_to_its_points(started, digits):
    """∇ψ_X(a + U e_k) = 0.99·(mean of cluster k's points) + 0.01·(the reference mean), every k."""
    model, _, params, labels = started
    likelihood = params["likelihood"]
    biases = likelihood["a"][None] + jnp.concatenate([jnp.zeros((1, 64)), likelihood["blocks"]["xk"].T])
    observable = model.observable
    reference = np.asarray(observable.means(observable.reference_params()))
    for cluster in range(K):
        expected = 0.99 * np.asarray(digits)[labels == cluster].mean(0) + 0.01 * reference
        np.testing.assert_allclose(np.asarray(observable.means(biases[cluster])), expected, rtol=2e-4, atol=2e-4)


def test_other_parameters_are_untouched(started):
    _, before, after, _ = started
    for path in (("prior", "b_y"), ("prior", "W_yk"), ("likelihood", "blocks", "xy"), ("likelihood", "blocks", "xyk")):
        a, b = before, after
        for name in path:
            a, b = a[name], b[name]
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    np.testing.assert_array_equal(np.asarray(before["rho_y"]), np.asarray(after["rho_y"]))


def test_the_posterior_starts_at_the_kmeans_partition(started, digits):
    """With small W and V, argmax_k q(k | x) is the mixture's: the KMeans cluster, for nearly every point."""
    model, _, params, labels = started
    assigned = np.asarray(model.assign(params, digits))
    assert np.mean(assigned == labels) > 0.95
    assert len(set(assigned.tolist())) == K


def test_models_without_cluster_biases_are_refused(digits):
    model = _model("hierarchical")
    params = model.init(jax.random.PRNGKey(0), digits)
    with pytest.raises(ConfigurationError, match=r"'xk' block.*cluster_init 'latent_kmeans' or 'random'"):
        kmeans_cluster_init(model, params, digits)


def test_fewer_rows_than_clusters_are_refused(digits):
    model = _model()
    params = model.init(jax.random.PRNGKey(0), digits)
    with pytest.raises(ConfigurationError, match=f"at least n_clusters={K} training rows, got 5"):
        kmeans_cluster_init(model, params, digits[:5])


@pytest.mark.parametrize(
    ("train", "fragment"),
    [
        (
            {"cluster_init": "gmm"},
            "cluster_init must be one of 'random', 'kmeans', 'spectral', 'latent_kmeans', got 'gmm'",
        ),
        ({"cluster_init": "kmeans", "block_schedule": "xk:100"}, "holds it at zero until step 100"),
    ],
)
def test_config_refuses_bad_cluster_inits(train, fragment):
    with pytest.raises(ConfigurationError, match=fragment):
        validate_config(config_from_mapping({"model": {"block": "full"}, "train": train}))


def test_a_run_started_from_kmeans_records_it_and_keeps_the_start(tmp_path):
    """Through the pipeline (as ``expfam train --cluster-init kmeans``): the cluster biases start at the
    KMeans fits (entries of order 1; the random start draws them with sd 0.1/√D ≈ 0.0125) and 4 small
    steps keep them there."""
    config = config_from_mapping(
        {
            "model": {"block": "full", "n_latent": 4, "n_clusters": 6},
            "train": {
                "cluster_init": "kmeans",
                "n_steps": 4,
                "log_every": 2,
                "batch_size": 16,
                "n_mc_samples": 2,
                "n_conj_samples": 16,
            },
            "evaluate": {"n_r2_samples": 50, "n_iwae_samples": 2, "n_elbo_samples": 2},
        }
    )
    train_run(config, tmp_path / "run", plots=False)
    assert 'cluster_init = "kmeans"' in (tmp_path / "run" / "config.toml").read_text()
    _, params, _ = load_run(tmp_path / "run")
    assert float(jnp.abs(params["likelihood"]["blocks"]["xk"]).max()) > 0.5
