"""The full-step ablation benchmark removes exactly the piece each variant names, and still runs.

Speed is never asserted. What is asserted: each variant's replacements change the model's
computation in the way the variant's name says (checked in-process against hand-written
formulas, at tiny shapes), and the script's JSON line prices the pieces as the documented
differences of its own step times.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from expfam.builder import build_model
from expfam.testing import random_model_params

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "full_ablation.py"


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("full_ablation", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def case() -> dict[str, Any]:
    model = build_model(
        observable="binomial",
        observable_options={"n_trials": 4},
        data_dim=6,
        n_latent=3,
        n_clusters=4,
        blocks="full",
    )
    params = random_model_params(model, jax.random.PRNGKey(0), scale=0.3)
    keys = jax.random.split(jax.random.PRNGKey(1), 3)
    return {
        "model": model,
        "params": params,
        "x": jax.random.binomial(keys[0], 4, 0.3, (5, 6)).astype(jnp.float32),
        "y": jax.random.bernoulli(keys[1], 0.5, (9, 3)).astype(jnp.float32),
        "k": jax.random.randint(keys[2], (9,), 0, 4),
    }


def _apply(monkeypatch: pytest.MonkeyPatch, variant: str) -> None:
    for module, name, value in _script().replacements(variant):
        monkeypatch.setattr(module, name, value)


def test_dense_offsets_leave_only_the_shared_matrix_at_the_sampled_states(monkeypatch, case) -> None:
    model, params, y, k = case["model"], case["params"], case["y"], case["k"]
    before = model.observable_log_partition(params, y, k)
    _apply(monkeypatch, "dense-offsets")
    after = model.observable_log_partition(params, y, k)
    theta = params["likelihood"]["a"] + y @ params["likelihood"]["blocks"]["xy"].T
    np.testing.assert_allclose(after, jax.vmap(model.observable.log_partition)(theta), rtol=1e-5)
    assert not np.allclose(after, before, rtol=1e-3)


def test_no_adjoint_drops_every_cluster_matrix_from_the_posterior(monkeypatch, case) -> None:
    model, params, x = case["model"], case["params"], case["x"]
    before = model.posterior_params(params, x)["W_yk"]
    blocks = params["likelihood"]["blocks"]
    without_v = {**params, "likelihood": {**params["likelihood"], "blocks": {**blocks, "xyk": 0 * blocks["xyk"]}}}
    expected = model.posterior_params(without_v, x)["W_yk"]
    _apply(monkeypatch, "no-adjoint")
    after = model.posterior_params(params, x)["W_yk"]
    np.testing.assert_allclose(after, expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(after, before, rtol=1e-3)


def test_adjoint_no_grad_keeps_the_value_and_drops_the_gradient(monkeypatch, case) -> None:
    model, params, x = case["model"], case["params"], case["x"]

    def posterior_w_yk(v: jax.Array) -> jax.Array:
        blocks = {**params["likelihood"]["blocks"], "xyk": v}
        changed = {**params, "likelihood": {**params["likelihood"], "blocks": blocks}}
        return jnp.sum(jnp.sin(model.posterior_params(changed, x)["W_yk"]))

    v = params["likelihood"]["blocks"]["xyk"]
    value, gradient = jax.value_and_grad(posterior_w_yk)(v)
    assert np.any(np.abs(gradient) > 1e-3)
    _apply(monkeypatch, "adjoint-no-grad")
    value_after, gradient_after = jax.value_and_grad(posterior_w_yk)(v)
    np.testing.assert_allclose(value_after, value, rtol=1e-6)
    assert np.all(gradient_after == 0)


def test_neither_removes_both_pieces_and_unknown_variants_are_refused() -> None:
    script = _script()
    names = sorted(name for _, name, _ in script.replacements("neither"))
    assert names == ["cluster_adjoint", "cluster_affine_sorted"]
    assert script.replacements("full") == []
    with pytest.raises(ValueError, match=r"unknown variant 'fast'.*choose one of full"):
        script.replacements("fast")


def test_pieces_are_the_documented_differences() -> None:
    step = {"full": 5.0, "dense-offsets": 3.0, "adjoint-no-grad": 4.5, "no-adjoint": 2.0, "neither": 1.5}
    pieces = _script().priced_pieces(step, hierarchical=1.0)
    assert pieces == {"grouped_product": 2.0, "adjoint_backward": 0.5, "adjoint": 3.0, "rest": 0.5}
    assert _script().priced_pieces({"full": 5.0, "neither": 1.5}, hierarchical=1.0) == {"rest": 0.5}


@pytest.mark.slow
def test_full_ablation_runs_at_tiny_shapes_and_ends_with_its_json_line() -> None:
    shapes = ["--batch-size", "8", "--n-latent", "4", "--n-clusters", "3", "--data-dim", "16"]
    command = [sys.executable, str(SCRIPT), "--rounds", "1", "--repeats", "1", "--chunk", "2", *shapes]
    command += ["--variants", "full", "neither"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False, cwd=SCRIPT.parent)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(summary["steps_s"]) == {"full", "neither"}
    assert summary["pieces_s"] == {"rest": pytest.approx(summary["steps_s"]["neither"] - summary["hierarchical_s"])}


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="pinning to CPUs needs os.sched_setaffinity (Linux)")
def test_a_bad_core_count_is_refused_before_any_work() -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--cores", "0"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode != 0
    assert "--cores must be between 1 and" in result.stderr
    assert result.stdout == ""
