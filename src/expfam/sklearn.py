r"""A scikit-learn estimator: [`HarmoniumClustering`][expfam.sklearn.HarmoniumClustering] clusters the rows of `X`.

The constructor takes the knobs of a run configuration (`[model]` and `[train]`
of [`RunConfig`][expfam.experiment.config.RunConfig]) as keyword arguments, with
`random_state` in place of `seed`; `fit` trains exactly as `expfam train`
does with that seed (same streams, same numbers). It works with `clone`,
`Pipeline` and `GridSearchCV`.

* `predict(X)`: `argmax_k q(k | x)`; `predict_proba(X)` and `transform(X)`: the
  responsibilities `q(k | x)`, shape `(n, K)`; `fit_predict(X)`: `labels_`.
* `score(X)`: the mean Monte-Carlo ELBO `mean_i [c(x_i) + mean_s r(z_s)]` (a lower
  bound on the mean log-likelihood; higher is better), the mean of `score_samples(X)`.
* `score_samples(X)`: each row's Monte-Carlo ELBO, shape `(n,)`.
* `sample(n_samples)`: `(X, labels)` drawn from the model, as `GaussianMixture.sample`.

Inputs are validated the scikit-learn way (2-D, finite, `n_features_in_` at
predict time) and then against the support of the observable family (counts in
`0..n_trials` for `binomial`; any real number for `normal`).

This module is part of floor 2 (it trains through [`expfam.experiment.train`][expfam.experiment.train]);
`import expfam` does not import it.

Examples:
    >>> from sklearn.datasets import load_digits
    >>> X = load_digits().data                                     # counts 0..16
    >>> model = HarmoniumClustering(n_clusters=10, n_latent=4, n_steps=200, random_state=0)  # doctest: +SKIP
    >>> model.fit(X).predict(X)[:5]                                 # doctest: +SKIP
"""

from __future__ import annotations

import functools
import sys
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_array, check_is_fitted

from expfam.builder import build_model
from expfam.experiment.config import EvaluateConfig, ModelConfig, TrainConfig, config_from_mapping, warn_about_config
from expfam.experiment.evaluation import assignments, compiled_method, in_batches
from expfam.experiment.prepare import model_spec
from expfam.experiment.train.loop import train
from expfam.experiment.train.streams import run_keys, stream_key
from expfam.model import Harmonium
from expfam.plugins import get_registry

#: The configuration's defaults, which the estimator's defaults are ([`ModelConfig`][expfam.experiment.config.ModelConfig],
#: [`TrainConfig`][expfam.experiment.config.TrainConfig], [`EvaluateConfig`][expfam.experiment.config.EvaluateConfig]).
_MODEL, _TRAIN, _EVALUATE = ModelConfig(), TrainConfig(), EvaluateConfig()
#: Where the estimator's defaults deliberately differ from the configuration's, and why:
#: `cluster_init = "random"` (a KMeans or latent-KMeans start needs at least `n_clusters` rows, and an
#: estimator must fit whatever `X` it is given, as scikit-learn's checks do with a few rows).
ESTIMATOR_DEFAULTS: dict[str, str] = {"cluster_init": "random"}

_MODEL_KEYS = ("block", "observable", "n_trials", "n_latent", "n_clusters")
_TRAIN_KEYS = (
    "learning_rate",
    "lr_warmup_steps",
    "weight_decay",
    "n_steps",
    "batch_size",
    "kl_warmup_steps",
    "conj_warmup_steps",
    "conj_weight",
    "entropy_weight",
    "posterior_entropy_weight",
    "recognition_conj_weight",
    "n_mc_samples",
    "n_conj_samples",
    "rho_mode",
    "cluster_init",
    "cluster_init_step",
    "log_every",
)


class HarmoniumClustering(ClusterMixin, TransformerMixin, BaseEstimator):
    """Variational conjugated mixture harmonium clustering, as a scikit-learn estimator.

    The training arguments are the `[model]` and `[train]` keys of a run configuration (docs/cli.md has
    the full table), and every default is the configuration's
    ([`ModelConfig`][expfam.experiment.config.ModelConfig], [`TrainConfig`][expfam.experiment.config.TrainConfig];
    `n_elbo_samples`: [`EvaluateConfig`][expfam.experiment.config.EvaluateConfig]), read from those
    dataclasses, with one deliberate difference (`ESTIMATOR_DEFAULTS`): `cluster_init` is `"random"`
    here unless given, where `expfam train` starts from `"latent_kmeans"` (a KMeans start needs at least
    `n_clusters` rows; an estimator fits whatever `X` it is given). The model is built from the one model
    spec of a run ([`expfam.experiment.prepare.model_spec`][expfam.experiment.prepare.model_spec]).

    Args:
        n_clusters: `K`, the number of clusters.
        n_latent: `n`, the number of binary latent units.
        block: a block set (`"hierarchical"`, `"full"`, ...) or comma-separated blocks.
        observable: the observable family (`"binomial"`, `"normal"`, ...).
        n_trials: `N` of a binomial observable.
        learning_rate: Adam learning rate (> 0).
        lr_warmup_steps: steps of the linear learning-rate warmup from 0.
        weight_decay: > 0 switches Adam to AdamW.
        n_steps: training steps.
        batch_size: observations per step, drawn with replacement.
        kl_warmup_steps: `β = min(1, step / kl_warmup_steps)`.
        conj_warmup_steps: `β_conj = min(1, step / conj_warmup_steps)`.
        conj_weight: weight of the conjugation penalty `Var_p[r]`.
        entropy_weight: weight of the prior cluster entropy `H(p(k))`.
        posterior_entropy_weight: weight of `H(mean over the batch of q(k|x))`.
        recognition_conj_weight: weight of the recognition-conjugation term (0: off).
        n_mc_samples: `S`, posterior samples per observation.
        n_conj_samples: `M`, prior samples for `Var_p[r]` (and the analytic `ρ` fit).
        rho_mode: `"learned"` or `"analytic"`.
        cluster_init: `"random"`, `"kmeans"`, `"spectral"` or `"latent_kmeans"` (docs/training.md,
            "Cluster initialisation").
        cluster_init_step: the step of the `"latent_kmeans"` initialisation.
        log_every: steps per chunk of training (one history row per chunk).
        n_elbo_samples: posterior samples per point in
            [`score`][expfam.sklearn.HarmoniumClustering.score].
        random_state: `int` (the run seed), `RandomState` or `None`.
        verbose: `0` (default) prints nothing; `1` prints one progress line per
            `log_every` training steps on stderr (step, elapsed time, loss, ELBO), as
            `expfam train` does without a terminal.

    Attributes:
        model_: the [`Harmonium`][expfam.model.Harmonium].
        params_: its trained parameters.
        labels_: clusters of the training rows.
        n_features_in_: `D`, the number of columns of `X`.
        seed_: the seed used.
        history_: the per-step loss history.
        n_iter_: the number of training steps run (`n_steps`).
    """

    def __init__(
        self,
        n_clusters: int = _MODEL.n_clusters,
        *,
        n_latent: int = _MODEL.n_latent,
        block: str = _MODEL.block,
        observable: str = _MODEL.observable,
        n_trials: int = _MODEL.n_trials,
        learning_rate: float = _TRAIN.learning_rate,
        lr_warmup_steps: int = _TRAIN.lr_warmup_steps,
        weight_decay: float = _TRAIN.weight_decay,
        n_steps: int = _TRAIN.n_steps,
        batch_size: int = _TRAIN.batch_size,
        kl_warmup_steps: int = _TRAIN.kl_warmup_steps,
        conj_warmup_steps: int = _TRAIN.conj_warmup_steps,
        conj_weight: float = _TRAIN.conj_weight,
        entropy_weight: float = _TRAIN.entropy_weight,
        posterior_entropy_weight: float = _TRAIN.posterior_entropy_weight,
        recognition_conj_weight: float = _TRAIN.recognition_conj_weight,
        n_mc_samples: int = _TRAIN.n_mc_samples,
        n_conj_samples: int = _TRAIN.n_conj_samples,
        rho_mode: str = _TRAIN.rho_mode,
        cluster_init: str = ESTIMATOR_DEFAULTS["cluster_init"],
        cluster_init_step: int = _TRAIN.cluster_init_step,
        log_every: int = _TRAIN.log_every,
        n_elbo_samples: int = _EVALUATE.n_elbo_samples,
        random_state: int | np.random.RandomState | None = None,
        verbose: int = 0,
    ) -> None:
        self.n_clusters = n_clusters
        self.n_latent = n_latent
        self.block = block
        self.observable = observable
        self.n_trials = n_trials
        self.learning_rate = learning_rate
        self.lr_warmup_steps = lr_warmup_steps
        self.weight_decay = weight_decay
        self.n_steps = n_steps
        self.batch_size = batch_size
        self.kl_warmup_steps = kl_warmup_steps
        self.conj_warmup_steps = conj_warmup_steps
        self.conj_weight = conj_weight
        self.entropy_weight = entropy_weight
        self.posterior_entropy_weight = posterior_entropy_weight
        self.recognition_conj_weight = recognition_conj_weight
        self.n_mc_samples = n_mc_samples
        self.n_conj_samples = n_conj_samples
        self.rho_mode = rho_mode
        self.cluster_init = cluster_init
        self.cluster_init_step = cluster_init_step
        self.log_every = log_every
        self.n_elbo_samples = n_elbo_samples
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------ helpers
    def _seed(self) -> int:
        if isinstance(self.random_state, (int, np.integer)) and not isinstance(self.random_state, bool):
            return int(self.random_state)
        return int(check_random_state(self.random_state).randint(0, 2**31 - 1))

    def _config(self, seed: int) -> Any:
        mapping = {
            "model": {key: getattr(self, key) for key in _MODEL_KEYS},
            "train": {**{key: getattr(self, key) for key in _TRAIN_KEYS}, "seed": seed, "checkpoint_every": 0},
        }
        return config_from_mapping(mapping)

    def _validate(self, X: Any, *, reset: bool, model: Harmonium | None = None) -> np.ndarray:
        X = check_array(X, dtype=np.float64)
        if reset:
            self.n_features_in_ = X.shape[1]
        elif X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input"
            )
        if model is not None:
            model.observable.check_support(X, what="X")
        return X

    # ------------------------------------------------------------ fitting
    def fit(self, X: Any, y: Any = None) -> HarmoniumClustering:
        """Train on the rows of `X` (`(n_samples, n_features)`); `y` is ignored."""
        X = check_array(X, dtype=np.float64)
        if X.shape[0] < 2:
            raise ValueError(f"n_samples={X.shape[0]}: HarmoniumClustering needs at least 2 samples to fit")
        seed = self._seed()
        config = self._config(seed)
        registry = get_registry()
        model = build_model(model_spec(config, X.shape[1], registry), registry=registry)
        X = self._validate(X, reset=True, model=model)
        params = model.init(run_keys(seed)["init"], jnp.asarray(X))
        warn_about_config(config)
        callback = _progress_printer(config.train.n_steps) if self.verbose else None
        result = train(model, params, jnp.asarray(X), config.train, registry=registry, callback=callback)
        self.model_, self.params_, self.seed_, self.history_ = model, result.params, seed, result.history
        self.n_iter_ = int(result.steps)
        self.labels_ = self.predict(X)
        return self

    # ------------------------------------------------------------ inference
    def predict(self, X: Any) -> np.ndarray:
        """Clusters `argmax_k q(k | x)` of the rows of `X`, shape `(n_samples,)`."""
        check_is_fitted(self, "params_")
        X = self._validate(X, reset=False, model=self.model_)
        return assignments(self.model_, self.params_, X).astype(np.int64)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Responsibilities `q(k | x)`, shape `(n_samples, n_clusters)`; rows sum to 1."""
        check_is_fitted(self, "params_")
        X = self._validate(X, reset=False, model=self.model_)
        function = compiled_method(self.model_, "cluster_responsibilities")
        return in_batches(lambda batch: function(self.params_, batch), X).astype(np.float64)

    def transform(self, X: Any) -> np.ndarray:
        """The responsibilities [`predict_proba`][expfam.sklearn.HarmoniumClustering.predict_proba] (features for a downstream estimator)."""
        return self.predict_proba(X)

    def score_samples(self, X: Any) -> np.ndarray:
        r"""The Monte-Carlo ELBO of each row of `X`, shape `(n_samples,)`; higher is better.

        $\mathrm{ELBO}(x_i) = c(x_i) + \frac{1}{S}\sum_s r(z_s)$ with $S$ = `n_elbo_samples`
        states $z_s \sim q(z \mid x_i)$: the bound the model reports
        ([`Harmonium.elbo_terms`][expfam.model.Harmonium.elbo_terms]), a lower bound on
        $\log p(x_i)$ up to Monte-Carlo noise. Every row is scored on its own with the
        same key (the run's `evaluate` stream), so a row's value does not depend on
        the other rows or their order.
        """
        check_is_fitted(self, "params_")
        X = self._validate(X, reset=False, model=self.model_)
        key = run_keys(self.seed_)["evaluate"]
        model, n_samples = self.model_, int(self.n_elbo_samples)
        return in_batches(
            lambda batch: _row_elbo(key, self.params_, batch, model=model, n_samples=n_samples), X
        ).astype(np.float64)

    def score(self, X: Any, y: Any = None) -> float:
        r"""Mean Monte-Carlo ELBO of the rows of `X` (`n_elbo_samples` posterior samples each).

        The mean of [`score_samples`][expfam.sklearn.HarmoniumClustering.score_samples].
        """
        return float(np.mean(self.score_samples(X)))

    def sample(self, n_samples: int = 1) -> tuple[np.ndarray, np.ndarray]:
        r"""Draw `n_samples` rows from the fitted model: `(X, labels)`, as `GaussianMixture.sample`.

        Ancestral sampling from the model's generative side: $k \sim p(k)$, then
        $y \sim p(y \mid k)$ from the latent mixture (the model's prior, exact), then
        $x \sim p(x \mid y, k)$ from the observable family
        ([`Harmonium.sample`][expfam.model.Harmonium.sample]). The prior is the
        conjugated one the model learns, so these are draws from the model as trained,
        not a Gibbs chain on the harmonium's joint. The draws are a function of the
        fitted seed and `n_samples` (an integer `random_state` gives the same
        samples on every call).

        Returns:
            `X` of shape `(n_samples, n_features_in_)` in the observable's support
            (counts `0..n_trials` for `binomial`) and the clusters `labels` of shape
            `(n_samples,)`.
        """
        check_is_fitted(self, "params_")
        if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) or n_samples < 1:
            raise ValueError(f"Invalid value for 'n_samples': {n_samples!r}; it must be an integer ≥ 1")
        key = jax.random.fold_in(stream_key(self.seed_, "evaluate"), 1)
        x, _, k = self.model_.sample(key, self.params_, int(n_samples))
        return np.asarray(x, dtype=np.float64), np.asarray(k, dtype=np.int64)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.positive_only = self.observable in ("binomial", "poisson", "bernoulli", "categorical")
        tags.non_deterministic = self.random_state is None
        return tags


@functools.partial(jax.jit, static_argnames=("model", "n_samples"))
def _row_elbo(key: jax.Array, params: Any, x: jax.Array, *, model: Harmonium, n_samples: int) -> jax.Array:
    """`vmap(row ↦ elbo_terms(key, params, row[None], n_samples)[1][0])(x)`: each row scored alone.

    The model and the sample count are static, so `jax.jit` keeps one program per model shape.
    """

    def one(row: jax.Array) -> jax.Array:
        return model.elbo_terms(key, params, row[None], n_samples)[1][0]

    return jax.vmap(one)(x)


def _progress_printer(n_steps: int) -> Any:
    """A training callback printing `step S/N  elapsed T  loss L  ELBO E` on stderr per chunk."""
    started = time.monotonic()

    def show(step: int, params: Any, piece: dict[str, np.ndarray]) -> None:
        values = "  ".join(f"{name} {float(np.mean(piece[name])):.2f}" for name in ("loss", "elbo") if name in piece)
        elapsed = time.monotonic() - started
        print(f"step {step}/{n_steps}  elapsed {elapsed:.1f}s  {values}", file=sys.stderr, flush=True)

    return show


__all__ = ["ESTIMATOR_DEFAULTS", "HarmoniumClustering"]
