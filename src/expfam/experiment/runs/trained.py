r"""A trained run in Python: its model, parameters and configuration, rebuilt without the training data;
and the check that a saved run's files agree.

[`load_run`][expfam.experiment.runs.trained.load_run] reads `config.toml`, `params.npz` and `model.json` (the
family and block names, their options, `data_dim`, `image_shape` and `n_trials`)
of a run directory and rebuilds the [`Harmonium`][expfam.model.Harmonium] from the one model spec
([`spec_from_record`][expfam.experiment.prepare.spec_from_record]); the training data is not read. The returned [`TrainedRun`][expfam.experiment.runs.trained.TrainedRun] unpacks as
`model, params, config` and has batched, shape-checked helpers.

Examples:
    >>> run = load_run("runs/quick")                          # doctest: +SKIP
    >>> model, params, config = run                           # doctest: +SKIP
    >>> run.assign(x)                                         # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from expfam.builder import build_model, resolve_blocks
from expfam.errors import ExpfamError
from expfam.experiment.config import RunConfig
from expfam.experiment.evaluation import compiled_method, in_batches
from expfam.experiment.prepare import parse_blocks, spec_from_record
from expfam.experiment.runs.atomic import RunDirectoryError, atomic_write_text, check_writable
from expfam.experiment.runs.files import load_params, read_config, read_model_spec
from expfam.experiment.runs.layout import MODEL_FILE, require_finished
from expfam.experiment.runs.lock import require_unlocked
from expfam.model import Harmonium, Params
from expfam.plugins import Registry, get_registry
from expfam.shapes import as_observations


def _shapes(tree: Mapping[str, Any], prefix: str = "") -> dict[str, tuple[int, ...]]:
    """`{"a/b": shape}` of a nested mapping of arrays (or of shape structs)."""
    shapes: dict[str, tuple[int, ...]] = {}
    for name, value in tree.items():
        if isinstance(value, Mapping):
            shapes.update(_shapes(value, f"{prefix}{name}/"))
        else:
            shapes[f"{prefix}{name}"] = tuple(int(size) for size in np.shape(value))
    return shapes


def check_run_matches(
    run_dir: Path,
    config: RunConfig,
    params: Mapping[str, Any],
    model: Harmonium,
    registry: Registry | None = None,
    *,
    source: str = "params.npz",
) -> None:
    """Refuse a run whose `config.toml`, `model.json` and `params.npz` disagree (edited or damaged files).

    `model.json` (written when the run was trained) must give the same observable,
    options, sizes and blocks as `config.toml`; every array of `params` must
    exist with the shape the model of `config.toml` initialises. `source`: the file
    `params` was read from, named in the messages (`checkpoint.npz` when resuming).

    Raises:
        RunDirectoryError: naming the first disagreement and the fix.
    """
    fix = f"config.toml or {source} was edited or damaged; restore the run's files or train it again"
    try:
        spec: dict[str, Any] | None = read_model_spec(run_dir)
    except RunDirectoryError:  # runs written before model.json existed have none
        spec = None
    if spec is not None:
        recorded = {key: spec.get(key) for key in ("observable", "n_latent", "n_clusters", "n_trials")}
        recorded["blocks"] = spec.get("blocks")
        current = {
            "observable": config.model.observable,
            "n_latent": config.model.n_latent,
            "n_clusters": config.model.n_clusters,
            "n_trials": config.model.n_trials,
            "blocks": list(resolve_blocks(parse_blocks(config.model.block), registry or get_registry())),
        }
        for key, value in recorded.items():
            if value != current[key]:
                raise RunDirectoryError(
                    f"{run_dir}: config.toml gives {key} = {current[key]!r} but the run was trained with "
                    f"{value!r} (model.json); config.toml was edited after training — restore it, or train a new "
                    "run with the new setting",
                    offending=key,
                )
    expected = _shapes(jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((2, model.observable.size))))
    found = _shapes(params)
    for name, shape in expected.items():
        if name not in found:
            raise RunDirectoryError(f"{run_dir}: {source} has no array {name!r}; {fix}", offending=name)
        if found[name] != shape:
            raise RunDirectoryError(
                f"{run_dir}: {source} array {name!r} has shape {found[name]} but the model of "
                f"config.toml needs {shape}; {fix}",
                offending=name,
            )
    extra = sorted(set(found) - set(expected))
    if extra:
        raise RunDirectoryError(f"{run_dir}: {source} holds unexpected array {extra[0]!r}; {fix}", offending=extra[0])


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
        run_dir: a run directory written by `expfam train` / [`train_run`][expfam.experiment.runs.solo.train_run].
        registry: where the family and block names are looked up (default: the installed plugins).

    Returns:
        A [`TrainedRun`][expfam.experiment.runs.trained.TrainedRun] (unpacks as `model, params, config`).

    Raises:
        RunDirectoryError: the run is not finished ([`require_finished`][expfam.experiment.runs.layout.require_finished]),
            or `config.toml`, `params.npz` or `model.json` is missing, unreadable or edited
            out of agreement with the others.
    """
    run_dir = Path(run_dir)
    require_unlocked(run_dir)  # not while another process writes it
    require_finished(run_dir)
    config = read_config(run_dir)
    raw_params = load_params(run_dir)
    try:
        record = read_model_spec(run_dir)
    except RunDirectoryError as error:
        raise RunDirectoryError(
            f"{error} — runs trained by earlier versions of expfam have no {MODEL_FILE}; for such a run use "
            "expfam.experiment.prepare.prepare_run(read_config(run_dir)).model, which reloads the data",
            offending=str(run_dir),
        ) from None
    try:
        model = build_model(spec_from_record(record), registry=registry)
        height, width = (int(s) for s in record["image_shape"])
        n_trials = int(record["n_trials"])
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


__all__ = ["TrainedRun", "check_run_matches", "load_run", "write_assignments"]
