"""Data parallel and trial-parallel training on 4 forced host devices equal one-device training.

JAX fixes its device count when its backend starts, so the check runs in a subprocess with
``XLA_FLAGS=--xla_force_host_platform_device_count=4``; the subprocess prints the largest
differences as JSON and the test checks them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import dataclasses, json
    import jax, jax.numpy as jnp, numpy as np
    jax.config.update("jax_enable_x64", True)
    from expfam.builder import build_model
    from expfam.experiment.config import TrainConfig
    from expfam.experiment.train.loop import train, train_stacked

    assert len(jax.devices()) == 4, jax.devices()
    model = build_model(observable="binomial", observable_options={"n_trials": 4}, data_dim=6, n_latent=3,
                        n_clusters=3, blocks="hierarchical")
    data = jax.random.binomial(jax.random.key(0), 4, 0.3, (64, 6)).astype(jnp.float64)
    base = TrainConfig(n_steps=20, log_every=10, batch_size=16, n_mc_samples=2, n_conj_samples=32)
    configs = [dataclasses.replace(base, seed=s, learning_rate=lr) for s, lr in [(0, 3e-3), (1, 1e-2), (2, 5e-3)]]
    params = [model.init(jax.random.key(c.seed), data) for c in configs]

    def gap(a, b):
        return max(float(np.max(np.abs(np.asarray(x) - np.asarray(y)))) for x, y in
                   zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))

    one = train(model, params[0], data, configs[0])
    four = train(model, params[0], data, configs[0], devices=4)
    out = {"batch_params": gap(one.params, four.params),
           "batch_loss": float(np.max(np.abs(one.history["loss"] - four.history["loss"]))),
           "batch_sharded": len(four.params["rho_y"].sharding.device_set) if hasattr(four.params["rho_y"], "sharding") else 0}
    for mode in ("map", "vmap"):
        flat = train_stacked(model, params, data, configs, vectorize=mode)
        spread = train_stacked(model, params, data, configs, vectorize=mode, devices=4)
        out[f"trials_{mode}"] = max(gap(a.params, b.params) for a, b in zip(flat, spread, strict=True))
        out[f"trials_{mode}_steps"] = [r.steps for r in spread]
    with __import__("pytest").raises(Exception, match="does not split over 4 devices"):
        train(model, params[0], data, dataclasses.replace(configs[0], batch_size=10), devices=4)
    with __import__("pytest").raises(Exception, match="5 .*devices"):
        train(model, params[0], data, configs[0], devices=5)
    print(json.dumps(out))
    """
)


@pytest.mark.slow
def test_four_host_devices_give_the_one_device_numbers():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu"}
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    gaps = json.loads(done.stdout.strip().splitlines()[-1])
    # batch split over 4 devices: the sums over the batch are reordered, nothing else changes (float64)
    assert gaps["batch_params"] < 1e-9 and gaps["batch_loss"] < 1e-9
    assert gaps["batch_sharded"] == 4  # the parameters really live on the 4 devices (replicated)
    # trials spread over 4 devices (3 trials, padded to 4): each device runs its trials as one would
    for mode in ("map", "vmap"):
        assert gaps[f"trials_{mode}"] < 1e-9, gaps
        assert gaps[f"trials_{mode}_steps"] == [20, 20, 20]
