"""Running one agent on a vector environment and recording each episode."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from shopgym.agents.base import Agent, Transition
from shopgym.envs.torch_env import TorchStep, TorchVectorEnv, as_torch_env
from shopgym.simulator.errors import ConfigError
from shopgym.simulator.shoppers import ShopperSimulator

RECORD_COLUMNS = ("episode", "round", "env_index", "return", "clicks", "purchases", "length")
# What an episode record sums over its steps, in this order.
_TOTALS = ("return", "clicks", "purchases", "length")
# What evaluate_detailed adds to each record, before the per-position clicks.
DETAIL_COLUMNS = ("revenue", "ndcg", "ild", "novelty")
# Detail columns that are means over the episode's slates (summed per step, divided by length).
_SLATE_MEANS = ("ndcg", "ild", "novelty")
ITEM_COLUMNS = ("item", "shown", "clicked")


def position_columns(slate_size: int) -> list[str]:
    """The per-position click columns of a record: ``clicks_p0 .. clicks_p{k-1}``."""
    return [f"clicks_p{position}" for position in range(slate_size)]


@dataclass(frozen=True)
class Evaluation:
    """What :func:`evaluate_detailed` returns.

    Attributes:
        records: one row per episode: :data:`RECORD_COLUMNS`, then :data:`DETAIL_COLUMNS`
            and ``clicks_p0 .. clicks_p{k-1}``.
        items: ``item, shown, clicked`` (int): each catalogue item shown at least once in
            the recorded episodes, sorted by item, with how often it was shown and clicked.
    """

    records: pd.DataFrame
    items: pd.DataFrame


def evaluate(agent: Agent, env: Any, episodes: int, seed: int) -> pd.DataFrame:
    """Run ``agent`` on ``env`` until every sub-environment has finished its share of
    ``episodes``.

    ``env`` is a torch vector env (:class:`shopgym.envs.torch_env.TorchVectorEnv`: the
    loop stays on its device, and the records are copied to the host once, at the
    end), or a Gymnasium vector env with same-step autoreset: ours, or Gymnasium's own
    ``SyncVectorEnv`` / ``AsyncVectorEnv`` of single shopper envs built with
    ``autoreset_mode=AutoresetMode.SAME_STEP``, through
    :class:`~shopgym.envs.torch_env.GymnasiumTorchAdapter` (the last slate of an ended
    session is read from ``info["final_info"]``). Another autoreset mode is a
    :class:`ConfigError`.

    Each of the B sub-environments records its first ``episodes / B`` episodes (the
    first ``episodes % B`` one more), so that short sessions are not over-represented
    (stopping at the first ``episodes`` completions would favour them). Episode
    ``round`` r holds every sub-environment's (r+1)-th session, so rounds are an
    unbiased time axis for online learners, which observe every step.

    Returns:
        One row per episode, ordered by (``round``, ``env_index``): ``episode`` (that
        order), ``round``, ``env_index``, ``return``, ``clicks``, ``purchases``, ``length``.
    """
    return _run(agent, env, episodes, seed, details=False).records


def evaluate_detailed(agent: Agent, env: Any, episodes: int, seed: int) -> Evaluation:
    """:func:`evaluate`, with what the records alone cannot tell: the slates' quality
    against the true utilities, their diversity and novelty, revenue, clicks per slate
    position, and which catalogue items were shown and clicked.

    The base columns are exactly those of :func:`evaluate` with the same arguments: the
    details draw no random numbers and change no state. Only a torch env of the shopper
    simulator has the truth they need (a shopgym shopper env, Gymnasium or torch);
    InterestEvolution (no catalogue, no revenue) and other Gymnasium envs are a
    :class:`ConfigError`.

    Detail columns of each record (k the slate size, N the candidates per slate):

    - ``revenue``: the sum of the steps' ``info["revenue"]`` (median-price units).
    - ``ndcg``: mean over the episode's slates of NDCG@k of the shown slate against the
      ranking of the step's N candidates by true utility (read before the step: the
      candidates the agent chose from). The gain of candidate j is
      ``exp(beta (u_j - max u))``, the discount of position p = 0..k-1 is
      ``1 / log2(p + 2)``, and the ideal slate is the k best candidates in order.
    - ``ild``: mean over slates of the intra-list diversity: the mean over the slate's
      item pairs of 1 - the cosine similarity of their multi-hot categories
      (``World.item_category``); the similarity is 0 where an item has no category (a
      distance of 1). NaN for slates of one item (no pairs).
    - ``novelty``: mean over the shown items of ``-log2(share)``, with the popularity
      share ``(item_popularity + 1) / sum(item_popularity + 1)``.
    - ``clicks_p0 .. clicks_p{k-1}``: clicks at each slate position, summed over the
      episode (they add up to ``clicks``).
    """
    return _run(agent, env, episodes, seed, details=True)


class _SlateDetails:
    """The detail columns and item counts of a shopper simulator's env, accumulated in
    tensors on its device.

    Each step keeps what the metrics need of the state the agent chose from (its
    shoppers, candidates and their utility terms of the shopper's state; see
    :meth:`before_step`), and once the pending steps hold :data:`FLUSH_PAIRS` (shopper,
    candidate) pairs, one batched pass computes their metrics. The World model's
    utilities of all N candidates are most of the cost: on a CPU one forward pass over
    F x (B, N) pairs costs less than F passes over (B, N) while the batch stays small
    (at B = 50, N = 20 on 2 cores: about 0.65x per step at F = 4; past several thousand
    pairs the activations leave the cache and it costs more again).

    Args:
        env: a :class:`TorchVectorEnv` of a :class:`ShopperSimulator`.
        rounds: the most episodes a sub-environment records (the records' second axis).
    """

    FLUSH_PAIRS = 4096

    def __init__(self, env: Any, rounds: int):
        simulator = getattr(env, "simulator", None)
        if not isinstance(env, TorchVectorEnv) or not isinstance(simulator, ShopperSimulator):
            inner = type(simulator).__name__ if simulator is not None else type(env).__name__
            raise ConfigError(
                "evaluate_detailed needs a shopper env (shopgym's shopper presets, Gymnasium or torch): "
                f"its metrics read the shopper simulator's true utilities and World; got {inner}. "
                "Use evaluate for the base records"
            )
        self.simulator = simulator
        world = simulator.world
        self.slate_size = k = env.slate_size
        device = simulator.device
        self.discount = 1.0 / torch.log2(torch.arange(k, device=device, dtype=torch.float32) + 2)  # (k,)
        categories = world.item_category.float()
        norms = categories.norm(dim=1, keepdim=True)
        weights = world.item_popularity.double() + 1
        novelty = (-torch.log2(weights / weights.sum())).float()
        # One (M, C + 2) table, read with one lookup: the unit category vector (a zero row
        # for an item with no category: similarity 0 to anything), the squared norm of
        # that vector (1, or 0 without categories), the novelty.
        self.item_table = torch.cat(
            (categories / norms.clamp(min=1e-12), (norms > 0).float(), novelty[:, None]), 1
        )
        # Pairs of distinct slate positions; the ILD of a one-item slate is NaN (no pairs).
        self.pairs = k * (k - 1) / 2 if k > 1 else math.nan
        self.counts = torch.zeros((world.num_items, 2), dtype=torch.long, device=device)  # shown, clicked
        self.columns = [*DETAIL_COLUMNS, *position_columns(k)]
        # (B, rounds, 4 + k) per-episode sums of the detail columns, written in place.
        self.records = torch.zeros(
            (simulator.num_shoppers, rounds, len(self.columns)), dtype=torch.float64, device=device
        )
        self.rows = torch.arange(simulator.num_shoppers, device=device)
        self.pending: list[dict[str, torch.Tensor]] = []

    def before_step(self, slates: torch.Tensor) -> dict[str, torch.Tensor]:
        """What the metrics need of the state the (B, k) ``slates`` are shown in: call it
        just before ``env.step``, which moves to the next shoppers and candidates. Pure
        reads (no random draws, no state changed); no copies either, as the simulator's
        parts replace their state tensors and never write into them."""
        simulator = self.simulator
        candidates = simulator.candidates  # (B, N)
        # ShopperSimulator.utilities is the World's score plus each part's term; the terms
        # depend on the state now, the World's score only on (shopper, item): it waits
        # for the batched pass.
        terms = torch.zeros(candidates.shape, device=simulator.device)
        for part in simulator.parts:
            term = part.utility(candidates)
            if term is not None:
                terms = terms + term
        slates = slates.to(simulator.device, torch.long)
        return {"shopper": simulator.shopper, "candidates": candidates, "terms": terms, "slates": slates}

    def after_step(
        self, pending: dict[str, torch.Tensor], step: TorchStep, slot: torch.Tensor, recording: torch.Tensor
    ) -> None:
        """Keep this step's outcome with what :meth:`before_step` read: (B,) ``slot`` the
        episode of each row, counted where (B,) bool ``recording``."""
        pending |= {
            "clicks": step.clicks,
            "revenue": step.info["revenue"],
            "slot": slot,
            "recording": recording,
        }
        self.pending.append(pending)
        if len(self.pending) * pending["candidates"].numel() >= self.FLUSH_PAIRS:
            self.flush()

    def flush(self) -> None:
        """Add the metrics of the pending steps (F of them) to the records and counts."""
        if not self.pending:
            return
        steps = {key: torch.stack([step[key] for step in self.pending]) for key in self.pending[0]}
        self.pending = []
        candidates, slates = steps["candidates"], steps["slates"]  # (F, B, N), (F, B, k)
        num_steps = candidates.shape[0]
        world = self.simulator.world.utilities(steps["shopper"].flatten(), candidates.flatten(0, 1))
        utility = world.view(candidates.shape) + steps["terms"]  # (F, B, N)
        gain = torch.exp(self.simulator.beta * (utility - utility.amax(2, keepdim=True)))
        # DCG of the shown slate and of the ideal one (>= 1: the best gain is 1).
        ranked = torch.stack((gain.gather(2, slates), gain.topk(self.slate_size, dim=2).values), 2)
        dcg = ranked @ self.discount  # (F, B, 2)
        ndcg = dcg[..., 0] / dcg[..., 1]
        items = candidates.gather(2, slates)  # (F, B, k) catalogue items
        summed = self.item_table[items].sum(2)  # (F, B, C + 2)
        vectors = summed[..., :-2]
        # Sum of the cosine similarities over ordered pairs i != j: |sum_i v_i|^2 - sum_i |v_i|^2.
        similarity = (vectors * vectors).sum(2) - summed[..., -2]
        ild = 1 - similarity / (2 * self.pairs)
        novelty = summed[..., -1] / self.slate_size
        clicks = steps["clicks"].long()  # (F, B, k); a cascade clicks at most one position, PBM several
        recording = steps["recording"][..., None]  # (F, B, 1)
        measures = torch.stack((steps["revenue"].double(), ndcg.double(), ild.double(), novelty.double()), 2)
        values = torch.where(recording, torch.cat((measures, clicks.double()), 2), 0.0)  # (F, B, 4 + k)
        counts = torch.stack((recording.long().expand_as(items), clicks * recording), 3)  # (F, B, k, 2)
        self.counts.index_add_(0, items.flatten(), counts.flatten(0, 2))
        # One step at a time: rows are distinct within a step, so a plain indexed add is
        # exact and deterministic on every device (a scatter over steps would race on GPUs).
        for index in range(num_steps):
            self.records[self.rows, steps["slot"][index]] += values[index]

    def items_frame(self) -> pd.DataFrame:
        counts = self.counts.cpu().numpy()
        items = np.flatnonzero(counts[:, 0] > 0)
        frame = pd.DataFrame(
            {"item": items, "shown": counts[items, 0], "clicked": counts[items, 1]},
            columns=list(ITEM_COLUMNS),
        )
        return frame.astype(int)


def _run(agent: Agent, env: Any, episodes: int, seed: int, details: bool) -> Evaluation:
    """The loop of :func:`evaluate` and :func:`evaluate_detailed`; ``items`` is an empty
    frame without ``details``."""
    env = as_torch_env(env, "evaluate")
    num_envs, device = env.num_envs, env.device
    quota = torch.full((num_envs,), episodes // num_envs, device=device)
    quota[: episodes % num_envs] += 1
    rounds = int(quota.max())
    detail = _SlateDetails(env, rounds) if details else None
    finished = torch.zeros(num_envs, dtype=torch.long, device=device)
    totals = torch.zeros((num_envs, len(_TOTALS)), dtype=torch.float64, device=device)
    records = torch.zeros((num_envs, rounds, len(_TOTALS)), dtype=torch.float64, device=device)
    rows = torch.arange(num_envs, device=device)
    agent.attach(env)
    observation, _ = env.reset(seed=seed)
    # Whether any quota is left is a read-back from the device: every step on the CPU,
    # where it costs nothing, every 16 steps on a GPU. The steps past the last quota
    # record nothing (writes are quota-gated) and change no returned number.
    check_every, steps = (1 if device.type == "cpu" else 16), 0
    while steps % check_every or bool((finished < quota).any()):
        steps += 1
        action = agent.act(observation)
        if detail is not None:  # the state the agent chose from, before the step changes it
            pending = detail.before_step(action)
        step = env.step(action)
        if agent.learns_online:  # the latent info (true utilities, time budgets) for oracles only
            agent.observe(Transition(observation, action, step if agent.needs_oracle else step.observable()))
        outcome = (step.reward, step.clicks.sum(1), step.purchases.sum(1), torch.ones_like(step.reward))
        totals += torch.stack(outcome, 1).double()
        done = step.done
        # Record the episodes that ended within their sub-environment's quota, in place
        # and without a host round trip: rows outside it write back what they held.
        slot = finished.clamp(max=rounds - 1)
        recording = finished < quota  # (B,) the rows whose current episode is recorded
        write = (done & recording)[:, None]
        records[rows, slot] = torch.where(write, totals, records[rows, slot])
        if detail is not None:
            detail.after_step(pending, step, slot, recording)
        finished += done.long()
        totals = torch.where(done[:, None], 0.0, totals)
        observation = step.observation
    kept = torch.arange(rounds, device=device)[None, :] < quota[:, None]  # (B, rounds)
    # Round-major order: round r of every sub-environment before round r + 1.
    values = records.transpose(0, 1)[kept.T].cpu().numpy()
    grid = np.argwhere(kept.T.cpu().numpy())  # (round, env_index) in the same order
    frame = pd.DataFrame(values, columns=list(_TOTALS))
    frame.insert(0, "env_index", grid[:, 1])
    frame.insert(0, "round", grid[:, 0])
    frame.insert(0, "episode", np.arange(len(frame)))
    integers = ("episode", "round", "env_index", "clicks", "purchases", "length")
    frame = frame.astype(dict.fromkeys(integers, int))[list(RECORD_COLUMNS)]
    if detail is None:
        return Evaluation(frame, pd.DataFrame({name: pd.Series(dtype=int) for name in ITEM_COLUMNS}))
    detail.flush()
    extra = pd.DataFrame(detail.records.transpose(0, 1)[kept.T].cpu().numpy(), columns=detail.columns)
    for name in _SLATE_MEANS:  # sums over the slates -> means
        extra[name] = extra[name] / frame["length"]
    extra = extra.astype(dict.fromkeys(position_columns(detail.slate_size), int))
    return Evaluation(pd.concat([frame, extra], axis=1), detail.items_frame())
