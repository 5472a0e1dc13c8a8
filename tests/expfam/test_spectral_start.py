"""Clusters started from spectral clustering (docs/training.md, docs/coupling.md): the KMeans start's fit on another partition."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.metrics import normalized_mutual_info_score

from expfam.builder import build_model
from expfam.errors import ConfigurationError
from expfam.experiment.config import config_from_mapping, validate_config
from expfam.experiment.prepare import prepare_run
from expfam.experiment.train.cluster_start import (
    kmeans_labels,
    partition_cluster_init,
    spectral_cluster_init,
    spectral_labels,
)

# The README's test line leaves cluster starts to the slow tier, which .ci/run runs (docs/development.md, "Two tiers").
pytestmark = pytest.mark.slow

K = 8


@pytest.fixture(scope="module")
def digits():
    data = load_digits()
    return jnp.asarray(data.data[:300], dtype=jnp.float32), data.target[:300]


def _model(blocks: str = "full"):
    return build_model(
        observable="binomial", observable_options={"n_trials": 16}, data_dim=64, n_latent=6, n_clusters=K, blocks=blocks
    )


def test_the_start_is_the_partition_fit_of_the_spectral_labels(digits):
    """Same prior shares, same per-cluster fits as the partition start given spectral clustering's labels."""
    x, _ = digits
    model = _model()
    params = model.init(jax.random.PRNGKey(3), x)
    started = spectral_cluster_init(model, params, x, seed=5)
    labels = spectral_labels(x, K, seed=5)
    expected = partition_cluster_init(model, params, x, labels)
    for got, want in zip(jax.tree_util.tree_leaves(started), jax.tree_util.tree_leaves(expected), strict=True):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    shares = np.bincount(labels, minlength=K) / labels.size
    np.testing.assert_allclose(np.asarray(model.mixture.cluster_probabilities(started["prior"])), shares, atol=1e-5)
    assert np.mean(np.asarray(model.assign(started, x)) == labels) > 0.9


def test_spectral_partition_of_digits_is_closer_to_the_classes_than_kmeans(digits):
    """The reason for the start: on digits the neighbour graph separates the classes better than KMeans."""
    x, y = digits
    spectral = normalized_mutual_info_score(y, spectral_labels(x, 10, seed=0))
    kmeans = normalized_mutual_info_score(y, kmeans_labels(x, 10, seed=0))
    assert spectral > kmeans + 0.03


def test_above_the_row_cap_the_other_rows_join_the_nearest_cluster_mean(digits):
    x, _ = digits
    rows = np.asarray(x, dtype=np.float64)
    labels = spectral_labels(x, K, seed=2, max_rows=120)
    picked = np.random.default_rng(2).choice(rows.shape[0], 120, replace=False)
    np.testing.assert_array_equal(labels[picked], spectral_labels(rows[picked], K, seed=2))
    means = np.stack([rows[picked][labels[picked] == k].mean(0) for k in range(K)])
    others = np.setdiff1d(np.arange(rows.shape[0]), picked)
    nearest = ((rows[others][:, None, :] - means[None]) ** 2).sum(-1).argmin(1)
    np.testing.assert_array_equal(labels[others], nearest)
    assert np.bincount(labels, minlength=K).min() > 0


def test_bad_starts_are_refused_before_any_work(digits):
    x, _ = digits
    with pytest.raises(ConfigurationError, match=r"cluster_init 'spectral' starts the per-cluster .*'xk' block"):
        spectral_cluster_init(_model("hierarchical"), _model("hierarchical").init(jax.random.PRNGKey(0), x), x)
    with pytest.raises(ConfigurationError, match=f"'spectral' needs at least n_clusters={K} training rows, got 5"):
        spectral_labels(x[:5], K)
    with pytest.raises(ConfigurationError, match=r"cluster_init 'spectral' starts the 'xk' block.*until step 100"):
        validate_config(
            config_from_mapping(
                {"model": {"block": "full"}, "train": {"cluster_init": "spectral", "block_schedule": "xk:100"}}
            )
        )
    config = config_from_mapping({"model": {"block": "hierarchical"}, "train": {"cluster_init": "spectral"}})
    with pytest.raises(ConfigurationError, match=r"'spectral' starts the per-cluster observable biases"):
        prepare_run(config)


def test_a_partition_with_an_empty_cluster_is_refused(digits):
    x, _ = digits
    model = _model()
    labels = np.zeros(x.shape[0], dtype=int)
    labels[: K - 1] = np.arange(K - 1)  # cluster K-1 holds no row
    with pytest.raises(ValueError, match=f"every cluster 0..{K - 1} needs at least one row"):
        partition_cluster_init(model, model.init(jax.random.PRNGKey(0), x), x, labels)
