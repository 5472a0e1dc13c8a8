r"""A scikit-learn estimator: :class:`HarmoniumClustering` clusters the rows of ``X``.

The constructor takes the knobs of a run configuration (``[model]`` and ``[train]``
of :class:`~expfam.experiment.config.RunConfig`) as keyword arguments, with
``random_state`` in place of ``seed``; ``fit`` trains exactly as ``expfam train``
does with that seed (same streams, same numbers). It works with ``clone``,
``Pipeline`` and ``GridSearchCV``.

* ``predict(X)``: ``argmax_k q(k | x)``; ``predict_proba(X)`` and ``transform(X)``: the
  responsibilities ``q(k | x)``, shape ``(n, K)``; ``fit_predict(X)``: ``labels_``.
* ``score(X)``: the mean Monte-Carlo ELBO ``mean_i [c(x_i) + mean_s r(z_s)]`` (a lower
  bound on the mean log-likelihood; higher is better).

Inputs are validated the scikit-learn way (2-D, finite, ``n_features_in_`` at
predict time) and then against the support of the observable family (counts in
``0..n_trials`` for ``binomial``; any real number for ``normal``).

This module is part of floor 2 (it trains through :mod:`expfam.experiment.training`);
``import expfam`` does not import it.

Example:
    >>> from sklearn.datasets import load_digits
    >>> X = load_digits().data                                     # counts 0..16
    >>> model = HarmoniumClustering(n_clusters=10, n_latent=4, n_steps=200, random_state=0)  # doctest: +SKIP
    >>> model.fit(X).predict(X)[:5]                                 # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_array, check_is_fitted

from expfam.builder import build_model
from expfam.experiment.config import config_from_mapping, warn_about_config
from expfam.experiment.evaluation import assignments, compiled_method, in_batches
from expfam.experiment.pipeline import observable_options, parse_blocks
from expfam.experiment.streams import run_keys
from expfam.experiment.training import train
from expfam.model import Harmonium
from expfam.plugins import get_registry

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

    Args:
        n_clusters: ``K``. n_latent: binary latent units ``n``. block: block set or
        comma-separated blocks. observable: the observable family (``binomial``, ``normal``, ...).
        n_trials: ``N`` of a binomial observable. The training arguments are those of
        ``[train]`` (see ``docs/cli.md``); ``cluster_init`` is ``"random"`` here unless given
        (``"kmeans"``, ``"latent_kmeans"``: docs/training.md, "Cluster initialisation").
        n_elbo_samples: posterior samples per point in
        :meth:`score`. random_state: ``int`` (the run seed), ``RandomState`` or ``None``.

    Attributes:
        model_: the :class:`~expfam.model.Harmonium`. params_: its trained parameters.
        labels_: clusters of the training rows. n_features_in_: ``D``. seed_: the seed used.
        history_: the per-step loss history.
    """

    def __init__(
        self,
        n_clusters: int = 20,
        *,
        n_latent: int = 32,
        block: str = "hierarchical",
        observable: str = "binomial",
        n_trials: int = 16,
        learning_rate: float = 3e-3,
        lr_warmup_steps: int = 200,
        weight_decay: float = 0.0,
        n_steps: int = 6000,
        batch_size: int = 256,
        kl_warmup_steps: int = 2000,
        conj_warmup_steps: int = 1000,
        conj_weight: float = 0.1,
        entropy_weight: float = 5.0,
        posterior_entropy_weight: float = 10.0,
        recognition_conj_weight: float = 0.0,
        n_mc_samples: int = 10,
        n_conj_samples: int = 1024,
        rho_mode: str = "learned",
        cluster_init: str = "random",
        cluster_init_step: int = 1000,
        log_every: int = 250,
        n_elbo_samples: int = 10,
        random_state: int | np.random.RandomState | None = None,
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
        """Train on the rows of ``X`` (``(n_samples, n_features)``); ``y`` is ignored."""
        X = check_array(X, dtype=np.float64)
        if X.shape[0] < 2:
            raise ValueError(f"n_samples={X.shape[0]}: HarmoniumClustering needs at least 2 samples to fit")
        seed = self._seed()
        config = self._config(seed)
        registry = get_registry()
        model = build_model(
            observable=config.model.observable,
            observable_options=observable_options(config, registry),
            data_dim=X.shape[1],
            n_latent=config.model.n_latent,
            n_clusters=config.model.n_clusters,
            blocks=parse_blocks(config.model.block),
            registry=registry,
        )
        X = self._validate(X, reset=True, model=model)
        params = model.init(run_keys(seed)["init"], jnp.asarray(X))
        warn_about_config(config)
        result = train(model, params, jnp.asarray(X), config.train, registry=registry)
        self.model_, self.params_, self.seed_, self.history_ = model, result.params, seed, result.history
        self.labels_ = self.predict(X)
        return self

    # ------------------------------------------------------------ inference
    def predict(self, X: Any) -> np.ndarray:
        """Clusters ``argmax_k q(k | x)`` of the rows of ``X``, shape ``(n_samples,)``."""
        check_is_fitted(self, "params_")
        X = self._validate(X, reset=False, model=self.model_)
        return assignments(self.model_, self.params_, X).astype(np.int64)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Responsibilities ``q(k | x)``, shape ``(n_samples, n_clusters)``; rows sum to 1."""
        check_is_fitted(self, "params_")
        X = self._validate(X, reset=False, model=self.model_)
        function = compiled_method(self.model_, "cluster_responsibilities")
        return in_batches(lambda batch: function(self.params_, batch), X).astype(np.float64)

    def transform(self, X: Any) -> np.ndarray:
        """The responsibilities :meth:`predict_proba` (features for a downstream estimator)."""
        return self.predict_proba(X)

    def score(self, X: Any, y: Any = None) -> float:
        r"""Mean Monte-Carlo ELBO of the rows of ``X`` (``n_elbo_samples`` posterior samples each)."""
        check_is_fitted(self, "params_")
        X = self._validate(X, reset=False, model=self.model_)
        function = compiled_method(self.model_, "elbo_terms", int(self.n_elbo_samples))
        key = run_keys(self.seed_)["evaluate"]
        return float(np.mean(in_batches(lambda batch: function(key, self.params_, batch)[1], X)))

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.positive_only = self.observable in ("binomial", "poisson", "bernoulli", "categorical")
        tags.non_deterministic = self.random_state is None
        return tags


__all__ = ["HarmoniumClustering"]
