"""Test-session configuration: float64 for the identity checks, and hypothesis defaults.

The library sets no JAX configuration at import time; the test kit
(:mod:`expfam.testing`) needs float64, so the whole test session enables it
here, before any test module computes anything.
"""

from __future__ import annotations

import jax
from hypothesis import settings

jax.config.update("jax_enable_x64", True)

# Property tests compile per shape and run statistical checks: no deadline, few examples.
# `pytest --hypothesis-profile=quick` runs five examples per property instead of twenty.
settings.register_profile("expfam", max_examples=20, deadline=None)
settings.register_profile("quick", max_examples=5, deadline=None)
settings.load_profile("expfam")
