"""The training engine: chunking does not change results, NaN is caught with step and term."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from expfam import TrainingDivergedError, build_registry
from expfam.experiment.config import TrainConfig
from expfam.experiment.train.loop import train
from expfam.experiment.train.optimizer import make_optimizer
from expfam.experiment.train.step import loss_weights
from expfam.experiment.train.streams import stream_key
from expfam.hookspecs import hookimpl
from expfam.objective import Objective
from tiny_shapes import trained_data, trained_model

TINY = TrainConfig(
    n_steps=10,
    log_every=5,
    batch_size=16,
    n_mc_samples=2,
    n_conj_samples=32,
    kl_warmup_steps=4,
    conj_warmup_steps=4,
    lr_warmup_steps=3,
    learning_rate=1e-2,
)


@pytest.fixture(scope="module")
def model_and_data():
    return trained_model("full"), trained_data()


def test_chunk_length_does_not_change_the_result(model_and_data):
    model, data = model_and_data
    params = model.init(jax.random.PRNGKey(1), data)
    a = train(model, params, data, TINY)
    b = train(model, params, data, dataclasses.replace(TINY, log_every=10))
    assert a.steps == b.steps == 10
    assert len(a.history["loss"]) == 10
    np.testing.assert_allclose(a.history["loss"], b.history["loss"], rtol=1e-5)
    for leaf_a, leaf_b in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params), strict=True):
        np.testing.assert_allclose(leaf_a, leaf_b, rtol=1e-5, atol=1e-6)


def test_training_moves_every_parameter_group(model_and_data):
    model, data = model_and_data
    params = model.init(jax.random.PRNGKey(1), data)
    result = train(model, params, data, TINY)
    for path, (before, after) in zip(
        jax.tree_util.tree_flatten_with_path(params)[0],
        zip(jax.tree.leaves(params), jax.tree.leaves(result.params), strict=True),
        strict=True,
    ):
        assert not np.allclose(before, after), f"{path[0]} did not change"


def test_learning_rate_warms_up_linearly():
    optimizer = make_optimizer(dataclasses.replace(TINY, lr_warmup_steps=4, learning_rate=1.0))
    params = {"w": jnp.zeros(())}
    state = optimizer.init(params)
    sizes = []
    for _ in range(6):
        updates, state = optimizer.update({"w": jnp.ones(())}, state, params)
        sizes.append(float(-updates["w"]))
    # Adam's normalised step is 1 for a constant gradient, so the size is the learning rate.
    np.testing.assert_allclose(sizes, [0.0, 0.25, 0.5, 0.75, 1.0, 1.0], atol=1e-6)
    assert isinstance(make_optimizer(dataclasses.replace(TINY, weight_decay=0.1)), optax.GradientTransformation)


class _Explodes(Objective):
    name = "explodes"

    def finish(self, ctx, key, states, residual):
        value = jnp.where(ctx.step >= 7, jnp.nan, 0.0)
        return value, value


class _Plugin:
    @hookimpl
    def expfam_objectives(self):
        return [_Explodes()]


def test_nan_stops_training_with_step_and_term(model_and_data):
    model, data = model_and_data
    registry = build_registry(extra_plugins=[_Plugin()])
    params = model.init(jax.random.PRNGKey(1), data)
    weights = {**loss_weights(TINY), "explodes": 1.0}
    with pytest.raises(TrainingDivergedError, match=r"step 7: term 'explodes' is not finite") as info:
        train(model, params, data, TINY, weights=weights, registry=registry)
    assert info.value.step == 7 and info.value.term == "explodes"
    assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(info.value.last_params))
    # The kept parameters are those after step 6: the same as a clean 7-step run.
    clean = train(model, params, data, dataclasses.replace(TINY, n_steps=7), weights=weights, registry=registry)
    for kept, expected in zip(jax.tree.leaves(info.value.last_params), jax.tree.leaves(clean.params), strict=True):
        np.testing.assert_allclose(kept, expected, rtol=1e-5, atol=1e-6)


@jax.custom_vjp
def _nan_gradient_from(x, flag):
    return 0.0 * x


def _nan_gradient_fwd(x, flag):
    return 0.0 * x, flag


def _nan_gradient_bwd(flag, g):
    return jnp.where(flag > 0, jnp.nan, 0.0) * g, jnp.zeros_like(flag)


_nan_gradient_from.defvjp(_nan_gradient_fwd, _nan_gradient_bwd)


class _NaNGradient(Objective):
    """Value 0 at every step; from step 7 on its gradient is NaN."""

    name = "nan_gradient"

    def finish(self, ctx, key, states, residual):
        value = jnp.sum(_nan_gradient_from(ctx.params["likelihood"]["a"], (ctx.step >= 7).astype(jnp.float32)))
        return value, value


class _GradientPlugin:
    @hookimpl
    def expfam_objectives(self):
        return [_NaNGradient()]


def test_a_non_finite_gradient_with_finite_terms_stops_training(model_and_data):
    model, data = model_and_data
    registry = build_registry(extra_plugins=[_GradientPlugin()])
    params = model.init(jax.random.PRNGKey(1), data)
    weights = {**loss_weights(TINY), "nan_gradient": 1.0}
    with pytest.raises(TrainingDivergedError, match=r"step 7: the gradient is not finite") as info:
        train(model, params, data, TINY, weights=weights, registry=registry)
    assert info.value.step == 7 and info.value.term == "gradient"
    clean = train(model, params, data, dataclasses.replace(TINY, n_steps=7), weights=weights, registry=registry)
    for kept, expected in zip(jax.tree.leaves(info.value.last_params), jax.tree.leaves(clean.params), strict=True):
        assert np.all(np.isfinite(kept))
        np.testing.assert_allclose(kept, expected, rtol=1e-5, atol=1e-6)


def test_analytic_rho_mode_stores_the_fit(model_and_data):
    model, data = model_and_data
    params = model.init(jax.random.PRNGKey(1), data)
    config = dataclasses.replace(TINY, rho_mode="analytic")
    result = train(model, params, data, config)
    assert not np.allclose(result.params["rho_y"], 0.0)
    # The stored rho_y minimises the prior residual variance on the samples it was fitted to.
    key = jax.random.fold_in(stream_key(config.seed, "correction"), config.n_steps)
    _, rho_y, variance = model.fit_correction(key, result.params, config.n_conj_samples)
    np.testing.assert_allclose(result.params["rho_y"], rho_y, rtol=1e-5)
    shifted = {**result.params, "rho_y": rho_y + 0.1}
    assert variance <= model.prior_residual_variance(key, shifted, config.n_conj_samples)


def test_one_compiled_program_serves_every_run_of_a_shape(model_and_data, monkeypatch):
    """The chunk program is cached by `jax.jit` on the static step spec: runs that differ only in
    per-trial numbers trace the step once; a run of another shape traces it again."""
    from expfam.experiment.train import step as step_module
    from expfam.experiment.train.step import step_spec

    model, data = model_and_data
    traced = []
    real = step_module.make_weighted_loss

    def counting(*args, **kwargs):
        traced.append(args[1])
        return real(*args, **kwargs)

    monkeypatch.setattr(step_module, "make_weighted_loss", counting)
    jax.clear_caches()
    params = model.init(jax.random.PRNGKey(1), data)
    config = dataclasses.replace(TINY, log_every=10)
    numbers = dataclasses.replace(config, learning_rate=3e-3, seed=4, conj_weight=0.5, kl_warmup_steps=2)
    assert step_spec(model, config) == step_spec(model, numbers)
    assert hash(step_spec(model, config)) == hash(step_spec(model, numbers))
    train(model, params, data, config)
    train(model, params, data, numbers)
    assert len(traced) == 1
    other = dataclasses.replace(config, batch_size=8)
    assert step_spec(model, other) != step_spec(model, config)
    train(model, params, data, other)
    assert len(traced) == 2
