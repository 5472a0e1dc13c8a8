r"""Plots of a trained harmonium: cluster prototypes, samples, reconstructions, training curves, cluster usage.

Each function draws one PNG with matplotlib's Agg renderer (a bare
`matplotlib.figure.Figure`, so no GUI backend is touched and pyplot's
global state is left alone) and writes it atomically.

The prototype of cluster `k` is the observable mean at the conditional latent
mean statistics of that cluster,

$$
\bar y_k = \nabla\psi_Y(b_y + W_{yk} e_k),\qquad
\text{prototype}_k = \nabla\psi_X\big(\theta_X(\bar y_k,\ \bar y_k\otimes e_k,\ e_k)\big),
$$

shown in order of decreasing `p(k)`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import numpy as np

from expfam import interrupts
from expfam.experiment.runs.atomic import atomic_open
from expfam.experiment.usage import USAGE_COLUMNS
from expfam.family import Array
from expfam.model import Harmonium, Params

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def cluster_prototypes(model: Harmonium, params: Params) -> tuple[np.ndarray, np.ndarray]:
    r"""Observable means of every cluster at its conditional latent mean, and `p(k)`.

    Returns:
        `(prototypes (K, coupled_size), probabilities (K,))` in cluster order.
    """
    means, probabilities = jax.jit(_cluster_prototypes, static_argnums=0)(model, params)
    return np.asarray(means), np.asarray(probabilities)


def _cluster_prototypes(model: Harmonium, params: Params) -> tuple[Array, Array]:
    n_clusters = model.n_clusters
    prior = params["prior"]
    theta_y = model.mixture.cluster_params(prior)
    latent_means = jax.vmap(model.latent.means)(theta_y)
    one_hot = jnp.eye(n_clusters)[:, 1:]  # e_k ∈ ℝ^{K−1}, e_0 = 0
    broadcast = one_hot.reshape((n_clusters,) + (1,) * len(model.latent.param_shape) + (n_clusters - 1,))
    statistics = {"b_y": latent_means, "W_yk": latent_means[..., None] * broadcast, "b_k": one_hot}
    theta_x = jax.vmap(model.observable_params_at_statistics, in_axes=(None, 0))(params, statistics)
    means = model.observable.coupled_statistic(jax.vmap(model.observable.means)(theta_x))
    return means, model.mixture.cluster_probabilities(prior)


def _new_figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Figure, path: str | Path) -> Path:
    path = Path(path)
    with atomic_open(path, "wb") as handle:
        figure.savefig(handle, format="png")
    return path


def _image_grid(
    images: np.ndarray,
    image_shape: tuple[int, int],
    *,
    titles: Sequence[str] | None = None,
    row_labels: Sequence[str] | None = None,
    n_columns: int = 10,
    value_range: tuple[float, float] | None = None,
    suptitle: str = "",
) -> Figure:
    """The images in rows of `n_columns`, drawn as one mosaic: one axes and one `imshow`.

    One axes per image drew hundreds of axes (about a second per figure); the mosaic draws the same
    cells, white between them (a NaN pixel is left white too), with each title above its cell and
    each row label to the left of its row.
    """
    from matplotlib import colormaps

    n_images = images.shape[0]
    n_columns = max(1, min(n_columns, n_images))
    n_rows = max(1, -(-n_images // n_columns))
    height, width = image_shape
    cell = 1.0 if titles is None else 1.25
    band = 0 if titles is None else max(1, round(0.25 * height))  # pixels above each cell for its title
    gap = max(1, round(0.1 * width))
    figure = _new_figure(1.1 * n_columns * max(1.0, width / height), cell * n_rows * max(1.0, height / width) + 0.5)
    low, high = value_range if value_range is not None else (float(np.nanmin(images)), float(np.nanmax(images)))
    step_y, step_x = band + height + gap, width + gap
    mosaic = np.full((n_rows * step_y, n_columns * step_x - gap), np.nan)
    for index in range(n_images):
        top, left = (index // n_columns) * step_y + band, (index % n_columns) * step_x
        mosaic[top : top + height, left : left + width] = images[index].reshape(image_shape)
    left_margin = 0.06 if row_labels is not None else 0.01
    top_margin = 1.0 - (0.5 / figure.get_figheight() if suptitle else 0.01)
    axis = figure.add_axes((left_margin, 0.01, 0.99 - left_margin, top_margin - 0.01))
    axis.set_axis_off()
    cmap = colormaps["gray_r"].with_extremes(bad="white")
    axis.imshow(mosaic, cmap=cmap, vmin=low, vmax=high, interpolation="nearest", aspect="equal")
    for index, title in enumerate(titles[:n_images] if titles is not None else ()):
        column_middle = (index % n_columns) * step_x + (width - 1) / 2
        axis.text(
            column_middle, (index // n_columns) * step_y + band - 0.6, title, ha="center", va="bottom", fontsize=8
        )
    for row, label in enumerate(row_labels[:n_rows] if row_labels is not None else ()):
        axis.text(-gap, row * step_y + band + (height - 1) / 2, label, ha="right", va="center", fontsize=8)
    if suptitle:
        figure.suptitle(suptitle, fontsize=10)
    return figure


def plot_prototypes(
    model: Harmonium,
    params: Params,
    image_shape: tuple[int, int],
    path: str | Path,
    *,
    value_range: tuple[float, float] | None = None,
    n_columns: int = 10,
) -> Path:
    """Cluster prototypes ordered by `p(k)`, each titled with its cluster and `p(k)`."""
    prototypes, probabilities = cluster_prototypes(model, params)
    order = np.argsort(-probabilities, kind="stable")
    titles = [f"k={k} p={probabilities[k]:.3f}" for k in order]
    figure = _image_grid(
        prototypes[order],
        image_shape,
        titles=titles,
        n_columns=n_columns,
        value_range=value_range,
        suptitle="cluster prototypes (observable mean at E[y | k]), by p(k)",
    )
    return _save(figure, path)


def plot_samples(
    model: Harmonium,
    params: Params,
    image_shape: tuple[int, int],
    path: str | Path,
    *,
    key: Array,
    n_samples: int = 40,
    value_range: tuple[float, float] | None = None,
    n_columns: int = 10,
) -> Path:
    """Generated samples `x ~ p(x | z)`, `z ~ p(z)`, sorted by their cluster `k`."""
    x, _, k = jax.jit(model.sample, static_argnums=2)(key, params, n_samples)
    x, k = np.asarray(x).reshape(n_samples, -1), np.asarray(k)
    order = np.argsort(k, kind="stable")
    figure = _image_grid(
        x[order],
        image_shape,
        titles=[f"k={k[i]}" for i in order],
        n_columns=n_columns,
        value_range=value_range,
        suptitle="samples from the model, sorted by cluster",
    )
    return _save(figure, path)


def plot_reconstructions(
    model: Harmonium,
    params: Params,
    x: np.ndarray,
    image_shape: tuple[int, int],
    path: str | Path,
    *,
    n_images: int = 30,
    n_columns: int = 10,
    value_range: tuple[float, float] | None = None,
) -> Path:
    """Test images (rows marked "data") above their reconstructions `∇ψ_X(θ_X(E_q[s_Z]))` ("recon")."""
    images = np.asarray(x[:n_images], dtype=float)
    n_images = images.shape[0]
    n_columns = max(1, min(n_columns, n_images))
    reconstructed = np.asarray(jax.jit(model.reconstruct)(params, jnp.asarray(images)))
    originals = images.reshape(n_images, -1)
    n_pairs = -(-n_images // n_columns)
    cells, labels = [], []
    blank = np.full(originals.shape[1], np.nan)
    for pair in range(n_pairs):
        start, stop = pair * n_columns, min((pair + 1) * n_columns, n_images)
        for source in (originals, reconstructed):
            row = list(source[start:stop]) + [blank] * (n_columns - (stop - start))
            cells.extend(row)
        labels.extend(["data", "recon"])
    figure = _image_grid(
        np.stack(cells),
        image_shape,
        row_labels=labels,
        n_columns=n_columns,
        value_range=value_range
        if value_range is not None
        else (float(np.nanmin(originals)), float(np.nanmax(originals))),
        suptitle="test images and their reconstructions",
    )
    return _save(figure, path)


def plot_training_curves(history: Sequence[Mapping[str, float]], path: str | Path) -> Path:
    """One panel per logged quantity (loss, each term's value, NMI, R²) against the step."""
    steps = np.array([row["step"] for row in history], dtype=float)
    columns = [
        key for key in dict.fromkeys(key for row in history for key in row) if key != "step" and not _usage_column(key)
    ]
    n_columns = 3
    n_rows = max(1, -(-len(columns) // n_columns))
    figure = _new_figure(4.0 * n_columns, 2.6 * n_rows)
    axes = figure.subplots(n_rows, n_columns, squeeze=False)
    for index, axis in enumerate(axes.flat):
        if index >= len(columns):
            axis.set_axis_off()
            continue
        name = columns[index]
        values = np.array([row.get(name, np.nan) for row in history], dtype=float)
        axis.plot(steps, values, marker="." if len(steps) < 30 else None)
        axis.set_title(_CURVE_TITLES.get(name, name), fontsize=9)
        axis.set_xlabel("step", fontsize=8)
        axis.tick_params(labelsize=7)
        axis.grid(alpha=0.3)
    figure.suptitle("training curves (chunk means)", fontsize=10)
    figure.tight_layout()
    return _save(figure, path)


_CURVE_TITLES = {
    "loss": "loss (minimised)",
    "elbo": "ELBO (β = 1, batch mean)",
    "conjugation": "Var_p[r] (conjugation)",
    "prior_entropy": "H(p(k))",
    "posterior_entropy": "H(mean q(k|x))",
    "nmi": "NMI (test)",
    "r2": "R² (conjugation)",
}


def _usage_column(name: str) -> bool:
    return name in USAGE_COLUMNS or name.startswith("norm_")


def plot_cluster_usage(history: Sequence[Mapping[str, float]], n_clusters: int, path: str | Path) -> Path:
    """Cluster usage over training ([`expfam.experiment.usage`][expfam.experiment.usage]): active clusters, the entropy
    of the mean responsibilities against `log K`, the largest mean responsibility and prior
    `p(k)`, and the block and `ρ` norms on a log scale."""
    steps = np.array([row["step"] for row in history], dtype=float)

    def series(name: str) -> np.ndarray:
        return np.array([row.get(name, np.nan) for row in history], dtype=float)

    marker = "." if len(steps) < 30 else None
    figure = _new_figure(16.0, 3.2)
    active, entropy, largest, norms = figure.subplots(1, 4)
    active.plot(steps, series("active"), marker=marker)
    active.axhline(n_clusters, color="grey", linestyle=":", linewidth=1)
    active.set_ylim(0, n_clusters + 1)
    active.set_title("active clusters (test argmax)", fontsize=9)
    entropy.plot(steps, series("usage_entropy"), marker=marker)
    entropy.axhline(np.log(n_clusters), color="grey", linestyle=":", linewidth=1, label="log K")
    entropy.set_title("H(mean q(k|x)) (test)", fontsize=9)
    entropy.legend(fontsize=7)
    largest.plot(steps, series("usage_max"), marker=marker, label="max mean q(k|x)")
    largest.plot(steps, series("prior_max"), marker=marker, label="max p(k)")
    largest.set_title("largest cluster share", fontsize=9)
    largest.legend(fontsize=7)
    names = [key for key in dict.fromkeys(key for row in history for key in row) if key.startswith("norm_")]
    for name in [*names, "rho_k_norm", "rho_y_norm"]:
        values = series(name)
        if np.any(values > 0):
            norms.plot(steps, values, marker=marker, label=name.removeprefix("norm_").replace("_norm", ""))
    norms.set_yscale("log")
    norms.set_title("parameter norms", fontsize=9)
    norms.legend(fontsize=7)
    for axis in (active, entropy, largest, norms):
        axis.set_xlabel("step", fontsize=8)
        axis.tick_params(labelsize=7)
        axis.grid(alpha=0.3)
    figure.tight_layout()
    return _save(figure, path)


def save_run_plots(
    run_dir: str | Path,
    model: Harmonium,
    params: Params,
    x_test: np.ndarray,
    image_shape: tuple[int, int],
    history: Sequence[Mapping[str, float]],
    *,
    key: Array,
    value_range: tuple[float, float] | None = None,
) -> list[Path]:
    """All plots of a run (four, and the cluster usage when the history has it) into `run_dir`; returns the paths written."""
    run_dir = Path(run_dir)
    paths = [plot_prototypes(model, params, image_shape, run_dir / "prototypes.png", value_range=value_range)]
    interrupts.check()  # safe points between the plots (the command line's signals, expfam.interrupts)
    paths.append(plot_samples(model, params, image_shape, run_dir / "samples.png", key=key, value_range=value_range))
    interrupts.check()
    paths.append(
        plot_reconstructions(
            model, params, x_test, image_shape, run_dir / "reconstructions.png", value_range=value_range
        )
    )
    interrupts.check()
    if history:
        paths.append(plot_training_curves(history, run_dir / "training_curves.png"))
    if any("active" in row for row in history):
        paths.append(plot_cluster_usage(history, model.n_clusters, run_dir / "cluster_usage.png"))
    return paths


__all__ = [
    "cluster_prototypes",
    "plot_cluster_usage",
    "plot_prototypes",
    "plot_reconstructions",
    "plot_samples",
    "plot_training_curves",
    "save_run_plots",
]
