"""Clustering metrics: perfect and hand-computed cases, invariances, and chance level."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from expfam.errors import DataError
from expfam.metrics import (
    active_clusters,
    adjusted_rand_index,
    clustering_metrics,
    contingency_table,
    hungarian_accuracy,
    normalized_mutual_information,
    purity,
)

# Ten points, three classes, four clusters:
#   cluster 0: classes 0, 0, 0, 1      → majority 3
#   cluster 1: classes 1, 1, 2         → majority 2
#   cluster 2: class 2, 2              → majority 2
#   cluster 3: class 0                 → majority 1
LABELS = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 0])
ASSIGNMENTS = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, 3])


def test_perfect_clustering_scores_one_under_renaming() -> None:
    labels = np.array([0, 0, 1, 1, 2, 2, 2])
    renamed = np.array([5, 5, 0, 0, 3, 3, 3])
    result = clustering_metrics(labels, renamed, n_clusters=6)
    assert result == {
        "nmi": pytest.approx(1.0),
        "purity": 1.0,
        "accuracy": 1.0,
        "ari": pytest.approx(1.0),
        "active_clusters": 3,
    }


def test_contingency_table_by_hand() -> None:
    expected = [[3, 1, 0], [0, 2, 1], [0, 0, 2], [1, 0, 0]]
    np.testing.assert_array_equal(contingency_table(LABELS, ASSIGNMENTS), expected)


def test_purity_by_hand() -> None:
    assert purity(LABELS, ASSIGNMENTS) == pytest.approx((3 + 2 + 2 + 1) / 10)


def test_accuracy_by_hand_with_more_clusters_than_classes() -> None:
    # Best one-to-one matching: cluster 0 → class 0 (3), cluster 1 → class 1 (2),
    # cluster 2 → class 2 (2); cluster 3 stays unmatched and its point counts as wrong.
    assert hungarian_accuracy(LABELS, ASSIGNMENTS) == pytest.approx(7 / 10)


def test_accuracy_is_not_purity_when_two_clusters_share_a_class() -> None:
    labels = np.array([0, 0, 0, 0, 1, 1])
    assignments = np.array([0, 0, 1, 1, 2, 2])
    assert purity(labels, assignments) == 1.0  # every cluster is pure
    assert hungarian_accuracy(labels, assignments) == pytest.approx(4 / 6)  # only one of clusters 0, 1 maps to class 0


def test_accuracy_with_fewer_clusters_than_classes() -> None:
    labels = np.array([0, 1, 2, 2])
    assignments = np.array([0, 0, 0, 0])
    assert hungarian_accuracy(labels, assignments) == pytest.approx(2 / 4)


def test_nmi_by_hand() -> None:
    # Two classes, two clusters; table [[2, 0], [1, 1]] with n = 4.
    labels = np.array([0, 0, 1, 1])
    assignments = np.array([0, 0, 0, 1])
    mutual = 2 / 4 * math.log(4 * 2 / (3 * 2)) + 1 / 4 * math.log(4 * 1 / (3 * 2)) + 1 / 4 * math.log(4 * 1 / (1 * 2))
    entropy_classes = math.log(2)
    entropy_clusters = -(3 / 4 * math.log(3 / 4) + 1 / 4 * math.log(1 / 4))
    expected = mutual / ((entropy_classes + entropy_clusters) / 2)
    assert normalized_mutual_information(labels, assignments) == pytest.approx(expected)


def test_ari_by_hand() -> None:
    labels = np.array([0, 0, 1, 1])
    assignments = np.array([0, 0, 0, 1])
    index = math.comb(2, 2)  # Σ C(n_kc, 2) over table [[2, 0], [1, 1]]
    rows = math.comb(3, 2) + math.comb(1, 2)  # clusters of sizes 3, 1
    columns = math.comb(2, 2) + math.comb(2, 2)  # classes of sizes 2, 2
    expected_index = rows * columns / math.comb(4, 2)
    expected = (index - expected_index) / ((rows + columns) / 2 - expected_index)
    assert adjusted_rand_index(labels, assignments) == pytest.approx(expected)


def test_active_clusters() -> None:
    assert active_clusters(ASSIGNMENTS, n_clusters=30) == 4
    assert active_clusters(np.array([], dtype=int), n_clusters=3) == 0
    with pytest.raises(DataError, match=r"assignment 5 is outside 0\.\.4 \(n_clusters=5\)"):
        active_clusters(np.array([0, 5]), n_clusters=5)


@settings(max_examples=40, deadline=None)
@given(
    data=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 5)), min_size=1, max_size=40),
    permutation=st.permutations(range(6)),
)
def test_metrics_are_invariant_to_renaming_clusters(data: list[tuple[int, int]], permutation: list[int]) -> None:
    labels = np.array([label for label, _ in data])
    assignments = np.array([cluster for _, cluster in data])
    renamed = np.asarray(permutation)[assignments]
    before = clustering_metrics(labels, assignments, n_clusters=6)
    after = clustering_metrics(labels, renamed, n_clusters=6)
    assert after == pytest.approx(before)
    assert 0.0 <= before["nmi"] <= 1.0 + 1e-12
    assert before["accuracy"] <= before["purity"] + 1e-12  # a matching is one choice among the majority votes


def test_shuffled_assignments_score_near_chance() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, size=5000)
    assert normalized_mutual_information(labels, labels) == pytest.approx(1.0)
    shuffled = rng.permutation(labels)
    assert normalized_mutual_information(labels, shuffled) < 0.02
    assert abs(adjusted_rand_index(labels, shuffled)) < 0.01
    assert hungarian_accuracy(labels, shuffled) < 0.15


def test_inputs_are_checked() -> None:
    with pytest.raises(DataError, match=r"labels has 3 entries but assignments has 2"):
        purity([0, 1, 2], [0, 1])
    with pytest.raises(DataError, match=r"assignments must be integers, got dtype float64"):
        purity([0, 1], [0.0, 1.0])
    with pytest.raises(DataError, match=r"labels must be 1-D, got shape \(1, 2\)"):
        purity([[0, 1]], [0, 1])
    with pytest.raises(DataError, match=r"empty"):
        purity([], [])


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 4), st.integers(0, 6)), min_size=1, max_size=60),
)
def test_nmi_and_ari_agree_with_scikit_learn(data: list[tuple[int, int]]) -> None:
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    labels, assignments = (np.array(column) for column in zip(*data, strict=True))
    assert math.isclose(
        normalized_mutual_information(labels, assignments),
        normalized_mutual_info_score(labels, assignments, average_method="arithmetic"),
        rel_tol=1e-12,
        abs_tol=1e-15,
    )
    assert adjusted_rand_index(labels, assignments) == adjusted_rand_score(labels, assignments)


def test_single_cluster_edges_match_scikit_learn() -> None:
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    for labels, assignments in (([3, 3, 3], [1, 1, 1]), ([0, 1, 2], [5, 5, 5]), ([0, 0, 1], [2, 2, 2]), ([7], [0])):
        assert normalized_mutual_information(labels, assignments) == normalized_mutual_info_score(labels, assignments)
        assert adjusted_rand_index(labels, assignments) == adjusted_rand_score(labels, assignments)
