"""LinUCB learning online on Shopper-v1: the held-out shoppers' return, round by round.

    python -m shopgym.experiments.examples.linucb_online

A bandit does not train first: it learns from every slate it shows during
evaluation (``agent.learns_online``). Episode ``round`` r holds every shopper's
(r+1)-th session, so the mean return per round is its learning curve. Seconds on one
CPU core.
"""

import torch

from shopgym.agents import make_agent
from shopgym.envs import make_torch_env
from shopgym.experiments.evaluation import evaluate

ENV, SHOPPERS, DEVICE = "shopgym/Shopper-v1", 50, "cpu"
EPISODES, SEED = 1_000, 0


def main() -> None:
    torch.set_num_threads(1)
    test = make_torch_env(ENV, SHOPPERS, shoppers="test", device=DEVICE)
    space, slates = test.single_observation_space, test.single_action_space
    for name, options in (("linucb", {"exploration": 0.5}), ("popularity", {})):
        agent = make_agent(name, space, slates, seed=SEED, device=DEVICE, **options)
        records = evaluate(agent, test, EPISODES, seed=SEED)
        by_round = records.groupby("round")["return"].mean()
        curve = " ".join(f"{value:.2f}" for value in by_round.iloc[:: max(1, len(by_round) // 10)])
        print(f"{name:10s} mean return {records['return'].mean():.3f}; by round: {curve}")


if __name__ == "__main__":
    main()
