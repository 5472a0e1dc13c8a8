"""The step-time benchmark still runs against the library (a smoke run at tiny shapes).

Benchmarks build training states and chunks through the public training API; a change
there that a benchmark was not updated for should fail here, not in a user's hands.
The figures themselves are not asserted (speed is never asserted in tests), only that
they are there and make sense: positive times, finite ratios.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "step_time.py"

#: A yardstick with the interface `--reference` loads (`p`, `s`, `key`, `data`, `chunk`), at tiny shapes.
TINY_REFERENCE = """
import jax, jax.numpy as jnp, optax
D = int(__import__("sys").argv[1])
opt = optax.adam(1e-3)

@jax.jit
def chunk(p, s, key, data, step0):
    def body(carry, i):
        p, s, key = carry
        key, kb = jax.random.split(key)
        x = data[jax.random.randint(kb, (4,), 0, data.shape[0])]
        g = jax.grad(lambda q: jnp.sum((x @ q["w"]) ** 2))(p)
        u, s = opt.update(g, s, p)
        return (optax.apply_updates(p, u), s, key), None
    (p, s, key), _ = jax.lax.scan(body, (p, s, key), jnp.arange(20))
    return p, s, key

key = jax.random.PRNGKey(0)
data = jnp.ones((16, D))
p = {"w": jnp.ones((D, 2))}
s = opt.init(p)
p, s, key = chunk(p, s, key, data, 0)
"""


@pytest.mark.slow
def test_step_time_with_a_reference_runs_at_tiny_shapes_and_ends_with_its_json_line(tmp_path: Path) -> None:
    (tmp_path / "reference.py").write_text(TINY_REFERENCE)
    shapes = ["--batch-size", "1", "--n-latent", "1", "--n-clusters", "2", "--data-dim", "1"]  # the smallest allowed
    command = [sys.executable, str(SCRIPT), "--chunk", "1", "--repeats", "1", "--blocks", "hierarchical", *shapes]
    command += ["--reference", str(tmp_path / "reference.py")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "the yardstick runs at batch 512" in result.stdout  # the shapes differ from the yardstick's
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert (summary["batch_size"], summary["n_latent"], summary["n_clusters"], summary["data_dim"]) == (1, 1, 2, 1)
    assert (summary["chunk"], summary["repeats"]) == (1, 1)
    for name in ("hierarchical", "reference"):
        assert summary[f"{name}_s"] > 0 and summary[f"{name}_cpu_s"] > 0
    assert summary["hierarchical_step_mb"] > 0 and summary["peak_rss_mb"] > 0
    assert math.isfinite(summary["hierarchical_over_reference"]) and summary["hierarchical_over_reference"] > 0
    assert summary["full_over_hierarchical"] is None  # the full block set was not timed
