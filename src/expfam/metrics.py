r"""Clustering metrics: how well cluster assignments recover class labels.

All functions take integer `labels` (true classes) and `assignments` (cluster
indices, e.g. `argmax_k q(k|x)`) of equal length `n`. Write
$n_{kc}$ for the contingency table (points of cluster $k$ with class
$c$), $a_k = \sum_c n_{kc}$ and $b_c = \sum_k n_{kc}$.

Examples:
    >>> clustering_metrics([0, 0, 1, 1], [1, 1, 0, 0], n_clusters=2)
    {'nmi': 1.0, 'purity': 1.0, 'accuracy': 1.0, 'ari': 1.0, 'active_clusters': 2}
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from expfam.errors import DataError

IntArray = np.ndarray | Sequence[int]


def _pair(labels: IntArray, assignments: IntArray) -> tuple[np.ndarray, np.ndarray]:
    truth, found = np.asarray(labels), np.asarray(assignments)
    for what, array in (("labels", truth), ("assignments", found)):
        if array.ndim != 1:
            raise DataError(f"{what} must be 1-D, got shape {array.shape}", offending=array.shape)
        if array.size and not np.issubdtype(array.dtype, np.integer):
            raise DataError(
                f"{what} must be integers, got dtype {array.dtype}; pass argmax indices", offending=array.dtype
            )
    if truth.shape != found.shape:
        raise DataError(
            f"labels has {truth.size} entries but assignments has {found.size}; pass one cluster per labelled point",
            offending=(truth.size, found.size),
        )
    if truth.size == 0:
        raise DataError("labels and assignments are empty; metrics need at least one point", offending=0)
    return truth, found


def contingency_table(labels: IntArray, assignments: IntArray) -> np.ndarray:
    r"""Counts $n_{kc}$: rows are the clusters present, columns the classes present."""
    truth, found = _pair(labels, assignments)
    _, class_index = np.unique(truth, return_inverse=True)
    _, cluster_index = np.unique(found, return_inverse=True)
    table = np.zeros((cluster_index.max() + 1, class_index.max() + 1), dtype=np.int64)
    np.add.at(table, (cluster_index, class_index), 1)
    return table


def normalized_mutual_information(labels: IntArray, assignments: IntArray) -> float:
    r"""Normalized mutual information with arithmetic normalisation.

    $$
    \mathrm{NMI} = \frac{I(C; K)}{\tfrac12\,(H(C) + H(K))},\qquad
    I(C; K) = \sum_{k,c} \frac{n_{kc}}{n} \log \frac{n\, n_{kc}}{a_k b_c}.
    $$

    1 for a clustering that matches the classes up to renaming; near 0 for an
    independent one. Two single-cluster labelings score 1; one single-cluster side against a
    split other side scores 0. Computed from the contingency table in NumPy (scikit-learn's
    `normalized_mutual_info_score` agrees to rounding, and importing it would add a second to every
    command that reports metrics).
    """
    table = contingency_table(labels, assignments)
    if table.shape == (1, 1):
        return 1.0
    if min(table.shape) == 1:
        return 0.0
    n = float(table.sum())
    present = table > 0
    counts = table[present].astype(float)
    outer = np.outer(table.sum(axis=1), table.sum(axis=0))[present].astype(float)
    information = max(float(np.sum(counts / n * np.log(n * counts / outer))), 0.0)
    entropies = sum(_entropy(table.sum(axis=axis) / n) for axis in (0, 1))
    return information / max(entropies / 2, float(np.finfo(float).eps))


def _entropy(shares: np.ndarray) -> float:
    r"""$-\sum_i p_i \log p_i$ of shares that are all positive."""
    return float(-np.sum(shares * np.log(shares)))


def purity(labels: IntArray, assignments: IntArray) -> float:
    r"""Share of points in their cluster's majority class: $\frac1n \sum_k \max_c n_{kc}$.

    Reaches 1 with one cluster per point, so read it with the number of active clusters.
    """
    table = contingency_table(labels, assignments)
    return float(table.max(axis=1).sum() / table.sum())


def hungarian_accuracy(labels: IntArray, assignments: IntArray) -> float:
    r"""Accuracy under the best one-to-one matching of clusters to classes.

    $$
    \mathrm{acc} = \frac1n \max_{\pi} \sum_k n_{k\,\pi(k)},
    $$

    over injective matchings $\pi$ (found by the Hungarian algorithm,
    `scipy.optimize.linear_sum_assignment`). With more clusters than classes the
    unmatched clusters count as wrong; with fewer, the unmatched classes do.
    """
    table = contingency_table(labels, assignments)
    from scipy.optimize import linear_sum_assignment  # here: scipy.optimize adds 0.3 s to every command's start

    rows, columns = linear_sum_assignment(table, maximize=True)
    return float(table[rows, columns].sum() / table.sum())


def adjusted_rand_index(labels: IntArray, assignments: IntArray) -> float:
    r"""Adjusted Rand index: pair agreement corrected for chance.

    $$
    \mathrm{ARI} = \frac{\sum_{kc}\binom{n_{kc}}{2} - E}{\tfrac12\big(\sum_k\binom{a_k}{2}
    + \sum_c\binom{b_c}{2}\big) - E},\qquad
    E = \frac{\sum_k\binom{a_k}{2}\sum_c\binom{b_c}{2}}{\binom n2}.
    $$

    1 for a perfect match, about 0 for a random one (it can be negative). Computed in exact
    integers from the counts of ordered pairs of distinct points placed together in both
    labelings ($t$), in the clusters only ($f_K$), in the classes only ($f_C$) and in neither ($u$):
    $\mathrm{ARI} = 2(t u - f_K f_C) / ((t + f_C)(f_C + u) + (t + f_K)(f_K + u))$, the
    same number as the formula above; 1 when no pair is split by one labeling only.
    """
    table = contingency_table(labels, assignments)
    n = int(table.sum())  # int64 squares are exact up to 3·10⁹ points; the rest is Python integers
    together = int(np.sum(table**2))
    both = together - n
    clusters_only = int(np.sum(table.sum(axis=1) ** 2)) - together
    classes_only = int(np.sum(table.sum(axis=0) ** 2)) - together
    neither = n * n - clusters_only - classes_only - together
    if clusters_only == 0 and classes_only == 0:
        return 1.0
    return (
        2.0
        * (both * neither - clusters_only * classes_only)
        / ((both + classes_only) * (classes_only + neither) + (both + clusters_only) * (clusters_only + neither))
    )


def active_clusters(assignments: IntArray, n_clusters: int) -> int:
    r"""Number of clusters with at least one point: $|\{k : a_k \ge 1\}|$.

    Raises:
        DataError: an assignment outside `0..n_clusters-1`.
    """
    found = np.asarray(assignments)
    if found.ndim != 1 or (found.size and not np.issubdtype(found.dtype, np.integer)):
        raise DataError(
            f"assignments must be a 1-D integer array, got {found.dtype} of shape {found.shape}",
            offending=found.shape,
        )
    if found.size and (found.min() < 0 or found.max() >= n_clusters):
        bad = int(found.min()) if found.min() < 0 else int(found.max())
        raise DataError(
            f"assignment {bad} is outside 0..{n_clusters - 1} (n_clusters={n_clusters}); "
            "pass the model's number of clusters",
            offending=bad,
        )
    return int(np.unique(found).size)


def clustering_metrics(labels: IntArray, assignments: IntArray, n_clusters: int) -> dict[str, float]:
    """All clustering metrics of docs/metrics.md in one dictionary.

    Returns:
        `{"nmi", "purity", "accuracy", "ari", "active_clusters"}`; the last is an integer count.
    """
    return {
        "nmi": normalized_mutual_information(labels, assignments),
        "purity": purity(labels, assignments),
        "accuracy": hungarian_accuracy(labels, assignments),
        "ari": adjusted_rand_index(labels, assignments),
        "active_clusters": active_clusters(assignments, n_clusters),
    }
