"""The block schedule: delayed blocks start at zero and stay there until their step (docs/collapse.md)."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from expfam.errors import ConfigurationError
from expfam.experiment.config import TrainConfig, config_from_mapping
from expfam.experiment.config_text import parse_block_learning_rates, parse_block_schedule
from expfam.experiment.prepare import prepare_run
from expfam.experiment.train.loop import train
from expfam.experiment.train.optimizer import make_optimizer
from expfam.experiment.train.step import initial_state
from tiny_shapes import trained_data, trained_model

# The README's test line leaves block schedules to the slow tier, which .ci/run runs (docs/development.md, "Two tiers").
pytestmark = pytest.mark.slow

TINY = TrainConfig(
    n_steps=6,
    log_every=3,
    batch_size=16,
    n_mc_samples=2,
    n_conj_samples=32,
    kl_warmup_steps=4,
    conj_warmup_steps=4,
    lr_warmup_steps=2,
    learning_rate=1e-2,
)


def _model(blocks: str):
    return trained_model(blocks)


@pytest.fixture(scope="module")
def data():
    return trained_data()


def test_schedule_text_parses_to_start_steps():
    assert parse_block_schedule("xy:0, xyk:1000,xk:250") == {"xy": 0, "xyk": 1000, "xk": 250}
    assert parse_block_schedule("") == {}


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("xyk=1000", r"item 'xyk=1000' is not NAME:STEP; write e.g. 'xyk:1000,xk:1000'"),
        ("xyk:soon", r"item 'xyk:soon' is not NAME:STEP"),
        (":10", r"item ':10' is not NAME:STEP"),
        ("xk:-5", r"block 'xk' starts at step -5; steps must be ≥ 0"),
        ("xk:5,xk:6", r"names block 'xk' twice"),
    ],
)
def test_malformed_schedules_are_refused_when_the_config_is_read(text, match):
    with pytest.raises(ConfigurationError, match=match):
        config_from_mapping({"train": {"block_schedule": text}})


def test_a_block_outside_the_block_set_is_refused_before_the_data_is_loaded():
    config = config_from_mapping(
        {"model": {"block": "hierarchical"}, "data": {"dataset": "npz", "data": "/no/such/file.npz"}},
    )
    config = dataclasses.replace(config, train=dataclasses.replace(config.train, block_schedule="xk:100"))
    with pytest.raises(ConfigurationError, match=r"names block 'xk', which the model does not have; its blocks are xy"):
        prepare_run(config)


def test_without_delayed_blocks_the_optimizer_is_plain_adam():
    """Runs without a schedule keep the optimiser state (and checkpoints) they always had."""
    params = {"w": jnp.zeros(3)}
    plain = jax.tree.structure(make_optimizer(TINY).init(params))
    started = jax.tree.structure(make_optimizer(dataclasses.replace(TINY, block_schedule="xy:0")).init(params))
    assert plain == started


def test_delayed_blocks_start_at_zero_and_move_from_their_step_on(data):
    model = _model("full")
    config = dataclasses.replace(TINY, block_schedule="xyk:3,xk:3")
    params = model.init(jax.random.PRNGKey(1), data)
    held = train(model, params, data, dataclasses.replace(config, n_steps=3)).params
    assert not np.any(held["likelihood"]["blocks"]["xyk"]) and not np.any(held["likelihood"]["blocks"]["xk"])
    assert not np.allclose(held["likelihood"]["blocks"]["xy"], params["likelihood"]["blocks"]["xy"])
    released = train(model, params, data, config).params
    assert np.any(released["likelihood"]["blocks"]["xyk"]) and np.any(released["likelihood"]["blocks"]["xk"])


def test_a_schedule_that_never_starts_the_cluster_blocks_trains_the_hierarchical_model(data):
    """With V = U = 0 the full model *is* the hierarchical one: same loss, same gradients for the
    shared parameters, same samples from the same keys, so the same trained parameters."""
    hierarchical, full = _model("hierarchical"), _model("full")
    params = hierarchical.init(jax.random.PRNGKey(1), data)
    zeros = {"xyk": jnp.zeros((2, 6, 3)), "xk": jnp.zeros((6, 2))}
    full_params = {
        **params,
        "likelihood": {**params["likelihood"], "blocks": {**params["likelihood"]["blocks"], **zeros}},
    }
    config = dataclasses.replace(TINY, n_steps=6)
    expected = train(hierarchical, params, data, config)
    got = train(full, full_params, data, dataclasses.replace(config, block_schedule="xyk:7,xk:7"))
    np.testing.assert_allclose(got.history["loss"], expected.history["loss"], rtol=1e-5)
    for name in ("prior", "rho_y"):
        for a, b in zip(jax.tree.leaves(got.params[name]), jax.tree.leaves(expected.params[name]), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    for name in ("a",):
        np.testing.assert_allclose(got.params["likelihood"][name], expected.params["likelihood"][name], rtol=1e-5)
    np.testing.assert_allclose(
        got.params["likelihood"]["blocks"]["xy"], expected.params["likelihood"]["blocks"]["xy"], rtol=1e-5, atol=1e-6
    )
    assert not np.any(got.params["likelihood"]["blocks"]["xyk"]) and not np.any(
        got.params["likelihood"]["blocks"]["xk"]
    )


def test_initial_state_zeroes_the_delayed_blocks_of_any_initialisation(data):
    model = _model("full")
    params = model.init(jax.random.PRNGKey(1), data)
    config = dataclasses.replace(TINY, block_schedule="xy:0,xk:5")
    state = initial_state(params, config, make_optimizer(config))
    assert not np.any(state.params["likelihood"]["blocks"]["xk"])
    np.testing.assert_array_equal(state.params["likelihood"]["blocks"]["xyk"], params["likelihood"]["blocks"]["xyk"])
    np.testing.assert_array_equal(state.params["likelihood"]["blocks"]["xy"], params["likelihood"]["blocks"]["xy"])


def test_block_learning_rates_parse_and_refuse_bad_factors():
    assert parse_block_learning_rates("xyk:0.1, xk:2") == {"xyk": 0.1, "xk": 2.0}
    for text, match in (("xk:0", r"'xk:0' is not NAME:FACTOR with a factor > 0"), ("xk:0.1,xk:1", r"twice")):
        with pytest.raises(ConfigurationError, match=match):
            config_from_mapping({"train": {"block_learning_rates": text}})


def test_a_block_learning_rate_scales_that_block_s_adam_steps_only():
    """Adam's step is the same for every coordinate under a constant gradient, so the scaled
    block's step is exactly the factor times the others' (and zero while it is held)."""
    config = dataclasses.replace(TINY, lr_warmup_steps=0, block_learning_rates="xk:0.25", block_schedule="xk:2")
    optimizer = make_optimizer(config)
    params = {"likelihood": {"a": jnp.zeros(3), "blocks": {"xy": jnp.zeros(2), "xk": jnp.zeros(2)}}}
    grads = jax.tree.map(jnp.ones_like, params)
    state = optimizer.init(params)
    steps = []
    for _ in range(3):
        updates, state = optimizer.update(grads, state, params)
        steps.append(updates["likelihood"])
    for step in steps:
        np.testing.assert_allclose(step["blocks"]["xy"], step["a"][:2], rtol=1e-6)
    assert not np.any(steps[0]["blocks"]["xk"]) and not np.any(steps[1]["blocks"]["xk"])
    np.testing.assert_allclose(steps[2]["blocks"]["xk"], 0.25 * steps[2]["a"][:2], rtol=1e-6)
