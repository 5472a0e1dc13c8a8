"""The training room: the optimiser, the one step, the chunk programs, the one loop, devices, cluster starts and random streams.

Modules, each named for what it holds:

- [`optimizer`][expfam.experiment.train.optimizer]: Adam (AdamW) with a learning-rate warmup, and the block
  schedule's hold and scale as optax's own masked transformations;
- [`step`][expfam.experiment.train.step]: the one training step, its per-trial numbers and its static spec;
- [`chunks`][expfam.experiment.train.chunks]: the step scanned over a chunk, for one trial or mapped over a
  stacked group, compiled by `jax.jit` once per spec;
- [`loop`][expfam.experiment.train.loop]: the one loop, [`train`][expfam.experiment.train.loop.train] (one
  trial) and [`train_stacked`][expfam.experiment.train.loop.train_stacked] (a group);
- [`divergence`][expfam.experiment.train.divergence]: the check after each chunk, naming the step and term;
- [`devices`][expfam.experiment.train.devices]: the mesh and the checks of `--devices`;
- [`cluster_start`][expfam.experiment.train.cluster_start]: KMeans starts of the clusters;
- [`streams`][expfam.experiment.train.streams]: the named random streams of a run.

Import the modules themselves, e.g. `from expfam.experiment.train.loop import train`.
"""
