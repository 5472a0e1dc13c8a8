"""Cluster-usage diagnostics against cases whose answer is known in closed form."""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from expfam.builder import build_model
from expfam.experiment.runs.plots import plot_cluster_usage, plot_training_curves
from expfam.experiment.usage import parameter_norms, usage_metrics

K, D, N_TRIALS = 4, 5, 3


@pytest.fixture(scope="module")
def model_and_data():
    model = build_model(
        observable="binomial",
        observable_options={"n_trials": N_TRIALS},
        data_dim=D,
        n_latent=2,
        n_clusters=K,
        blocks="full",
    )
    data = np.asarray(jax.random.binomial(jax.random.PRNGKey(0), N_TRIALS, 0.4, (30, D)), dtype=np.float32)
    return model, data


def _symmetric(model, data):
    """Every block and every cluster parameter at zero: q(k | x) = p(k) = 1/K for every x."""
    params = model.init(jax.random.PRNGKey(1), jnp.asarray(data))
    params["prior"] = {name: jnp.zeros_like(value) for name, value in params["prior"].items()}
    params["likelihood"]["blocks"] = {name: jnp.zeros_like(v) for name, v in params["likelihood"]["blocks"].items()}
    return params


def test_symmetric_model_uses_every_cluster_equally(model_and_data):
    model, data = model_and_data
    usage = usage_metrics(model, _symmetric(model, data), data)
    assert usage["usage_entropy"] == pytest.approx(np.log(K), rel=1e-5)
    assert usage["usage_max"] == pytest.approx(1 / K, rel=1e-5)
    assert usage["prior_max"] == pytest.approx(1 / K, rel=1e-5)
    assert usage["rho_k_norm"] == 0.0 and usage["norm_xyk"] == 0.0


def test_one_dominant_cluster_is_one_active_cluster_with_zero_usage_entropy(model_and_data):
    model, data = model_and_data
    params = _symmetric(model, data)
    params["prior"]["b_k"] = jnp.array([0.0, 60.0, 0.0])  # logits of clusters 1..K-1; cluster 2 takes all
    usage = usage_metrics(model, params, data)
    assert usage["active"] == 1.0
    assert usage["usage_max"] == pytest.approx(1.0, abs=1e-6)
    assert usage["prior_max"] == pytest.approx(1.0, abs=1e-6)
    assert usage["usage_entropy"] == pytest.approx(0.0, abs=1e-5)


def test_norms_are_the_block_norms_and_rho_k_is_the_binomial_log_partition_shift(model_and_data):
    model, data = model_and_data
    params = model.init(jax.random.PRNGKey(2), jnp.asarray(data))
    u = 0.7 * jax.random.normal(jax.random.PRNGKey(3), (D, K - 1))
    params["likelihood"]["blocks"]["xk"] = u
    norms = parameter_norms(model, params)
    for name in ("xy", "xyk", "xk"):
        expected = np.sqrt(np.sum(np.square(np.asarray(params["likelihood"]["blocks"][name], dtype=np.float64))))
        assert norms[f"norm_{name}"] == pytest.approx(expected, rel=1e-5)
    a = np.asarray(params["likelihood"]["a"], dtype=np.float64)
    # ρ_k[j] = ψ_X(a + U e_j) − ψ_X(a), ψ_X(θ) = N Σ_d log(1 + e^{θ_d}) for Binomial(N)
    psi = lambda theta: N_TRIALS * np.sum(np.logaddexp(0.0, theta), axis=-1)  # noqa: E731
    rho_k = psi(a + np.asarray(u, dtype=np.float64).T) - psi(a)
    assert norms["rho_k_norm"] == pytest.approx(np.linalg.norm(rho_k), rel=1e-4)
    assert norms["rho_y_norm"] == pytest.approx(float(np.linalg.norm(params["rho_y"])), abs=1e-7)


def test_usage_plot_and_training_curves_draw_from_a_history_with_usage_columns(tmp_path: Path):
    history = [
        {"step": s, "loss": 1.0 / s, "active": 30 - s // 100, "usage_entropy": 3.0, "usage_max": 0.1}
        | {"prior_max": 0.05, "norm_xy": 1.0, "norm_xyk": 0.0, "rho_k_norm": 10.0 * s, "rho_y_norm": 0.1}
        for s in (100, 200, 300)
    ]
    path = plot_cluster_usage(history, 30, tmp_path / "usage.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    curves = plot_training_curves(history, tmp_path / "curves.png")
    assert curves.is_file()
