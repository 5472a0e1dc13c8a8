"""expfam.sklearn.HarmoniumClustering: the scikit-learn contract, in a Pipeline and in GridSearchCV."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.metrics import make_scorer, normalized_mutual_info_score
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

from expfam.sklearn import HarmoniumClustering
from tiny_shapes import ESTIMATOR, ESTIMATOR_ROWS

# The README's test line leaves the scikit-learn estimator to the slow tier, which .ci/run runs (docs/development.md, "Two tiers").
pytestmark = pytest.mark.slow

#: Tiny and fast: a few dozen steps on a small slice of the digits (the suite's canonical estimator
#: settings, shared with test_sklearn_scoring.py so that both fit with the same compiled programs).
FAST = ESTIMATOR


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:ESTIMATOR_ROWS], y[:ESTIMATOR_ROWS]


@pytest.fixture(scope="module")
def fitted(digits):
    return HarmoniumClustering(**FAST).fit(digits[0])


def test_fit_predict_transform_score(fitted, digits):
    X, _ = digits
    labels = fitted.predict(X)
    assert labels.shape == (len(X),) and labels.dtype.kind == "i"
    assert labels.min() >= 0 and labels.max() < FAST["n_clusters"]
    assert np.array_equal(fitted.labels_, labels)
    proba = fitted.predict_proba(X)
    assert proba.shape == (len(X), FAST["n_clusters"])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    assert np.array_equal(proba.argmax(axis=1), labels)
    np.testing.assert_array_equal(fitted.transform(X), proba)
    score = fitted.score(X)
    assert np.isfinite(score) and score < 0  # a bound on a log-probability of discrete counts
    assert fitted.n_features_in_ == 64


def test_random_state_reproduces_and_fit_predict_equals_labels(fitted, digits):
    X, _ = digits
    again = HarmoniumClustering(**FAST)
    assert np.array_equal(again.fit_predict(X), fitted.labels_)


def test_params_round_trip_and_clone(fitted):
    params = fitted.get_params()
    assert params["n_latent"] == 2 and params["random_state"] == 0
    copy = clone(fitted)
    assert copy.get_params() == params and not hasattr(copy, "params_")
    copy.set_params(n_latent=3)
    assert copy.n_latent == 3 and fitted.n_latent == 2


def test_inputs_are_validated(fitted):
    with pytest.raises(ValueError, match="NaN"):
        fitted.predict(np.full((2, 64), np.nan))
    with pytest.raises(ValueError, match="64 features"):
        fitted.predict(np.zeros((2, 10)))
    with pytest.raises(ValueError, match="outside the support"):
        fitted.predict(np.full((2, 64), -1.0))
    with pytest.raises(ValueError, match="2D array"):
        fitted.predict(np.zeros(64))
    with pytest.raises(ValueError, match="n_clusters must be ≥ 2"):
        HarmoniumClustering(n_clusters=1).fit(np.zeros((4, 3)))


def test_pipeline_and_grid_search_with_an_nmi_scorer(digits):
    X, y = digits
    pipeline = Pipeline([("cluster", HarmoniumClustering(**FAST))])
    search = GridSearchCV(
        pipeline, {"cluster__n_latent": [2, 3]}, scoring=make_scorer(normalized_mutual_info_score), cv=2
    )
    search.fit(X, y)
    assert search.best_params_["cluster__n_latent"] in (2, 3)
    assert 0.0 <= search.best_score_ <= 1.0
    assert search.predict(X).shape == (len(X),)


#: Checks of ``sklearn.utils.estimator_checks`` that do not apply, and why.
NOT_APPLICABLE = {
    "check_dont_overwrite_parameters": "sets n_clusters=1; a harmonium mixture needs K ≥ 2 (refused with a ValueError)",
    "check_methods_subset_invariance": "sets n_clusters=1 (K ≥ 2 required)",
    "check_fit2d_1feature": "sets n_clusters=1 (K ≥ 2 required), so the error names n_clusters, not the feature",
    "check_fit2d_predict1d": "sets n_clusters=1 (K ≥ 2 required)",
    "check_clustering": "asserts the predicted labels are consecutive integers 0..m; a mixture may leave a cluster "
    "empty (here 2 of K = 3 on the check's blobs), which is a valid clustering",
}

CHECKED = HarmoniumClustering(
    observable="normal",  # the checks feed arbitrary real data: the normal family's support
    n_clusters=3,
    n_latent=2,
    n_steps=200,
    log_every=50,
    batch_size=16,
    n_mc_samples=4,
    n_conj_samples=64,
    lr_warmup_steps=10,
    kl_warmup_steps=50,
    conj_warmup_steps=20,
    learning_rate=1e-2,  # at 3e-2 the normal observable's precision can leave θ₂ < 0 on the checks' data
    entropy_weight=5.0,  # the estimator's defaults before they were read from TrainConfig (1.0 and 1.0):
    posterior_entropy_weight=10.0,  # kept, so the checks (and NOT_APPLICABLE's reasons) see the same estimator
    n_elbo_samples=2,
    random_state=0,
)


@pytest.mark.slow
@parametrize_with_checks([CHECKED], expected_failed_checks=lambda estimator: NOT_APPLICABLE)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def test_defaults_are_the_configurations_but_the_stated_ones():
    """Every default is read from ModelConfig/TrainConfig/EvaluateConfig, except ESTIMATOR_DEFAULTS."""
    import inspect

    from expfam.experiment.config import EvaluateConfig, ModelConfig, TrainConfig
    from expfam.sklearn import ESTIMATOR_DEFAULTS

    defaults = {
        name: parameter.default
        for name, parameter in inspect.signature(HarmoniumClustering).parameters.items()
        if name not in ("random_state", "verbose")
    }
    configured = {**vars(EvaluateConfig()), **vars(TrainConfig()), **vars(ModelConfig())}
    for name, value in defaults.items():
        expected = ESTIMATOR_DEFAULTS.get(name, configured[name])
        assert value == expected and type(value) is type(expected), (name, value, expected)
    assert ESTIMATOR_DEFAULTS == {"cluster_init": "random"} != {"cluster_init": TrainConfig().cluster_init}
