"""Test-session configuration: float64 for the identity checks, and hypothesis defaults.

The library sets no JAX configuration at import time; the test kit
(:mod:`expfam.testing`) needs float64, so the whole test session enables it
here, before any test module computes anything.
"""

from __future__ import annotations

from collections.abc import Iterator

import jax
import pytest
from hypothesis import settings

jax.config.update("jax_enable_x64", True)

# Property tests compile per shape and run statistical checks: no deadline, few examples.
# `pytest --hypothesis-profile=quick` runs five examples per property instead of twenty.
settings.register_profile("expfam", max_examples=20, deadline=None)
settings.register_profile("quick", max_examples=5, deadline=None)
settings.load_profile("expfam")


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs() -> Iterator[None]:
    """After each test module, drop compiled programs (JAX's caches, which hold the training chunks too).

    One process compiles thousands of programs over the suite; keeping all of them alive
    exhausts the process's memory mappings (the CPU backend maps each program's code) and
    crashed XLA's compiler late in the run.
    """
    yield
    jax.clear_caches()
