"""Shapes are checked, not guessed: families and the model refuse observations of the wrong trailing shape."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from expfam import ShapeError
from expfam.builder import build_model
from expfam.families import Binomial, Categorical, DiagonalNormal
from expfam.shapes import as_observations


@pytest.fixture(scope="module")
def model_and_params():
    model = build_model(
        observable="binomial", observable_options={"n_trials": 4}, data_dim=6, n_latent=2, n_clusters=3, blocks="full"
    )
    return model, model.init(jax.random.key(0))


@pytest.mark.parametrize("family", [Binomial(3, n_trials=4), DiagonalNormal(3), Categorical(4)])
def test_log_density_is_for_one_observation_and_log_densities_for_a_batch(family):
    params = family.reference_params()
    batch = np.asarray(family.sample(jax.random.key(1), params, (5,)))
    densities = family.log_densities(params, batch)
    assert densities.shape == (5,)
    for row, value in zip(batch, densities, strict=True):
        np.testing.assert_allclose(family.log_density(params, row), value, rtol=1e-6)
    if family.data_shape:  # a categorical observation is a scalar: a batch of them is caught below
        with pytest.raises(ShapeError, match=r"one observation.*log_densities"):
            family.log_density(params, batch)
    with pytest.raises(ShapeError, match=r"batch of .* has shape \(B"):
        family.log_densities(params, batch[0])


def test_model_methods_refuse_an_unbatched_observation(model_and_params):
    model, params = model_and_params
    x = jnp.ones((4, 6))
    assert model.assign(params, x).shape == (4,)
    with pytest.raises(ShapeError, match=r"shape \(6,\).*x\[None\]"):
        model.assign(params, x[0])
    with pytest.raises(ShapeError, match=r"shape \(4, 5\)"):
        model.cluster_responsibilities(params, x[:, :5])
    with pytest.raises(ShapeError, match=r"shape \(2, 3\)"):
        model.reconstruct(params, jnp.ones((2, 3)))
    with pytest.raises(ShapeError, match="one observation"):
        model.log_joint(params, x, *model.sample_prior(jax.random.key(0), params, 2))


def test_checks_hold_under_jit(model_and_params):
    model, params = model_and_params
    assert jax.jit(model.assign)(params, jnp.ones((2, 6))).shape == (2,)
    with pytest.raises(ShapeError):
        jax.jit(model.assign)(params, jnp.ones(6))


def test_as_observations_accepts_batches_single_observations_and_images():
    family = Binomial(6, n_trials=4)
    for x, single in (
        (np.zeros((5, 6)), False),
        (np.zeros(6), True),
        (np.zeros((5, 2, 3)), False),
        (np.zeros((2, 3)), True),
    ):
        batch, was_single = as_observations(family, x, image_shape=(2, 3))
        assert batch.shape == ((1, 6) if single else (5, 6)) and was_single == single
    with pytest.raises(ShapeError, match=r"\(B, 6\) or \(B, 2, 3\)"):
        as_observations(family, np.zeros((5, 3, 2)), image_shape=(2, 3))
