"""Every policy behind one interface (:class:`Agent`), and a registry by name."""

from __future__ import annotations

from typing import Any

from shopgym.agents.bandits import (
    CascadingUCBAgent,
    EpsilonGreedyAgent,
    LinearThompsonAgent,
    LinUCBAgent,
    ThompsonSamplingAgent,
    UCB1Agent,
)
from shopgym.agents.base import Agent, Transition
from shopgym.agents.baselines import PopularityAgent, RandomAgent
from shopgym.agents.oracles import MyopicOracleAgent, OracleAgent, PlanningOracleAgent
from shopgym.agents.ppo import PPOAgent
from shopgym.agents.sb3_agents import SB3DQNAgent, SB3MaskablePPOAgent, SB3PPOAgent
from shopgym.agents.slateq import SlateQAgent
from shopgym.agents.static_deep import BPRMFAgent, GRU4RecAgent, NeuMFAgent
from shopgym.agents.static_mf import StaticMFAgent
from shopgym.simulator.errors import ConfigError

AGENTS: dict[str, type[Agent]] = {
    agent.name: agent
    for agent in (
        RandomAgent,
        PopularityAgent,
        EpsilonGreedyAgent,
        UCB1Agent,
        ThompsonSamplingAgent,
        CascadingUCBAgent,
        LinUCBAgent,
        LinearThompsonAgent,
        StaticMFAgent,
        BPRMFAgent,
        NeuMFAgent,
        GRU4RecAgent,
        SlateQAgent,
        PPOAgent,
        SB3PPOAgent,
        SB3MaskablePPOAgent,
        SB3DQNAgent,
        OracleAgent,
        MyopicOracleAgent,
        PlanningOracleAgent,
    )
}


def make_agent(
    name: str, observation_space, action_space, seed: int = 0, device: str = "auto", **kwargs: Any
) -> Agent:
    """Build the agent registered as ``name``."""
    if name not in AGENTS:
        raise ConfigError(f"unknown agent {name!r}; available: {', '.join(AGENTS)}")
    return AGENTS[name](observation_space, action_space, seed=seed, device=device, **kwargs)


__all__ = [
    "AGENTS",
    "Agent",
    "BPRMFAgent",
    "CascadingUCBAgent",
    "EpsilonGreedyAgent",
    "GRU4RecAgent",
    "LinUCBAgent",
    "LinearThompsonAgent",
    "MyopicOracleAgent",
    "NeuMFAgent",
    "OracleAgent",
    "PPOAgent",
    "PlanningOracleAgent",
    "PopularityAgent",
    "RandomAgent",
    "SB3DQNAgent",
    "SB3MaskablePPOAgent",
    "SB3PPOAgent",
    "SlateQAgent",
    "StaticMFAgent",
    "ThompsonSamplingAgent",
    "Transition",
    "UCB1Agent",
    "make_agent",
]
