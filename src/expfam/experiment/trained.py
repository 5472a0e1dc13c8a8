r"""A trained run in Python: its model, parameters and configuration, rebuilt without the training data.

[`load_run`][expfam.experiment.trained.load_run] reads `config.toml`, `params.npz` and `model.json` (the
family and block names, their options, `data_dim`, `image_shape` and `n_trials`)
of a run directory and rebuilds the [`Harmonium`][expfam.model.Harmonium]; the
training data is not read. The returned [`TrainedRun`][expfam.experiment.trained.TrainedRun] unpacks as
`model, params, config` and has batched, shape-checked helpers.

Examples:
    >>> run = load_run("runs/quick")                          # doctest: +SKIP
    >>> model, params, config = run                           # doctest: +SKIP
    >>> run.assign(x)                                         # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from expfam.builder import build_model
from expfam.errors import ExpfamError
from expfam.experiment.checks import check_run_matches
from expfam.experiment.config import RunConfig
from expfam.experiment.evaluation import compiled_method, in_batches
from expfam.experiment.run_lock import require_unlocked
from expfam.experiment.runs import (
    MODEL_FILE,
    RunDirectoryError,
    atomic_write_text,
    check_writable,
    load_params,
    read_config,
    read_model_spec,
    require_finished,
)
from expfam.model import Harmonium, Params
from expfam.plugins import Registry
from expfam.shapes import as_observations


@dataclass(frozen=True)
class TrainedRun:
    """A trained model with its parameters and configuration.

    Attributes:
        model: the rebuilt harmonium.
        params: the trained parameters (jax arrays).
        config: the run's configuration.
        image_shape: `(height, width)` of one observation as an image.
        n_trials: the trial count `N` pixels were mapped to.
        run_dir: where it was read from.
    """

    model: Harmonium
    params: Params
    config: RunConfig
    image_shape: tuple[int, int]
    n_trials: int
    run_dir: Path

    def __iter__(self) -> Iterator[Any]:
        """`model, params, config = load_run(run_dir)`."""
        return iter((self.model, self.params, self.config))

    def _batch(self, x: Any) -> tuple[jax.Array, bool]:
        return as_observations(self.model.observable, x, image_shape=self.image_shape)

    def responsibilities(self, x: Any, *, batch_size: int = 1000) -> np.ndarray:
        r"""`q(k | x)` for each observation: `(B, K)`, or `(K,)` for one observation.

        `x` is `(B, D)`, `(B, height, width)`, one `(D,)` or one `(height, width)` image;
        its values are checked against the observable's support. Computed `batch_size` rows at a time.
        """
        batch, single = self._batch(x)
        self.model.observable.check_support(np.asarray(batch), what="x")
        function = compiled_method(self.model, "cluster_responsibilities")
        values = (
            in_batches(lambda rows: function(self.params, rows), batch, batch_size)
            if batch.shape[0]
            else np.zeros((0, self.model.n_clusters))
        )
        return values[0] if single else values

    def assign(self, x: Any) -> np.ndarray:
        r"""Clusters `argmax_k q(k | x)`: `(B,)`, or a 0-d array for one observation."""
        return np.argmax(self.responsibilities(x), axis=-1)

    def reconstruct(self, x: Any) -> np.ndarray:
        r"""`x̂ = ∇ψ_X(θ_X(E_q[s_Z]))` per observation, same leading shape as `x` (flat `D` per observation)."""
        batch, single = self._batch(x)
        values = np.asarray(compiled_method(self.model, "reconstruct")(self.params, batch))
        return values[0] if single else values

    def sample(self, n_samples: int, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """`n_samples` generative samples `x ~ p(x)` and their clusters: `(S, D)` and `(S,)`."""
        x, _, k = self.model.sample(jax.random.key(seed), self.params, int(n_samples))
        return np.asarray(x), np.asarray(k)


def write_assignments(
    run: TrainedRun, x: Any, out: str | Path, *, probabilities: bool = False, overwrite: bool = False
) -> Path:
    """Write `out` (CSV): one row per observation, `index, cluster, probability` and, with
    `probabilities`, `p_0 .. p_{K-1}` (all responsibilities `q(k | x)`).

    `cluster = argmax_k q(k | x)` and `probability = q(cluster | x)`. The file is written
    to a temporary file and renamed; an existing `out` is refused unless `overwrite`.

    Raises:
        RunDirectoryError: `out` exists and `overwrite` is false.
    """
    out = Path(out)
    if out.is_dir():
        raise RunDirectoryError(
            f"--out {str(out)!r} is a folder; name the CSV file to write, e.g. --out {str(out / 'assignments.csv')!r}",
            offending=str(out),
        )
    if out.exists() and not overwrite:
        raise RunDirectoryError(
            f"{str(out)!r} already exists; pass --overwrite to replace it, or choose another --out", offending=str(out)
        )
    if out.parent.is_dir():
        check_writable(out.parent, "--out")
    values = run.responsibilities(x)
    values = values[None] if values.ndim == 1 else values
    clusters = np.argmax(values, axis=1)
    header = ["index", "cluster", "probability"] + ([f"p_{k}" for k in range(values.shape[1])] if probabilities else [])
    lines = [",".join(header)]
    for index, (cluster, row) in enumerate(zip(clusters, values, strict=False)):
        cells = [str(index), str(int(cluster)), repr(float(row[cluster]))]
        if probabilities:
            cells += [repr(float(p)) for p in row]
        lines.append(",".join(cells))
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, "\n".join(lines) + "\n")
    return out


def load_run(run_dir: str | Path, *, registry: Registry | None = None) -> TrainedRun:
    """Load a trained run: its model, parameters and configuration, without reading the training data.

    Args:
        run_dir: a run directory written by `expfam train` / [`train_run`][expfam.experiment.pipeline.train_run].
        registry: where the family and block names are looked up (default: the installed plugins).

    Returns:
        A [`TrainedRun`][expfam.experiment.trained.TrainedRun] (unpacks as `model, params, config`).

    Raises:
        RunDirectoryError: the run is not finished ([`require_finished`][expfam.experiment.runs.require_finished]),
            or `config.toml`, `params.npz` or `model.json` is missing, unreadable or edited
            out of agreement with the others.
    """
    run_dir = Path(run_dir)
    require_unlocked(run_dir)  # not while another process writes it
    require_finished(run_dir)
    config = read_config(run_dir)
    raw_params = load_params(run_dir)
    try:
        spec = read_model_spec(run_dir)
    except RunDirectoryError as error:
        raise RunDirectoryError(
            f"{error} — runs trained by earlier versions of expfam have no {MODEL_FILE}; for such a run use "
            "expfam.experiment.pipeline.prepare_run(read_config(run_dir)).model, which reloads the data",
            offending=str(run_dir),
        ) from None
    try:
        model = build_model(
            observable=spec["observable"],
            observable_options=spec.get("observable_options", {}),
            data_dim=int(spec["data_dim"]),
            n_latent=int(spec["n_latent"]),
            n_clusters=int(spec["n_clusters"]),
            blocks=list(spec["blocks"]),
            block_options=spec.get("block_options", {}),
            latent=spec.get("latent", "bernoulli"),
            registry=registry,
        )
        height, width = (int(s) for s in spec["image_shape"])
        n_trials = int(spec["n_trials"])
    except (KeyError, TypeError, ValueError) as error:
        if isinstance(error, ExpfamError):
            raise
        raise RunDirectoryError(
            f"{run_dir / MODEL_FILE}: missing or malformed entry ({type(error).__name__}: {error}); the file was "
            "edited or damaged — restore it or train the run again",
            offending=str(run_dir / MODEL_FILE),
        ) from None
    check_run_matches(run_dir, config, raw_params, model, registry)
    params = jax.tree.map(jnp.asarray, raw_params)
    return TrainedRun(
        model=model,
        params=params,
        config=config,
        image_shape=(height, width),
        n_trials=n_trials,
        run_dir=run_dir,
    )


__all__ = ["TrainedRun", "load_run", "write_assignments"]
