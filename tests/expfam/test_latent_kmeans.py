"""Latent-space KMeans initialisation of the clusters: the prior it sets, and where training applies it."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from expfam.builder import build_model
from expfam.errors import ConfigurationError
from expfam.experiment.config import RunConfig, TrainConfig, config_from_mapping, validate_config
from expfam.experiment.train.cluster_start import (
    CLIP,
    cluster_init_due,
    latent_kmeans_init,
    posterior_mean_statistics,
    prior_from_clusters,
)
from expfam.experiment.train.loop import train, train_stacked
from expfam.experiment.train.step import TrainState

# The README's test line leaves cluster starts to the slow tier, which .ci/run runs (docs/development.md, "Two tiers").
pytestmark = pytest.mark.slow

BASE = TrainConfig(
    n_steps=20,
    log_every=5,
    batch_size=16,
    n_mc_samples=2,
    n_conj_samples=32,
    kl_warmup_steps=4,
    conj_warmup_steps=4,
    lr_warmup_steps=3,
    learning_rate=1e-2,
    cluster_init="latent_kmeans",
    cluster_init_step=10,
)


@pytest.fixture(scope="module", params=["hierarchical", "full"])
def model_and_data(request):
    model = build_model(
        observable="binomial",
        observable_options={"n_trials": 4},
        data_dim=6,
        n_latent=3,
        n_clusters=4,
        blocks=request.param,
    )
    data = jax.random.binomial(jax.random.key(0), 4, 0.3, (60, 6)).astype(jnp.float64)
    return model, data


def test_prior_means_equal_the_centroids_and_cluster_probabilities_the_sizes(model_and_data):
    model, data = model_and_data
    params = model.init(jax.random.key(1), data)
    rng = np.random.default_rng(0)
    centroids = rng.uniform(0.0, 1.0, (4, 3))
    centroids[0, 0], centroids[1, 2] = 0.0, 1.0  # clipped into [CLIP, 1 − CLIP]
    sizes = np.array([5, 20, 10, 25])
    new = prior_from_clusters(model, params, centroids, sizes)
    means = jax.vmap(model.latent.means)(model.mixture.cluster_params(new["prior"]))
    np.testing.assert_allclose(means, np.clip(centroids, CLIP, 1 - CLIP), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(model.mixture.cluster_probabilities(new["prior"]), sizes / sizes.sum(), rtol=1e-9)
    # only the prior's values change
    for name in ("likelihood", "rho_y"):
        for got, kept in zip(jax.tree.leaves(new[name]), jax.tree.leaves(params[name]), strict=True):
            np.testing.assert_array_equal(got, kept)


def test_kmeans_init_sets_each_cluster_to_the_mean_of_its_rows(model_and_data):
    model, data = model_and_data
    params = model.init(jax.random.key(1), data)
    new, info = latent_kmeans_init(model, params, np.asarray(data), seed=3)
    features = posterior_mean_statistics(model, params, np.asarray(data))
    labels, sizes = info["labels"], info["sizes"]
    np.testing.assert_array_equal(sizes, np.bincount(labels, minlength=4))
    for k in range(4):  # a KMeans centroid is the mean of its cluster's posterior mean statistics
        np.testing.assert_allclose(info["centroids"][k], features[labels == k].mean(axis=0), rtol=1e-6, atol=1e-9)
    means = jax.vmap(model.latent.means)(model.mixture.cluster_params(new["prior"]))
    np.testing.assert_allclose(means, np.clip(info["centroids"], CLIP, 1 - CLIP), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(model.mixture.cluster_probabilities(new["prior"]), sizes / len(data), rtol=1e-6)


def test_kmeans_init_needs_as_many_rows_as_clusters(model_and_data):
    model, data = model_and_data
    with pytest.raises(ConfigurationError, match="at least n_clusters = 4 training rows"):
        latent_kmeans_init(model, model.init(jax.random.key(1), data), np.asarray(data[:3]))


def test_the_init_is_due_at_the_first_chunk_boundary_at_or_after_its_step():
    due = [done for done in range(0, 40, 5) if cluster_init_due("latent_kmeans", 12, done, 5)]
    assert due == [15]
    assert [done for done in range(0, 40, 5) if cluster_init_due("latent_kmeans", 0, done, 5)] == [0]
    assert not any(cluster_init_due("random", 10, done, 5) for done in range(0, 40, 5))


def test_training_applies_it_once_and_resuming_at_its_step_gives_the_same_run(model_and_data):
    model, data = model_and_data
    params = model.init(jax.random.key(1), data)
    straight = train(model, params, data, BASE)
    saved: list[TrainState] = []
    first = train(model, params, data, dataclasses.replace(BASE, n_steps=10), checkpoint=saved.append)
    state = saved[-1]
    assert int(state.step) == 10
    # the first 10 steps ran without it; the same as a run without any initialisation
    plain = train(model, params, data, dataclasses.replace(BASE, n_steps=10, cluster_init="random"))
    for got, expected in zip(jax.tree.leaves(first.params), jax.tree.leaves(plain.params), strict=True):
        np.testing.assert_array_equal(got, expected)
    resumed = train(model, params, data, BASE, start=state)
    by_hand_params, _ = latent_kmeans_init(model, state.params, np.asarray(data), seed=BASE.seed)
    by_hand = train(
        model,
        params,
        data,
        dataclasses.replace(BASE, cluster_init="random"),
        start=state._replace(params=by_hand_params),
    )
    for got, resumed_leaf, expected in zip(
        jax.tree.leaves(straight.params), jax.tree.leaves(resumed.params), jax.tree.leaves(by_hand.params), strict=True
    ):
        np.testing.assert_allclose(got, resumed_leaf, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)
    assert not np.allclose(straight.params["prior"]["b_k"], plain.params["prior"]["b_k"])


def test_stacked_trials_get_the_init_of_their_solo_runs(model_and_data):
    model, data = model_and_data
    configs = [dataclasses.replace(BASE, seed=0), dataclasses.replace(BASE, seed=1, learning_rate=5e-3)]
    params = [model.init(jax.random.key(c.seed), data) for c in configs]
    results = train_stacked(model, params, data, configs, vectorize="map")
    for result, p, config in zip(results, params, configs, strict=True):
        solo = train(model, p, data, config)
        for got, expected in zip(jax.tree.leaves(result.params), jax.tree.leaves(solo.params), strict=True):
            np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize(
    ("train_section", "message"),
    [
        (
            {"cluster_init": "gmm"},
            "cluster_init must be one of 'random', 'kmeans', 'spectral', 'latent_kmeans', got 'gmm'",
        ),
        ({"cluster_init_step": -1}, "cluster_init_step must be ≥ 0"),
    ],
)
def test_config_refuses_an_unknown_cluster_init_or_a_negative_step(train_section, message):
    with pytest.raises(ConfigurationError, match=message):
        validate_config(config_from_mapping({"train": train_section}, RunConfig()))
