"""Running one agent on a vector environment and recording each episode."""

from __future__ import annotations

import numpy as np
import pandas as pd

from shopgym.agents.base import Agent, Transition
from shopgym.envs.core import require_same_step_autoreset, slate_info

RECORD_COLUMNS = ("episode", "round", "env_index", "return", "clicks", "purchases", "length")


def evaluate(agent: Agent, env, episodes: int, seed: int) -> pd.DataFrame:
    """Run ``agent`` on ``env`` (a Gymnasium vector env with same-step autoreset)
    until every sub-environment has finished its share of ``episodes``.

    ``env`` may be :class:`shopgym.envs.ShopperVectorEnv` or Gymnasium's own
    ``SyncVectorEnv`` / ``AsyncVectorEnv`` of single shopper envs built with
    ``autoreset_mode=AutoresetMode.SAME_STEP``: the last slate of an ended session is
    read from ``info["final_info"]`` (:func:`shopgym.envs.core.slate_info`). Another
    autoreset mode is a :class:`ConfigError`.

    Each of the B sub-environments records its first ``episodes / B`` episodes (the
    first ``episodes % B`` one more), so that short sessions are not over-represented
    (stopping at the first ``episodes`` completions would favour them). Episode
    ``round`` r holds every sub-environment's (r+1)-th session, so rounds are an
    unbiased time axis for online learners, which observe every step.

    Returns:
        One row per episode, ordered by (``round``, ``env_index``): ``episode`` (that
        order), ``round``, ``env_index``, ``return``, ``clicks``, ``purchases``, ``length``.
    """
    require_same_step_autoreset(env, "evaluate")
    num_envs = env.num_envs
    quota = np.full(num_envs, episodes // num_envs)
    quota[: episodes % num_envs] += 1
    finished = np.zeros(num_envs, dtype=int)
    totals = {key: np.zeros(num_envs) for key in ("return", "clicks", "purchases", "length")}
    rows: list[tuple] = []
    agent.attach(env)
    observation, info = env.reset(seed=seed)
    while (finished < quota).any():
        action = agent.act(observation, info)
        next_observation, reward, terminated, truncated, info = env.step(action)
        if agent.learns_online:
            agent.observe(
                Transition(observation, action, reward, next_observation, terminated, truncated, info)
            )
        totals["return"] += reward
        totals["clicks"] += slate_info(info, "clicks").sum(1)
        totals["purchases"] += slate_info(info, "purchases").sum(1)
        totals["length"] += 1
        for index in np.flatnonzero(terminated | truncated):
            if finished[index] < quota[index]:
                rows.append(
                    (
                        0,
                        finished[index],
                        index,
                        totals["return"][index],
                        totals["clicks"][index],
                        totals["purchases"][index],
                        totals["length"][index],
                    )
                )
            finished[index] += 1
            for values in totals.values():
                values[index] = 0.0
        observation = next_observation
    frame = pd.DataFrame(rows, columns=list(RECORD_COLUMNS)).sort_values(["round", "env_index"])
    frame["episode"] = np.arange(len(frame))
    integers = ("episode", "round", "env_index", "clicks", "purchases", "length")
    return frame.astype(dict.fromkeys(integers, int)).reset_index(drop=True)
