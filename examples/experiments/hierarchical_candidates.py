"""Experiment: candidate settings of the hierarchical model on a validation split, against KMeans.

For each seed ``s = 0..S−1`` the main job's configuration
(:func:`expfam.experiment.config.default_config`) with ``--set KEY=VALUE``
overrides is trained on 80% of the seed's training split and scored on the other
20% (``validation_fraction = 0.2``; the test split is not looked at). The
validation NMI is recorded every ``--every`` steps, so one run gives the whole
curve. ``KMeans(K, n_init=10)`` with the model's ``K`` is fitted on the same rows.

The run's ``[train] cluster_init`` (e.g. ``--set cluster_init=random``) is applied as
in :func:`~expfam.experiment.train.loop.train`; ``--reset-optimizer`` is a probe that
also gives Adam a fresh state at that point.

``--coordinates symmetric`` is a probe, not a library option: Adam then works in
coordinates where every cluster has its own latent natural parameters
``θ_k = b_y + W_yk[:, k]`` (``θ_0 = b_y`` for the reference cluster) and its own
logit ``l_k`` (``b_k = l_k − l_0``), instead of the model's reference coordinates
``(b_y, W_yk, b_k)``, in which ``b_y`` is both the reference cluster's component and
a base shared by all the others. The map is linear, so the model and its saved
parameters are unchanged; only the optimiser's geometry differs
(docs/results/digits_defaults/README.md, "Candidates after the defaults").

Run: ``python examples/experiments/hierarchical_candidates.py [--seeds 3] [--set n_latent=128 ...]
[--coordinates symmetric] [--cosine-decay] [--reset-optimizer] [--every 2000] [--first-seed 0]``;
prints one line per seed and a final
JSON line ``{"nmi": [...], "nmi_mean": ..., "active_clusters": [...], "kmeans_nmi_mean": ..., "curve": {...}}``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import statistics
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from sklearn.cluster import KMeans

from expfam.experiment.config import TrainConfig
from expfam.experiment.evaluation import assignments
from expfam.experiment.prepare import prepare_run
from expfam.experiment.train.chunks import make_chunk
from expfam.experiment.train.cluster_start import apply_cluster_init
from expfam.experiment.train.divergence import accept_chunk
from expfam.experiment.train.optimizer import make_optimizer
from expfam.experiment.train.step import initial_state, step_numbers
from expfam.experiment.train.streams import run_keys
from expfam.metrics import clustering_metrics
from expfam.model import Harmonium, Params

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
run_config = importlib.import_module("quality").run_config  # benchmarks/quality.py: the block set's defaults + --set


def _to_cluster_coordinates(grads: Params) -> Params:
    """Gradients in ``(b_y, W_yk, b_k)`` → gradients in ``(θ_0, θ_1.., l)``: the transpose of the linear map."""
    prior = grads["prior"]
    g_by, g_w, g_bk = prior["b_y"], prior["W_yk"], prior["b_k"]
    return {
        **grads,
        "prior": {**prior, "b_y": g_by - g_w.sum(-1), "W_yk": g_w, "b_k": jnp.concatenate([-g_bk.sum()[None], g_bk])},
    }


def _from_cluster_coordinates(updates: Params) -> Params:
    """Updates of ``(θ_0, θ_1.., l)`` → updates of ``(b_y = θ_0, W_yk[:, k] = θ_k − θ_0, b_k = l_k − l_0)``."""
    prior = updates["prior"]
    d0, dw, dl = prior["b_y"], prior["W_yk"], prior["b_k"]
    return {**updates, "prior": {**prior, "b_y": d0, "W_yk": dw - d0[:, None], "b_k": dl[1:] - dl[0]}}


def symmetric_coordinates(inner: optax.GradientTransformation) -> optax.GradientTransformation:
    """``inner`` (e.g. Adam) run in per-cluster coordinates of the mixture prior (module docstring)."""

    def init(params: Params) -> optax.OptState:
        return inner.init(_to_cluster_coordinates(jax.tree.map(jnp.zeros_like, params)))

    def update(grads: Params, state: optax.OptState, params: Params | None = None) -> tuple[Params, optax.OptState]:
        updates, state = inner.update(_to_cluster_coordinates(grads), state)
        return _from_cluster_coordinates(updates), state

    return optax.GradientTransformation(init, update)


def _train(
    model: Harmonium,
    params: Params,
    x_train: np.ndarray,
    config: TrainConfig,
    optimizer: optax.GradientTransformation,
    callback: Callable[[int, Params, Mapping[str, np.ndarray]], None],
    reset_optimizer: bool,
) -> Params:
    """:func:`expfam.experiment.train.loop.train`'s loop; ``reset_optimizer``: a fresh Adam state after the cluster init."""
    chunk = make_chunk(model, config, optimizer=optimizer)
    numbers = step_numbers(config)
    data = jnp.asarray(x_train)
    state = initial_state(params, config, optimizer)
    done = 0
    while done < config.n_steps:
        new_params = apply_cluster_init(model, config, state.params, x_train, done)
        if new_params is not state.params:
            state = state._replace(params=new_params)
            if reset_optimizer:
                state = state._replace(opt_state=optimizer.init(new_params))
        take = min(config.log_every, config.n_steps - done)
        new_state, values = chunk(state, data, numbers, length=take)
        piece = {name: np.asarray(series) for name, series in values.items()}
        state = accept_chunk(model, config, new_state, piece, done)
        done += take
        callback(done, state.params, piece)
    return state.params


def run_seed(
    seed: int,
    overrides: list[str],
    coordinates: str,
    every: int,
    cosine: bool,
    reset_optimizer: bool = False,
) -> dict[str, object]:
    """Train one seed on its validation split; the validation NMI curve, final scores and KMeans' NMI."""
    config = run_config("hierarchical", seed, {"validation_fraction": 0.2}, overrides)
    prepared = prepare_run(config)
    model, split = prepared.model, prepared.split
    params = model.init(run_keys(seed)["init"], jnp.asarray(split.x_train))
    optimizer = make_optimizer(config.train)
    if cosine:  # the same warmup, then a cosine decay to 0 at the last step
        train_config = config.train
        optimizer = optax.adam(
            optax.warmup_cosine_decay_schedule(
                0.0, train_config.learning_rate, train_config.lr_warmup_steps, train_config.n_steps
            )
        )
    if coordinates == "symmetric":
        optimizer = symmetric_coordinates(optimizer)
    curve: dict[int, float] = {}

    def callback(step: int, current: Params, piece: Mapping[str, np.ndarray]) -> None:
        if step % every == 0 or step == config.train.n_steps:
            assigned = assignments(model, current, split.x_test)
            curve[step] = clustering_metrics(split.y_test, assigned, model.n_clusters)["nmi"]

    final = _train(model, params, split.x_train, config.train, optimizer, callback, reset_optimizer)
    scores = clustering_metrics(split.y_test, assignments(model, final, split.x_test), model.n_clusters)
    kmeans = KMeans(model.n_clusters, n_init=10, random_state=seed).fit(split.x_train)
    kmeans_nmi = clustering_metrics(split.y_test, kmeans.predict(split.x_test), model.n_clusters)["nmi"]
    return {"nmi": scores["nmi"], "active_clusters": scores["active_clusters"], "curve": curve, "kmeans": kmeans_nmi}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="number of seeds (F..F+S−1)")
    parser.add_argument("--first-seed", type=int, default=0, metavar="F", help="the first seed")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    parser.add_argument("--coordinates", choices=("reference", "symmetric"), default="reference")
    parser.add_argument("--cosine-decay", action="store_true", help="probe: Adam's rate decays to 0 (cosine)")
    parser.add_argument(
        "--reset-optimizer", action="store_true", help="probe: a fresh Adam state after the cluster initialisation"
    )
    parser.add_argument("--every", type=int, default=2000, help="steps between validation NMI records")
    args = parser.parse_args(argv)
    runs = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        started = time.perf_counter()
        run = run_seed(seed, args.set, args.coordinates, args.every, args.cosine_decay, args.reset_optimizer)
        run["seconds"] = time.perf_counter() - started
        curve = ", ".join(f"{step}: {nmi:.4f}" for step, nmi in sorted(run["curve"].items()))  # type: ignore[attr-defined]
        print(
            f"seed {seed}: NMI {run['nmi']:.4f}, active {run['active_clusters']}, KMeans {run['kmeans']:.4f}, {run['seconds']:.0f} s; {curve}"
        )
        runs.append(run)
    steps = sorted(set.intersection(*(set(run["curve"]) for run in runs)))  # type: ignore[call-overload]
    summary = {
        "settings": args.set,
        "coordinates": args.coordinates,
        "cosine_decay": args.cosine_decay,
        "reset_optimizer": args.reset_optimizer,
        "nmi": [run["nmi"] for run in runs],
        "nmi_mean": statistics.fmean(run["nmi"] for run in runs),  # type: ignore[misc]
        "active_clusters": [run["active_clusters"] for run in runs],
        "kmeans_nmi_mean": statistics.fmean(run["kmeans"] for run in runs),  # type: ignore[misc]
        "curve": {step: statistics.fmean(run["curve"][step] for run in runs) for step in steps},  # type: ignore[index]
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
