"""New shoppers: a population drawn from a distribution fitted to the World's user side.

``ShopperConfig(population="new")`` puts shoppers in the rows whom the World never
saw: they have no history and their parameters are not any fitted shopper's. They
are drawn from a Gaussian mixture with diagonal covariances fitted (EM, in torch)
to the concatenated user-side parameters of the World's *train* shoppers::

    x_u = [user_embedding_u, user_bias_u, ...]                    (D,) per train shopper u
    p(x) = sum_k pi_k N(x; mu_k, diag(sigma2_k))                  K = new_shopper_components

The user-side parameters are every model parameter whose first dimension is U and
whose name says ``user`` (MF/BPR: ``user_embedding``, ``user_bias``; GMF/MLP:
``user_embedding``; NeuMF: ``gmf.user_embedding``, ``mlp.user_embedding``), so every
model family works without a method of its own.

A pool of ``new_shopper_pool`` shoppers is drawn from the mixture (seeded by
``new_shopper_seed``, so the new population is a fixed function of the World and
the config, not of the environment's seed) and appended to a copy of the model:
shoppers U .. U + P - 1. The first half of the pool is train, the second half test
(the draws are independent, so the halves are two samples of the same law and
train and test shoppers still differ). The copy keeps the World's utility
standardisation (``utility_shift``/``utility_scale``) and calibration: a new
shopper's utility means what a fitted shopper's does.

The fit and the pool are cached per (World hash, components, pool, seed) in the
process, since environments are created often.
"""

from __future__ import annotations

import copy
import math
from collections import OrderedDict
from dataclasses import dataclass, replace

import torch
from torch import nn

from shopgym.simulator.errors import ConfigError
from shopgym.simulator.world import World

CARD_KEY = "new_shoppers"
"""Key of the World card section that records the pool (first index, size, fit)."""

_CACHE_SIZE = 8
# EM works on (rows, K, D) blocks rather than matrix products: element-wise ops are
# deterministic whatever the BLAS and its threads, and blocks bound the memory.
_ROWS_PER_CHUNK = 4096
_cache: OrderedDict[tuple, World] = OrderedDict()


@dataclass(frozen=True)
class Mixture:
    """A Gaussian mixture with diagonal covariances over D dimensions (float64).

    Attributes:
        weights: (K,) mixing weights pi_k (sum 1).
        means: (K, D) mu_k.
        variances: (K, D) sigma2_k (> 0).
        log_likelihood: mean log-likelihood per point of the data it was fitted to.
        iterations: EM iterations run.
    """

    weights: torch.Tensor
    means: torch.Tensor
    variances: torch.Tensor
    log_likelihood: float
    iterations: int

    def log_density(self, x: torch.Tensor) -> torch.Tensor:
        """(n, D) points -> (n, K) log pi_k + log N(x; mu_k, diag(sigma2_k))."""
        return self.weights.log() + _component_log_density(x.double(), self.means, self.variances)

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """(n, D) float64 draws: a component k ~ pi, then x ~ N(mu_k, diag(sigma2_k))."""
        component = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        noise = torch.randn((n, self.means.shape[1]), generator=generator, dtype=torch.float64)
        return self.means[component] + self.variances[component].sqrt() * noise


def _component_log_density(x: torch.Tensor, means: torch.Tensor, variances: torch.Tensor) -> torch.Tensor:
    """(n, D), (K, D), (K, D) -> (n, K) log N(x_n; mu_k, diag(sigma2_k))."""
    constant = variances.log().sum(1) + x.shape[1] * math.log(2 * math.pi)  # (K,)
    chunks = [((chunk[:, None, :] - means) ** 2 / variances).sum(2) for chunk in x.split(_ROWS_PER_CHUNK)]
    return -0.5 * (torch.cat(chunks) + constant)


def _weighted_moments(r: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, K) responsibilities, (n, D) points -> (K, D) sums of r_nk x_n and of r_nk x_n^2."""
    first = torch.zeros((r.shape[1], x.shape[1]), dtype=x.dtype)
    second = torch.zeros_like(first)
    for rows, chunk in zip(r.split(_ROWS_PER_CHUNK), x.split(_ROWS_PER_CHUNK), strict=True):
        weighted = rows[:, :, None] * chunk[:, None, :]  # (n', K, D)
        first = first + weighted.sum(0)
        second = second + (weighted * chunk[:, None, :]).sum(0)
    return first, second


def fit_mixture(
    data: torch.Tensor,
    components: int,
    seed: int = 0,
    max_iterations: int = 200,
    tolerance: float = 1e-6,
    variance_floor: float = 1e-6,
) -> Mixture:
    """Fit a diagonal Gaussian mixture to (n, D) ``data`` by EM (float64, on CPU:
    deterministic for a seed).

    The data are standardised per column first (so that the k-means++ start is not
    dominated by the widest parameter, e.g. embeddings next to biases) and the fit is
    mapped back. EM, with responsibilities r_nk::

        E: r_nk ∝ pi_k N(x_n; mu_k, diag(sigma2_k))
        M: pi_k = sum_n r_nk / n,  mu_k = sum_n r_nk x_n / sum_n r_nk,
           sigma2_k = sum_n r_nk (x_n - mu_k)^2 / sum_n r_nk + floor

    until the mean log-likelihood gains less than ``tolerance``. ``components`` is
    capped at n. ``variance_floor`` is in standardised units (it keeps a component on
    one point, or a constant column such as BPR's user bias, from collapsing).
    """
    if components < 1:
        raise ConfigError(f"a mixture needs at least one component, got {components}")
    x = data.detach().to("cpu", torch.float64)
    if x.dim() == 1:
        x = x[:, None]
    n = x.shape[0]
    if n == 0:
        raise ConfigError("cannot fit a mixture to no data")
    components = min(components, n)
    centre, spread = x.mean(0), x.std(0, correction=0).clamp(min=1e-12)
    z = (x - centre) / spread
    generator = torch.Generator().manual_seed(seed)
    means = _kmeans_plus_plus(z, components, generator)
    variances = torch.ones_like(means)
    weights = torch.full((components,), 1.0 / components, dtype=torch.float64)
    previous = -math.inf
    log_likelihood = -math.inf
    iterations = 0
    for _ in range(max_iterations):
        iterations += 1
        joint = weights.log() + _component_log_density(z, means, variances)  # (n, K)
        total = joint.logsumexp(1, keepdim=True)
        log_likelihood = float(total.mean())
        responsibility = (joint - total).exp()
        mass = responsibility.sum(0) + 1e-12  # (K,)
        weights = mass / mass.sum()
        first, second = _weighted_moments(responsibility, z)
        means = first / mass[:, None]
        variances = (second / mass[:, None] - means * means).clamp(min=0) + variance_floor
        if log_likelihood - previous < tolerance:
            break
        previous = log_likelihood
    # The log-likelihood in the data's own units: the standardisation's Jacobian.
    log_likelihood -= float(spread.log().sum())
    return Mixture(
        weights=weights,
        means=means * spread + centre,
        variances=variances * spread * spread,
        log_likelihood=log_likelihood,
        iterations=iterations,
    )


def _kmeans_plus_plus(z: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """(k, D) starting means: k-means++ (each next centre drawn ∝ squared distance to
    the nearest centre so far). A loop over the k centres, each step vectorised."""
    first = int(torch.randint(len(z), (1,), generator=generator))
    centres = [z[first]]
    nearest = ((z - z[first]) ** 2).sum(1)
    for _ in range(1, k):
        if float(nearest.sum()) <= 0:  # fewer distinct points than components
            index = int(torch.randint(len(z), (1,), generator=generator))
        else:
            index = int(torch.multinomial(nearest, 1, generator=generator))
        centres.append(z[index])
        nearest = torch.minimum(nearest, ((z - z[index]) ** 2).sum(1))
    return torch.stack(centres)


def user_parameter_names(model: nn.Module) -> list[str]:
    """Names of the model's user-side parameters: first dimension U, ``user`` in the name."""
    num_users = model.num_users
    return [
        name
        for name, parameter in model.named_parameters()
        if "user" in name.rsplit(".", 1)[-1] and parameter.dim() >= 1 and parameter.shape[0] == num_users
    ]


def user_parameters(model: nn.Module, users: torch.Tensor | None = None) -> torch.Tensor:
    """(U', D) the user-side parameters of ``users`` (all when ``None``), concatenated
    in :func:`user_parameter_names` order (a 1-D parameter is one column)."""
    parameters = dict(model.named_parameters())
    columns = []
    for name in user_parameter_names(model):
        value = parameters[name].detach()
        value = value if users is None else value[users.to(value.device)]
        columns.append(value.reshape(len(value), -1).cpu())
    return torch.cat(columns, 1)


def with_new_users(model: nn.Module, new_users: torch.Tensor) -> nn.Module:
    """A copy of ``model`` with (P, D) ``new_users`` (columns as :func:`user_parameters`)
    appended as users U .. U + P - 1; the model classes need no method of their own."""
    model = copy.deepcopy(model).cpu()
    num_users = model.num_users
    parameters = dict(model.named_parameters())
    start = 0
    for name in user_parameter_names(model):
        old = parameters[name]
        width = math.prod(old.shape[1:])
        new = new_users[:, start : start + width].to(old.dtype).reshape(len(new_users), *old.shape[1:])
        start += width
        owner_name, _, attribute = name.rpartition(".")
        owner = model.get_submodule(owner_name) if owner_name else model
        setattr(owner, attribute, nn.Parameter(torch.cat([old.detach(), new]), requires_grad=False))
    if start != new_users.shape[1]:
        raise ConfigError(f"new users have {new_users.shape[1]} columns, the model's user side {start}")
    # NeuMF's GMF and MLP halves carry num_users too.
    for module in model.modules():
        if getattr(module, "num_users", None) == num_users:
            module.num_users = num_users + len(new_users)
    return model


def new_shopper_world(world: World, components: int = 8, pool: int = 2048, seed: int = 0) -> World:
    """``world`` (on CPU) whose model also holds ``pool`` new shoppers drawn from a
    mixture of ``components`` Gaussians fitted to its train shoppers (see the module
    docstring). Cached per (World hash, components, pool, seed).

    The card's ``new_shoppers`` section records the first pool index, the pool size,
    the fit and the source World's hash; :func:`pool_members` reads it. A World that
    already holds the same pool comes back as it is (simulators built from another
    simulator's ``world``, as planning copies are, keep its shoppers).
    """
    if pool < 2:
        raise ConfigError(f"the new-shopper pool needs at least 2 shoppers (train and test), got {pool}")
    section = world.card.get(CARD_KEY)
    if section is not None:
        if (section["components_asked"], section["pool"], section["seed"]) == (components, pool, seed):
            # Already such a World (a planning copy of a simulator is built from its world).
            return world
        raise ConfigError(
            f"this World already holds a pool of new shoppers ({section}); pass the World it came from"
        )
    key = (world.hash, components, pool, seed)
    cached = _cache.get(key)
    if cached is not None:
        _cache.move_to_end(key)
        return cached
    cpu = world.to("cpu")
    train = torch.nonzero(~cpu.test_shopper).flatten()
    mixture = fit_mixture(user_parameters(cpu.model, train), components, seed=seed)
    draws = mixture.sample(pool, torch.Generator().manual_seed(seed + 1)).float()
    first = cpu.num_shoppers
    # Independent draws: the second half is as good a test set as any random half.
    pool_test = torch.arange(pool) >= pool // 2
    new = replace(
        cpu,
        model=with_new_users(cpu.model, draws),
        test_shopper=torch.cat([cpu.test_shopper, pool_test]),
        card={
            **cpu.card,
            CARD_KEY: {
                "first": first,
                "pool": pool,
                "components": len(mixture.weights),
                "components_asked": components,
                "seed": seed,
                "source_world_hash": key[0],
                "fit": {
                    "train_shoppers": len(train),
                    "dimensions": int(mixture.means.shape[1]),
                    "log_likelihood": mixture.log_likelihood,
                    "iterations": mixture.iterations,
                },
            },
        },
    )
    _cache[key] = new
    while len(_cache) > _CACHE_SIZE:
        _cache.popitem(last=False)
    return new


def pool_members(world: World, shoppers: str) -> torch.Tensor:
    """Indices of the ``"train"``, ``"test"`` or ``"all"`` new shoppers of a
    :func:`new_shopper_world` (never a fitted shopper)."""
    section = world.card.get(CARD_KEY)
    if section is None:
        raise ConfigError("this World holds no new-shopper pool (build it with new_shopper_world)")
    members = world.shopper_indices(shoppers)
    return members[members >= section["first"]]
