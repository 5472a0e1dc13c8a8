r"""The log-partition of a Bernoulli coordinate and its derivatives, in a cheap exact form.

$$
\operatorname{softplus}(x) = \log(1 + e^x) = \max(x, 0) + \operatorname{log1p}(e^{-|x|}),
\qquad
\sigma(x) = \frac{d}{dx}\operatorname{softplus}(x)
    = \frac{[x \ge 0] + [x < 0]\, e^{-|x|}}{1 + e^{-|x|}},
\qquad \sigma'(x) = \sigma(x)\,(1 - \sigma(x)).
$$

Both forms use the single exponential `e = exp(−|x|) ∈ (0, 1]`, which never
overflows, so they are exact to float32 rounding for every finite `x`, and cheaper on
CPU than `jax.nn.softplus` (`logaddexp(x, 0)`, with NaN handling and a derivative that
takes a second exponential; timings in docs/benchmarks-history.md). The derivative rules are written by hand
(`jax.custom_jvp`) so that the gradient reuses `e` and the second
derivative is correct at `x = 0` as well.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from expfam.family import Array


@jax.custom_jvp
def sigmoid(x: Array) -> Array:
    r"""`σ(x) = 1 / (1 + e^{−x})`, computed from `e = exp(−|x|)` (no overflow)."""
    e = jnp.exp(-jnp.abs(x))
    return jnp.where(x >= 0, 1.0, e) / (1.0 + e)


@sigmoid.defjvp
def _sigmoid_jvp(primals: tuple[Array], tangents: tuple[Array]) -> tuple[Array, Array]:
    (x,), (dx,) = primals, tangents
    s = sigmoid(x)
    return s, s * (1.0 - s) * dx


@jax.custom_jvp
def softplus(x: Array) -> Array:
    r"""`softplus(x) = log(1 + e^x) = max(x, 0) + log1p(e^{−|x|})`, elementwise."""
    return jnp.maximum(x, 0.0) + jnp.log1p(jnp.exp(-jnp.abs(x)))


@softplus.defjvp
def _softplus_jvp(primals: tuple[Array], tangents: tuple[Array]) -> tuple[Array, Array]:
    (x,), (dx,) = primals, tangents
    return softplus(x), sigmoid(x) * dx
