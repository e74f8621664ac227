"""Stable-Baselines3's PPO on Shopper-v1 through the score-vector slate wrapper.

    python -m shopgym.experiments.examples.sb3_ppo_score_vector

The policy outputs one score per candidate (a Box(N) action) and the env shows the
k highest; ``CandidateScorer`` scores every candidate row with shared weights, and
``use_scores_as_head`` makes those scores the policy's output. Everything else is
plain SB3: its logger, callbacks, ``save`` and ``evaluate_policy``. About two minutes
on one CPU core; SB3's ``device="auto"`` takes a GPU when there is one.
"""

import torch
from stable_baselines3 import PPO
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import VecMonitor

from shopgym.envs import PRESETS, ShopperSB3VecEnv
from shopgym.envs.slate_wrappers import CandidateScorer, ScoreVectorVecEnv, use_scores_as_head

ENV, SHOPPERS, BUDGET, SEED = "shopgym/Shopper-v1", 50, 100_000, 0


def shoppers(which: str) -> VecMonitor:
    options = {**PRESETS[ENV], "device": "cpu", "observation": "features"}
    return VecMonitor(ScoreVectorVecEnv(ShopperSB3VecEnv(SHOPPERS, shoppers=which, **options)))


def main() -> None:
    torch.set_num_threads(1)
    train, test = shoppers("train"), shoppers("test")
    # As shopgym's sb3-ppo agent: the scores are bounded by tanh inside the action box (PPO clips
    # its samples to [-1, 1], and clipped scores tie, broken by index), and the Gaussian starts wide.
    policy_kwargs = {
        "features_extractor_class": CandidateScorer,
        "features_extractor_kwargs": {"score_bound": 1.0},
        "log_std_init": 0.5,
        "net_arch": {"pi": [], "vf": [64, 64]},
    }
    batch_size = 64 * SHOPPERS // 4  # 4 minibatches of each rollout of 64 steps
    model = PPO(
        "MultiInputPolicy", train, n_steps=64, batch_size=batch_size, policy_kwargs=policy_kwargs, seed=SEED
    )
    use_scores_as_head(model, train.num_candidates)
    model.learn(BUDGET)
    test.seed(SEED)
    mean, std = evaluate_policy(model, test, n_eval_episodes=500, deterministic=True)
    print(f"SB3 PPO on held-out shoppers: return {mean:.3f} (std {std:.3f} over 500 sessions)")
    model.save("sb3_ppo_shopper")


if __name__ == "__main__":
    main()
