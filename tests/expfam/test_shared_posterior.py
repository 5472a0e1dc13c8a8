"""One posterior per step: ``Harmonium.posterior`` and the ``StepContext`` every loss term reads.

The posterior ``η_q(x)`` and its summary are computed once per step and handed to every term,
so the gradient flows back through ``η_q`` once: for the full model, one ``D × n(K−1)`` adjoint
product per step, not one per term (counted in the jaxpr of the loss gradient below).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from expfam import posterior
from expfam.builder import build_model
from expfam.hookspecs import hookimpl
from expfam.objective import Objective, ObjectiveSettings, StepContext, make_loss
from expfam.plugins import build_registry
from expfam.testing import random_model_params

SETTINGS = ObjectiveSettings(kl_warmup_steps=10, conj_warmup_steps=10, n_mc_samples=3, n_prior_samples=40)


def small_model():
    model = build_model(
        observable="binomial", observable_options={"n_trials": 3}, data_dim=5, n_latent=3, n_clusters=4, blocks="full"
    )
    x = jax.random.binomial(jax.random.PRNGKey(1), 3, 0.4, (6, 5)).astype(jnp.float32)
    return model, model.init(jax.random.PRNGKey(0), x), x


def test_the_posterior_is_eta_q_with_its_summary() -> None:
    model, params, x = small_model()
    post = model.posterior(params, x)
    natural = model.posterior_params(params, x)
    expected = posterior.summarise(model.latent, natural)
    for name in natural:
        np.testing.assert_array_equal(post.params[name], natural[name])
    for got, want in zip(post[1:5], expected[1:5], strict=True):
        np.testing.assert_array_equal(got, want)
    assert post.shared_w_yk is None  # the full model's W_yk depends on x
    np.testing.assert_array_equal(model.cluster_responsibilities(params, x), post.responsibilities)


@dataclass(frozen=True)
class _Spy(Objective):
    """Records the context it is given; contributes the posterior's mean ψ_Z."""

    name: ClassVar[str] = "spy"
    seen: list[Any]

    def finish(self, ctx, key, states, residual):  # type: ignore[no-untyped-def]
        self.seen.append(ctx)
        value = jnp.mean(ctx.posterior.log_partition)
        return value, value


def test_every_term_of_a_step_reads_one_context_and_one_posterior() -> None:
    model, params, x = small_model()
    seen: list[Any] = []

    @dataclass(frozen=True)
    class _OtherSpy(_Spy):
        name: ClassVar[str] = "other_spy"

    class _Plugin:
        @hookimpl
        def expfam_objectives(self):  # type: ignore[no-untyped-def]
            return [_Spy(seen), _OtherSpy(seen)]

    registry = build_registry([_Plugin()])
    make_loss(model, {"spy": 1.0, "other_spy": 1.0}, SETTINGS, registry=registry)(params, x, jax.random.key(2), 0)
    assert len(seen) == 2 and seen[0] is seen[1] and isinstance(seen[0], StepContext)
    assert seen[0].posterior is seen[1].posterior


def test_a_context_inside_vmap_reads_its_own_slice() -> None:
    """Stacked trials (vmap over parameters): each slice's posterior is its own parameters'."""
    model, params, x = small_model()
    other = jax.tree.map(lambda leaf: 0.5 * leaf, params)
    stacked = jax.tree.map(lambda a, b: jnp.stack([a, b]), params, other)

    def psi(p):
        ctx = StepContext.create(model, p, x, 0, SETTINGS)
        return jnp.sum(ctx.posterior.responsibilities[0]) + jnp.sum(ctx.posterior.log_partition)

    value, grads = jax.jit(jax.vmap(jax.value_and_grad(psi)))(stacked)
    for index, p in enumerate((params, other)):
        np.testing.assert_allclose(value[index], psi(p), rtol=1e-6)
    assert all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in jax.tree.leaves(grads))


def test_gradient_with_one_posterior_equals_gradient_with_one_per_quantity() -> None:
    model, params, x = small_model()

    def separate(p):  # each quantity computes η_q(x) itself
        kl = jnp.mean(model.posterior_kl(p, x))
        entropy = jnp.sum(jnp.mean(model.cluster_responsibilities(p, x), axis=0) ** 2)
        return kl + jnp.mean(model.baseline(p, x)) + entropy

    def shared(p):  # one posterior for all three
        post = model.posterior(p, x)
        kl = jnp.mean(model.posterior_kl(p, x, post))
        entropy = jnp.sum(jnp.mean(post.responsibilities, axis=0) ** 2)
        return kl + jnp.mean(model.baseline(p, x, post)) + entropy

    np.testing.assert_allclose(shared(params), separate(params), rtol=1e-6)
    for ours, plain in zip(
        jax.tree.leaves(jax.grad(shared)(params)), jax.tree.leaves(jax.grad(separate)(params)), strict=True
    ):
        np.testing.assert_allclose(ours, plain, rtol=1e-6, atol=1e-9)


def _equations(jaxpr: Any) -> Iterator[Any]:
    """Every equation of a jaxpr, inside sub-jaxprs (jit, scan, cond, custom rules) too."""
    for eqn in jaxpr.eqns:
        yield eqn
        for value in eqn.params.values():
            for sub in value if isinstance(value, (tuple, list)) else (value,):
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns"):
                    yield from _equations(inner)


def _adjoint_products(function: Any, params: Any, batch: int, size: int) -> int:
    """Products in the jaxpr of `grad(function)` that contract the batch axis into `size` entries.

    With `size = D·n(K−1)` these are the backward pass of the `xyk` block's adjoint in `η_q(x)`:
    `∂V_j = sᵀ G_j` for the `K − 1` clusters, one `D × n(K−1)` product per use of `η_q(x)`.
    """
    jaxpr = jax.make_jaxpr(jax.grad(function))(params).jaxpr
    count = 0
    for eqn in _equations(jaxpr):
        if eqn.primitive.name != "dot_general":
            continue
        (lhs_contract, _), _ = eqn.params["dimension_numbers"]
        shape = eqn.invars[0].aval.shape
        if [shape[axis] for axis in lhs_contract] == [batch] and eqn.outvars[0].aval.size == size:
            count += 1
    return count


def test_the_loss_gradient_flows_back_through_eta_q_once() -> None:
    """The whole loss of a step has one ``D × n(K−1)`` adjoint product, as one use of ``η_q(x)`` has."""
    model, params, x = small_model()
    batch, d, n, km1 = x.shape[0], x.shape[1], model.latent.param_shape[0], model.n_clusters - 1
    key = jax.random.key(3)
    weights = {"elbo": 1.0, "conjugation": 0.3, "posterior_entropy": 0.5, "rao_blackwell_elbo": 1.0}
    loss_fn = make_loss(model, weights, SETTINGS)

    def loss(p):
        return loss_fn(p, x, key, 2)[0]

    def one_use(p):
        return jnp.sum(model.posterior(p, x).log_partition)

    def one_per_term(p):  # what the step would cost if each term computed η_q(x) itself
        return sum(jnp.sum(model.posterior(p, x).log_partition) * weight for weight in (1.0, 0.5, 1.0))

    size = d * n * km1
    assert _adjoint_products(one_use, params, batch, size) == 1
    assert _adjoint_products(loss, params, batch, size) == 1
    assert _adjoint_products(one_per_term, params, batch, size) == 3  # the count sees each use


def test_hierarchical_log_density_with_one_w_yk_for_the_batch_is_the_batched_one() -> None:
    """Without an ``xyk`` block η_q's ``W_yk`` is the prior's for every row: one product, same value and gradient."""
    model = build_model(
        observable="binomial",
        observable_options={"n_trials": 3},
        data_dim=5,
        n_latent=3,
        n_clusters=4,
        blocks="hierarchical",
    )
    x = jax.random.binomial(jax.random.PRNGKey(1), 3, 0.4, (6, 5)).astype(jnp.float64)
    params = random_model_params(model, jax.random.PRNGKey(2), scale=0.5)
    y = jax.random.bernoulli(jax.random.PRNGKey(3), 0.5, (6, 7, 3)).astype(jnp.float64)
    k = jax.random.randint(jax.random.PRNGKey(4), (6, 7), 0, 4)

    def batched(p):  # without the shared leaf: the per-observation product
        post = model.posterior(p, x)._replace(shared_w_yk=None)
        return jnp.sum(jnp.sin(posterior.log_density(model.latent, post, y, k)))

    def shared(p):
        post = model.posterior(p, x)
        assert post.shared_w_yk is not None
        return jnp.sum(jnp.sin(posterior.log_density(model.latent, post, y, k)))

    np.testing.assert_allclose(shared(params), batched(params), rtol=1e-12)
    for a, b in zip(jax.tree.leaves(jax.grad(shared)(params)), jax.tree.leaves(jax.grad(batched)(params)), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    # the full model's W_yk varies with x: no shared leaf
    assert small_model()[0].posterior(*small_model()[1:]).shared_w_yk is None
