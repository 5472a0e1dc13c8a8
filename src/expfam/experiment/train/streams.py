r"""Named random streams of a run: one root key per seed, one independent stream per purpose.

$$
\text{root} = \texttt{key}(\text{seed}),\qquad
\text{stream}(\text{name}) = \texttt{fold\_in}(\text{root}, \text{index of name}),\qquad
\text{key at step } t = \texttt{fold\_in}(\text{stream}, t).
$$

Every key is a hash of `(seed, stream, step)`, so different seeds never share a
stream (the old scheme used `PRNGKey(seed + 1)` for training, which was seed
`seed + 1`'s root), and the key of any step is known without replaying the
steps before it, which is what makes a resumed run equal an uninterrupted one.

Examples:
    >>> keys = run_keys(0)
    >>> sorted(keys)
    ['correction', 'data', 'evaluate', 'init', 'plots', 'progress', 'train']
"""

from __future__ import annotations

import jax

#: The streams of a run, in a fixed order (a stream's index is part of its key; append, never reorder).
STREAMS: tuple[str, ...] = ("init", "data", "train", "evaluate", "progress", "plots", "correction")


def root_key(seed: int) -> jax.Array:
    """`jax.random.key(seed)`, the one root of a run."""
    return jax.random.key(int(seed))


def stream_key(seed: int, name: str) -> jax.Array:
    """The key of stream `name` (one of `STREAMS`) of seed `seed`."""
    if name not in STREAMS:
        raise KeyError(f"unknown random stream {name!r}; streams: {', '.join(STREAMS)}")
    return jax.random.fold_in(root_key(seed), STREAMS.index(name))


def run_keys(seed: int) -> dict[str, jax.Array]:
    """`{name: stream key}` for every stream of `STREAMS`."""
    return {name: stream_key(seed, name) for name in STREAMS}


__all__ = ["STREAMS", "root_key", "run_keys", "stream_key"]
