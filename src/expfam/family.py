r"""The exponential-family base class.

A family is a small frozen object that holds shapes and static options only;
parameters are arrays passed to its methods. A family defines

$$
p_\theta(x) = h(x)\, \exp\big(\theta\cdot s(x) - \psi(\theta)\big),
\qquad \eta = \nabla\psi(\theta) = E_\theta[s(x)],
\qquad \phi(\eta) = \sup_\theta\ \theta\cdot\eta - \psi(\theta).
$$

A plugin implements the primitives
([`sufficient_statistic`][expfam.family.ExponentialFamily.sufficient_statistic],
[`log_base_measure`][expfam.family.ExponentialFamily.log_base_measure],
[`log_partition`][expfam.family.ExponentialFamily.log_partition],
[`natural_from_means`][expfam.family.ExponentialFamily.natural_from_means],
[`expected_log_base_measure`][expfam.family.ExponentialFamily.expected_log_base_measure],
[`sample`][expfam.family.ExponentialFamily.sample],
[`in_support`][expfam.family.ExponentialFamily.in_support],
[`natural_from_unconstrained`][expfam.family.ExponentialFamily.natural_from_unconstrained]); the mean map,
Fisher information, negative entropy, entropy, KL divergence, log density and maximum-likelihood fit are
written once here, by autodiff where they are derivatives.

`params` are natural coordinates and `means` mean coordinates,
everywhere. Both have the family's [`param_shape`][expfam.family.ExponentialFamily.param_shape]; inner products are
taken over all of their entries.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from expfam.errors import ConfigurationError, ShapeError, SupportError
from expfam.shapes import check_batch

Array = jax.Array


def vdot(a: Array, b: Array) -> Array:
    """Inner product over every entry of two same-shaped arrays: `Σ a·b`."""
    return jnp.sum(a * b)


class ExponentialFamily(abc.ABC):
    r"""Abstract exponential family over data of [`data_shape`][expfam.family.ExponentialFamily.data_shape].

    Concrete families are final frozen dataclasses whose first field is
    `size` (number of independent coordinates, or of categories), with
    static options after it (e.g. `n_trials`).

    Class variables:
        name: the registry name.
        coupling_index: `None` when interaction blocks offset every natural
            parameter; an index into the last axis of `params` when only one
            column is coupled (the location column of `DiagonalNormal`).
        example_options: options used by the test kit to make a small instance.
    """

    name: ClassVar[str]
    coupling_index: ClassVar[int | None] = None
    example_options: ClassVar[dict[str, Any]] = {}

    size: int

    # ----------------------------------------------------------------- shapes
    @property
    @abc.abstractmethod
    def param_shape(self) -> tuple[int, ...]:
        """Shape of natural (and mean) parameters."""

    @property
    @abc.abstractmethod
    def data_shape(self) -> tuple[int, ...]:
        """Shape of one observation."""

    @property
    def dim(self) -> int:
        """Number of natural parameters (the manifold dimension)."""
        return int(np.prod(self.param_shape, dtype=int))

    @property
    def data_dim(self) -> int:
        """Number of scalars in one observation."""
        return int(np.prod(self.data_shape, dtype=int))

    @property
    def coupled_size(self) -> int:
        """Number of natural parameters an interaction block offsets."""
        return self.size if self.coupling_index is not None else self.dim

    # ------------------------------------------------------------- primitives
    @abc.abstractmethod
    def sufficient_statistic(self, x: Array) -> Array:
        """`s(x)` for one observation, of [`param_shape`][expfam.family.ExponentialFamily.param_shape]."""

    @abc.abstractmethod
    def log_base_measure(self, x: Array) -> Array:
        """`log h(x)` for one observation (a scalar)."""

    @abc.abstractmethod
    def log_partition(self, params: Array) -> Array:
        """`ψ(θ) = log Σ_x h(x) exp(θ·s(x))` (a scalar)."""

    @abc.abstractmethod
    def natural_from_means(self, means: Array) -> Array:
        """The inverse mean map `θ = (∇ψ)⁻¹(η)` (closed form where it exists)."""

    @abc.abstractmethod
    def expected_log_base_measure(self, params: Array) -> Array:
        """`E_θ[log h(x)]`, needed by the entropy of the family."""

    @abc.abstractmethod
    def sample(self, key: Array, params: Array, shape: tuple[int, ...] = ()) -> Array:
        """Draw observations of shape `shape + data_shape`.

        `params` may carry leading axes that broadcast against `shape`
        (`params.shape == shape + param_shape` draws one observation per
        parameter set), so batched sampling needs one key, not one per draw.
        """

    @abc.abstractmethod
    def in_support(self, x: np.ndarray) -> np.ndarray:
        """Boolean mask, elementwise over `x`, of entries inside the support."""

    @abc.abstractmethod
    def natural_from_unconstrained(self, u: Array) -> Array:
        """Map any real array of [`param_shape`][expfam.family.ExponentialFamily.param_shape] into the interior of the parameter space.

        Used by hypothesis strategies and for random initialisation; it keeps a
        margin from the boundary (e.g. `θ₂ ≤ −0.05` for the normal precision).
        """

    @abc.abstractmethod
    def reference_params(self) -> Array:
        """A canonical interior point (`θ = 0` where that is valid), the shrinkage target."""

    support_text: ClassVar[str] = "inside the family's support"

    # ---------------------------------------------------------------- derived
    def means(self, params: Array) -> Array:
        r"""Mean map `η = ∇ψ(θ) = E_θ[s(x)]`."""
        return jax.grad(self.log_partition)(params)

    def fisher_information(self, params: Array) -> Array:
        r"""Fisher information `∇²ψ(θ)` as a `(dim, dim)` matrix over the flattened parameters."""
        flat = jnp.ravel(params)

        def psi_flat(v: Array) -> Array:
            return self.log_partition(jnp.reshape(v, self.param_shape))

        return jax.hessian(psi_flat)(flat)

    def negative_entropy(self, means: Array) -> Array:
        r"""Convex conjugate `φ(η) = θ·η − ψ(θ)` at `θ = (∇ψ)⁻¹(η)`."""
        params = self.natural_from_means(means)
        return vdot(params, means) - self.log_partition(params)

    def entropy(self, params: Array) -> Array:
        r"""Entropy with the base measure: `H = ψ(θ) − θ·η − E[log h(x)]`."""
        means = self.means(params)
        return self.log_partition(params) - vdot(params, means) - self.expected_log_base_measure(params)

    def kl_divergence(self, params: Array, other: Array) -> Array:
        r"""`KL(θ₁‖θ₂) = ψ(θ₂) − ψ(θ₁) − ∇ψ(θ₁)·(θ₂ − θ₁)` (Bregman form)."""
        return self.log_partition(other) - self.log_partition(params) - vdot(self.means(params), other - params)

    def log_density(self, params: Array, x: Array) -> Array:
        r"""`log p_θ(x) = θ·s(x) + log h(x) − ψ(θ)` for one observation `x` of [`data_shape`][expfam.family.ExponentialFamily.data_shape].

        A batch is refused (its sum would be a meaningless single number): use
        [`log_densities`][expfam.family.ExponentialFamily.log_densities].
        """
        shape = tuple(jnp.shape(x))
        if shape != tuple(self.data_shape):
            hint = " for a batch use log_densities(params, x)" if shape[1:] == tuple(self.data_shape) else ""
            raise ShapeError(
                f"{type(self).__name__}.log_density takes one observation of shape {self.data_shape}, "
                f"got shape {shape};{hint or ' reshape it'}",
                offending=shape,
            )
        stats = self.sufficient_statistic(x)
        return vdot(params, stats) + self.log_base_measure(x) - self.log_partition(params)

    def log_densities(self, params: Array, x: Array) -> Array:
        r"""`log p_θ(x_i)` for a batch `x` of shape `(B,) + data_shape`; returns `(B,)`."""
        check_batch(self, x, what=f"{type(self).__name__}.log_densities: x")
        return jax.vmap(lambda row: self.log_density(params, row))(jnp.asarray(x))

    def average_statistic(self, data: Array) -> Array:
        """Mean of `s(x)` over the leading axis of `data`."""
        return jnp.mean(jax.vmap(self.sufficient_statistic)(data), axis=0)

    def fit(self, data: Array) -> Array:
        r"""Maximum-likelihood natural parameters: `θ̂ = (∇ψ)⁻¹(mean_i s(x_i))`.

        The fit lies on the boundary (infinite entries) when a statistic sits at
        the edge of its range, e.g. a pixel that is always 0; use
        [`initialize`][expfam.family.ExponentialFamily.initialize] for a finite starting point.
        """
        return self.natural_from_means(self.average_statistic(data))

    def initialize(
        self, key: Array, *, data: Array | None = None, shrinkage: float = 0.01, noise: float = 0.1
    ) -> Array:
        r"""Starting parameters: the fit to `data` with means shrunk toward the reference, plus noise.

        `η = (1 − shrinkage)·mean s(x) + shrinkage·∇ψ(θ_ref)`, `θ = (∇ψ)⁻¹(η) + N(0, noise²)`. For a Binomial
        this is `logit(p̂)` with `p̂` shrunk toward ½. Without data, the reference parameters plus noise. The
        noise is halved (up to 7 times, then dropped) until
        [`is_valid_params`][expfam.family.ExponentialFamily.is_valid_params] holds, so the result is always
        valid when the noise-free start is.
        """
        reference = self.reference_params()
        if data is None:
            params = reference
        else:
            target = self.means(reference)
            means = (1.0 - shrinkage) * self.average_statistic(data) + shrinkage * target
            params = self.natural_from_means(means)
        if self.coupling_index is None:
            jitter = jax.random.normal(key, self.param_shape)
        else:
            jitter = jax.random.normal(key, (self.size,))
        # Keep the result a valid natural parameter (ψ and ∇ψ finite): halve the noise until it is,
        # e.g. a geometric θ < 0 near 0; without any valid noisy point, the noise-free start.
        result = params
        for halvings in reversed(range(8)):
            candidate = self.add_offset(params, noise * 0.5**halvings * jitter)
            result = jnp.where(self.is_valid_params(candidate), candidate, result)
        return result

    def is_valid_params(self, params: Array) -> Array:
        r"""Whether `params` is a usable natural parameter: `ψ(θ)` and `∇ψ(θ)` finite (a jax bool)."""
        return jnp.isfinite(self.log_partition(params)) & jnp.all(jnp.isfinite(self.means(params)))

    # ------------------------------------------------------- coupling helpers
    def add_offset(self, params: Array, offset: Array) -> Array:
        """Add an interaction offset (of shape `(..., coupled_size)`) to the coupled parameters."""
        if self.coupling_index is None:
            return params + offset
        return params.at[..., self.coupling_index].add(offset)

    def coupled_statistic(self, stats: Array) -> Array:
        """The part of `s(x)` that interaction blocks couple to (`(..., coupled_size)`)."""
        if self.coupling_index is None:
            return stats
        return stats[..., self.coupling_index]

    # ----------------------------------------------------------------- checks
    def check_support(self, x: np.ndarray, *, what: str = "data") -> None:
        """Refuse data outside the support, naming the first offending column and value.

        Args:
            x: observations of shape `(n_samples,) + data_shape` or `data_shape`.
            what: how to call the data in the message (e.g. a file name).

        Raises:
            SupportError: on the first entry outside the support (NaN and inf included).
        """
        array = np.asarray(x)
        expected = self.data_shape
        if array.shape[array.ndim - len(expected) :] != expected or array.ndim < len(expected):
            raise SupportError(
                f"{what} has shape {array.shape}, but {self.name} of size {self.size} expects "
                f"observations of shape {expected}; reshape the data or change the family size",
                offending=array.shape,
            )
        with np.errstate(invalid="ignore"):
            good = np.asarray(self.in_support(array), dtype=bool)
        if good.all():
            return
        index = tuple(int(i) for i in np.argwhere(~good)[0])
        value = array[index].item() if hasattr(array[index], "item") else array[index]
        place = f"column {index[-1]} of row {index[0]}" if array.ndim >= 2 else f"entry {index}"
        raise SupportError(
            f"{what}: value {value!r} at {place} is outside the support of {self.describe()} "
            f"(expected {self.support_text}); clean the data or choose a family whose support contains it",
            offending=(index, value),
        )

    def describe(self) -> str:
        """Human-readable name with options, e.g. `binomial(size=784, n_trials=16)`."""
        fields = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in dataclasses.fields(self))  # type: ignore[arg-type]
        return f"{self.name}({fields})"


def register_family(cls: type[ExponentialFamily]) -> type[ExponentialFamily]:
    """Class decorator: make a frozen dataclass family a static pytree (no leaves; hashable)."""
    jax.tree_util.register_static(cls)
    return cls


def require_positive(owner: str, **values: int) -> None:
    """Raise a [`ConfigurationError`][expfam.errors.ConfigurationError] for the first value that is not a positive integer."""
    for key, value in values.items():
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise ConfigurationError(
                f"{owner}: {key} must be a positive integer, got {value!r}; pass a whole number ≥ 1",
                offending=value,
            )


def newton_natural_from_means(
    family: ExponentialFamily, means: Array, *, steps: int = 50, start: Array | None = None
) -> Array:
    r"""Solve `∇ψ(θ) = η` by Newton's method, for families without a closed form.

    Each step is `θ ← θ − (∇²ψ)⁻¹ (∇ψ(θ) − η)`. A plugin author may call this
    from their [`ExponentialFamily.natural_from_means`][expfam.family.ExponentialFamily.natural_from_means].
    """
    params = family.reference_params() if start is None else start

    def step(theta: Array, _: None) -> tuple[Array, None]:
        residual = jnp.ravel(family.means(theta) - means)
        delta = jnp.linalg.solve(family.fisher_information(theta), residual)
        return theta - jnp.reshape(delta, family.param_shape), None

    params, _ = jax.lax.scan(step, params, None, length=steps)
    return params
