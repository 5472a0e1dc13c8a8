"""Checks of a run configuration: ranges, the limits of the numeric types, and warnings for likely mistakes.

[`validate_config`][expfam.experiment.config_checks.validate_config] runs whenever a configuration is
loaded ([`config_from_mapping`][expfam.experiment.config.config_from_mapping]); it needs no registry
(names are checked when the model is built). [`config_warnings`][expfam.experiment.config_checks.config_warnings]
lists settings that pass but are probably a mistake.
"""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING

from expfam.errors import ConfigurationError, ConfigurationWarning

if TYPE_CHECKING:
    from expfam.experiment.config import RunConfig

#: Starting points of the clusters (`[train] cluster_init`): `"random"` (each parameter's own
#: rule, [`expfam.model.Harmonium.init`][expfam.model.Harmonium.init]), `"kmeans"` (the observable's per-cluster biases
#: from KMeans on the data, [`kmeans_cluster_init`][expfam.experiment.train.cluster_start.kmeans_cluster_init]) or
#: `"latent_kmeans"` (the prior's clusters from KMeans on the posterior latent means at `cluster_init_step`,
#: [`latent_kmeans_init`][expfam.experiment.train.cluster_start.latent_kmeans_init]).
CLUSTER_INITS: tuple[str, ...] = ("random", "kmeans", "latent_kmeans")


def _check(condition: bool, message: str, key: str) -> None:
    if not condition:
        raise ConfigurationError(message, offending=key)


#: Largest count, size or step number: the array library indexes and counts steps in int32.
MAX_INT32 = 2**31 - 1
#: Largest trial count N: counts 0..N must be exact in float32 (integers up to 2^24 are).
MAX_N_TRIALS = 2**24
#: Largest seed: the data split and the random streams take an unsigned 32-bit seed.
MAX_SEED = 2**32 - 1
#: `[train]` and `[evaluate]` keys that are counts or step numbers (int32 on the accelerator).
_COUNT_KEYS: dict[str, tuple[str, ...]] = {
    "model": ("n_latent", "n_clusters"),
    "train": (
        "n_steps",
        "batch_size",
        "n_mc_samples",
        "n_conj_samples",
        "log_every",
        "checkpoint_every",
        "lr_warmup_steps",
        "kl_warmup_steps",
        "conj_warmup_steps",
        "cluster_init_step",
    ),
    "evaluate": ("n_r2_samples", "n_elbo_samples", "n_iwae_samples", "batch_size"),
}


def _check_upper_bounds(config: RunConfig) -> None:
    """Integers the numeric types cannot hold: counts above int32, `n_trials` above 2^24, seeds above 2^32 − 1."""
    for section, keys in _COUNT_KEYS.items():
        for key in keys:
            value = getattr(getattr(config, section), key)
            _check(
                value <= MAX_INT32,
                f"[{section}] {key} = {value} is larger than {MAX_INT32} (2^31 − 1, the largest int32 the array "
                "library counts with); use a smaller value",
                key,
            )
    _check(
        config.model.n_trials <= MAX_N_TRIALS,
        f"[model] n_trials = {config.model.n_trials} is larger than {MAX_N_TRIALS} (2^24, the largest count float32 "
        "holds exactly); use a smaller trial count, e.g. 16 or 255",
        "n_trials",
    )
    _check(
        0 <= config.train.seed <= MAX_SEED,
        f"[train] seed = {config.train.seed} is outside 0..{MAX_SEED} (an unsigned 32-bit seed); "
        "use a seed in that range, e.g. 0",
        "seed",
    )


def validate_config(config: RunConfig) -> None:
    """Range checks that need no registry (names are checked when the model is built).

    Lower bounds (≥ 1 counts, fractions in (0, 1), finite non-negative weights) and upper
    bounds from the numeric types: counts ≤ 2^31 − 1 (`MAX_INT32`), `n_trials` ≤
    2^24 (`MAX_N_TRIALS`), `seed` in 0..2^32 − 1 (`MAX_SEED`). What the
    machine's memory can hold depends on the data and is checked when the run is prepared.
    """
    model, train, data, evaluation = config.model, config.train, config.data, config.evaluate
    _check(
        model.n_clusters >= 2, f"n_clusters must be ≥ 2, got {model.n_clusters}; use at least 2 clusters", "n_clusters"
    )
    _check(model.n_latent >= 1, f"n_latent must be ≥ 1, got {model.n_latent}", "n_latent")
    _check(model.n_trials >= 1, f"n_trials must be ≥ 1, got {model.n_trials}", "n_trials")
    _check_upper_bounds(config)
    _check(
        math.isfinite(train.learning_rate) and train.learning_rate > 0,
        f"learning_rate must be a positive number, got {train.learning_rate}; try 1e-3",
        "learning_rate",
    )
    for key in ("n_steps", "batch_size", "n_mc_samples", "n_conj_samples", "log_every"):
        value = getattr(train, key)
        _check(value >= 1, f"{key} must be ≥ 1, got {value}", key)
    _check(
        train.checkpoint_every >= 0,
        f"checkpoint_every must be ≥ 0 (chunks between checkpoints; 0: none), got {train.checkpoint_every}",
        "checkpoint_every",
    )
    for name, weight in train.loss_weights.items():
        _check(
            math.isfinite(weight) and weight >= 0,
            f"[train.loss_weights] {name} must be a finite number ≥ 0, got {weight}; 0 turns the term off",
            name,
        )
    for key in ("lr_warmup_steps", "kl_warmup_steps", "conj_warmup_steps"):
        value = getattr(train, key)
        _check(value >= 0, f"{key} must be ≥ 0, got {value}", key)
    for key in ("weight_decay", "conj_weight", "entropy_weight", "posterior_entropy_weight", "recognition_conj_weight"):
        value = getattr(train, key)
        _check(math.isfinite(value) and value >= 0, f"{key} must be a finite number ≥ 0, got {value}", key)
    _check(
        bool(train.elbo_estimator),
        "elbo_estimator must name a loss term, e.g. 'elbo' or 'rao_blackwell_elbo'",
        "elbo_estimator",
    )
    _check(
        train.rho_mode in ("learned", "analytic"),
        f"rho_mode must be 'learned' or 'analytic', got {train.rho_mode!r}",
        "rho_mode",
    )
    _check(
        train.cluster_init_step >= 0,
        f"cluster_init_step must be ≥ 0 (the step of the cluster initialisation), got {train.cluster_init_step}",
        "cluster_init_step",
    )
    schedule, _ = train.block_starts, train.block_factors  # the texts parsed (and checked) once, here
    _check(
        train.cluster_init in CLUSTER_INITS,
        f"cluster_init must be one of {', '.join(repr(name) for name in CLUSTER_INITS)}, got {train.cluster_init!r}",
        "cluster_init",
    )
    _check(
        train.cluster_init != "kmeans" or "xk" not in schedule,
        "cluster_init 'kmeans' starts the 'xk' block from KMeans, but block_schedule holds it at zero until "
        f"step {schedule.get('xk')}; drop xk from block_schedule or use cluster_init 'random'",
        "cluster_init",
    )
    _check(
        0.0 < data.test_fraction < 1.0, f"test_fraction must be in (0, 1), got {data.test_fraction}", "test_fraction"
    )
    _check(
        0.0 <= data.validation_fraction < 1.0,
        f"validation_fraction must be in [0, 1), got {data.validation_fraction}; 0 evaluates on the test split",
        "validation_fraction",
    )
    for key in ("n_r2_samples", "n_elbo_samples", "n_iwae_samples", "batch_size"):
        value = getattr(evaluation, key)
        _check(value >= 1, f"[evaluate] {key} must be ≥ 1, got {value}", key)


def config_warnings(config: RunConfig) -> list[str]:
    r"""Settings that pass [`validate_config`][expfam.experiment.config.validate_config] but are probably a mistake.

    Today one: `kl_warmup_steps ≥ n_steps`. The KL weight rises from 0 to 1 over the
    warmup ($\beta_t = \min(1, t / T_{\text{warmup}})$), so such a run ends before it
    optimises the full ELBO.

    Returns:
        One message per problem (empty when there is none).
    """
    train = config.train
    messages = []
    if train.kl_warmup_steps > 0 and train.kl_warmup_steps >= train.n_steps:
        messages.append(
            f"[train] kl_warmup_steps = {train.kl_warmup_steps} is not below n_steps = {train.n_steps}: the KL "
            "warmup never finishes, so the run never trains on the full ELBO; lower kl_warmup_steps (e.g. to "
            f"{train.n_steps // 4}) or raise n_steps"
        )
    return messages


def warn_about_config(config: RunConfig) -> None:
    """Issue each of [`config_warnings`][expfam.experiment.config.config_warnings] with `warnings.warn`.

    The category is [`ConfigurationWarning`][expfam.errors.ConfigurationWarning]; training
    ([`train_run`][expfam.experiment.pipeline.train_run], sweeps and
    [`HarmoniumClustering.fit`][expfam.sklearn.HarmoniumClustering.fit]) calls it once every
    check has passed, just before the first step; the command line prints each as one
    `warning: ...` line on stderr.
    """
    for message in config_warnings(config):
        warnings.warn(message, ConfigurationWarning, stacklevel=2)


__all__ = [
    "CLUSTER_INITS",
    "MAX_INT32",
    "MAX_N_TRIALS",
    "MAX_SEED",
    "config_warnings",
    "validate_config",
    "warn_about_config",
]
