"""SlateQ on Shopper-v1: train on train shoppers, evaluate on held-out ones, next to random.

    python -m shopgym.experiments.examples.slateq_shopper

SlateQ (Ie et al., IJCAI 2019) learns item-wise long-term values and a click model
from its own data; here with SARSA targets and the greedy slate optimiser. About a
minute on one CPU core; on a GPU, ``DEVICE = "cuda"``.
"""

import torch

from shopgym.agents import make_agent
from shopgym.envs import make_torch_env
from shopgym.experiments.evaluation import evaluate
from shopgym.experiments.stats import mean_ci

ENV, SHOPPERS, DEVICE = "shopgym/Shopper-v1", 50, "cpu"
BUDGET, EPISODES, SEED = 50_000, 500, 0


def main() -> None:
    torch.set_num_threads(1)
    train = make_torch_env(ENV, SHOPPERS, shoppers="train", device=DEVICE)
    test = make_torch_env(ENV, SHOPPERS, shoppers="test", device=DEVICE)
    space, slates = test.single_observation_space, test.single_action_space
    slateq = make_agent("slateq", space, slates, seed=SEED, device=DEVICE, target="sarsa", lr=1e-3)
    slateq.fit(train, BUDGET, seed=10_000 + SEED)
    for agent in (slateq, make_agent("random", space, slates, seed=SEED, device=DEVICE)):
        returns = evaluate(agent, test, EPISODES, seed=SEED)["return"].to_numpy()
        low, high = mean_ci(returns)
        print(f"{agent.name:8s} return {returns.mean():.3f} [{low:.3f}, {high:.3f}] over {EPISODES} sessions")
    slateq.save("slateq_shopper.pt")  # make_agent(...).load("slateq_shopper.pt") restores it


if __name__ == "__main__":
    main()
