"""Running one agent on a vector environment and recording each episode."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from shopgym.agents.base import Agent, Transition
from shopgym.envs.torch_env import as_torch_env

RECORD_COLUMNS = ("episode", "round", "env_index", "return", "clicks", "purchases", "length")
# What an episode record sums over its steps, in this order.
_TOTALS = ("return", "clicks", "purchases", "length")


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
    env = as_torch_env(env, "evaluate")
    num_envs, device = env.num_envs, env.device
    quota = torch.full((num_envs,), episodes // num_envs, device=device)
    quota[: episodes % num_envs] += 1
    rounds = int(quota.max())
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
        step = env.step(action)
        if agent.learns_online:  # the latent info (true utilities, time budgets) for oracles only
            agent.observe(Transition(observation, action, step if agent.needs_oracle else step.observable()))
        outcome = (step.reward, step.clicks.sum(1), step.purchases.sum(1), torch.ones_like(step.reward))
        totals += torch.stack(outcome, 1).double()
        done = step.done
        # Record the episodes that ended within their sub-environment's quota, in place
        # and without a host round trip: rows outside it write back what they held.
        slot = finished.clamp(max=rounds - 1)
        write = (done & (finished < quota))[:, None]
        records[rows, slot] = torch.where(write, totals, records[rows, slot])
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
    return frame.astype(dict.fromkeys(integers, int))[list(RECORD_COLUMNS)]
