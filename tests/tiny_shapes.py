"""The suite's canonical tiny shapes: one place for the model and estimator sizes most tests share.

Most of a small test's time is JAX compiling its programs, once per distinct shape (the
run's persistent compilation cache then serves every later test and module that asks for the
same program). Tests whose identity does not depend on the shape therefore use one of these
instead of a size of their own; tests where the shape *is* what is tested (edge sizes, drawn
layouts, a shape a bug needed) keep theirs and say so.

- `ENUMERATED`: identities checked by enumerating every latent state `z = (y, k)`:
  `2² · 3 = 12` states, `K ≥ 2` and `n ≥ 2` so that every block and every cluster term is
  exercised.
- `TRAINED`: training-engine tests (chunks, schedules, divergence, stacking): a model that
  trains in a few dozen steps, with `TRAINED_ROWS` rows of data.
- `ESTIMATOR`: the scikit-learn estimator's tiny settings on a slice of the digits.

Import with `from tiny_shapes import ...` (`tests/` is on `sys.path`: pytest puts the folder
of the root `conftest.py` there).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

from expfam.builder import build_model
from expfam.model import Harmonium

#: Enumerated identities: binomial with 3 trials, D = 3, n = 2, K = 3.
ENUMERATED: dict[str, Any] = {
    "observable": "binomial",
    "observable_options": {"n_trials": 3},
    "data_dim": 3,
    "n_latent": 2,
    "n_clusters": 3,
}

#: Training-engine tests: binomial with 4 trials, D = 6, n = 3, K = 3.
TRAINED: dict[str, Any] = {
    "observable": "binomial",
    "observable_options": {"n_trials": 4},
    "data_dim": 6,
    "n_latent": 3,
    "n_clusters": 3,
}
TRAINED_ROWS = 40

#: `HarmoniumClustering`'s tiny settings: a few dozen steps, one chunk length, K = 4, n = 2.
ESTIMATOR: dict[str, Any] = dict(
    n_clusters=4,
    n_latent=2,
    n_steps=30,
    log_every=10,
    batch_size=32,
    n_mc_samples=2,
    n_conj_samples=32,
    lr_warmup_steps=5,
    kl_warmup_steps=10,
    conj_warmup_steps=5,
    n_elbo_samples=3,
    random_state=0,
)
#: The rows of the digits the estimator tests fit and score.
ESTIMATOR_ROWS = 400


def enumerated_model(blocks: str | Sequence[str] = "full") -> Harmonium:
    """The `ENUMERATED` model with `blocks` (a block set's name or a list of block names)."""
    return build_model(**ENUMERATED, blocks=blocks if isinstance(blocks, str) else list(blocks))


def trained_model(blocks: str | Sequence[str] = "full") -> Harmonium:
    """The `TRAINED` model with `blocks`."""
    return build_model(**TRAINED, blocks=blocks if isinstance(blocks, str) else list(blocks))


def trained_data(dtype: Any = jnp.float32) -> jax.Array:
    """`TRAINED_ROWS` binomial rows for the `TRAINED` model (success probability 0.3, key 0)."""
    n_trials, data_dim = TRAINED["observable_options"]["n_trials"], TRAINED["data_dim"]
    return jax.random.binomial(jax.random.PRNGKey(0), n_trials, 0.3, (TRAINED_ROWS, data_dim)).astype(dtype)
