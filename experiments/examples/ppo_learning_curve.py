"""Native PPO (a Plackett-Luce slate policy) on Shopper-v1, with a learning curve.

    python -m shopgym.experiments.examples.ppo_learning_curve

``fit`` calls ``checkpoint(steps)`` at evenly spaced points of training: here each
point evaluates the policy on the same held-out shoppers (the same seed every time,
so the points differ only by what the agent learned) and the script prints the
curve. About a minute on one CPU core.
"""

import torch

from shopgym.agents import make_agent
from shopgym.envs import make_torch_env
from shopgym.experiments.evaluation import evaluate

ENV, SHOPPERS, DEVICE = "shopgym/Shopper-v1", 50, "cpu"
BUDGET, POINTS, EPISODES, SEED = 100_000, 5, 200, 0


def main() -> None:
    torch.set_num_threads(1)
    train = make_torch_env(ENV, SHOPPERS, shoppers="train", device=DEVICE)
    test = make_torch_env(ENV, SHOPPERS, shoppers="test", device=DEVICE)
    ppo = make_agent(
        "ppo", test.single_observation_space, test.single_action_space, seed=SEED, device=DEVICE, n_epochs=4
    )

    def checkpoint(steps: int) -> None:
        state = ppo.generator.get_state()  # evaluating must not change training's random stream
        mean = evaluate(ppo, test, EPISODES, seed=20_000)["return"].mean()
        ppo.generator.set_state(state)
        print(f"{steps:>8,} training slates: mean held-out return {mean:.3f}")

    ppo.fit(train, BUDGET, seed=10_000 + SEED, checkpoint=checkpoint)


if __name__ == "__main__":
    main()
