"""``shopgym/InterestEvolution-v0``: RecSim's interest-evolution environment, single and batched."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from shopgym.envs.core import numpy_step, row, to_numpy, with_options
from shopgym.envs.spaces import SlateSpace
from shopgym.envs.torch_env import TorchVectorEnv
from shopgym.simulator.errors import ConfigError
from shopgym.simulator.interest_evolution import (
    MAX_VIDEO_LENGTH,
    InterestEvolutionConfig,
    InterestEvolutionSimulator,
)
from shopgym.simulator.outcome import StepOutcome

QUALITY_BOUND = 100.0
# What the step's info reports beyond the slate's clicks and purchases.
INFO_KEYS = ("watch_time", "time_budget")


def make_simulator(
    num_users: int,
    device: str | torch.device,
    config: InterestEvolutionConfig | None,
    overrides: dict[str, Any],
) -> InterestEvolutionSimulator:
    """Build the simulator; ``overrides`` are :class:`InterestEvolutionConfig` fields given as keywords."""
    return InterestEvolutionSimulator(
        with_options(config or InterestEvolutionConfig(), overrides), num_users, device
    )


def observation_space(config: InterestEvolutionConfig) -> spaces.Dict:
    """The observation space of one user (see :meth:`InterestEvolutionSimulator.observe`)."""
    n, k, t = config.num_candidates, config.slate_size, config.num_topics
    # RecSim's bound (IEvResponse's quality scores in [-100, 100]), widened where the cluster
    # means lie so far out that a draw 20 standard deviations away could pass it.
    extreme_mean = max(abs(config.min_utility), abs(config.max_utility))
    quality_bound = max(QUALITY_BOUND, extreme_mean + 20 * config.quality_std)
    return spaces.Dict(
        {
            # RecSim declares both feature spaces as boxes in [-1, 1].
            "user": spaces.Box(-1.0, 1.0, (t,), np.float32),
            "doc_features": spaces.Box(-1.0, 1.0, (n, t), np.float32),
            "response_click": spaces.MultiDiscrete(np.full(k, 2, dtype=np.int64)),
            "response_watch_time": spaces.Box(0.0, MAX_VIDEO_LENGTH, (k,), np.float32),
            "response_liked": spaces.MultiDiscrete(np.full(k, 2, dtype=np.int64)),
            "response_quality": spaces.Box(-quality_bound, quality_bound, (k,), np.float32),
            "response_cluster_id": spaces.MultiDiscrete(np.full(k, t, dtype=np.int64)),
        }
    )


def step_info(outcome: StepOutcome | None) -> dict[str, np.ndarray]:
    """Batched info: ``clicks`` and ``purchases`` (B, k) bool, ``watch_time`` (B,) and the
    ``time_budget`` (B,) left at the end of the step (for analysis; agents do not see it)."""
    if outcome is None:
        return {}
    return {
        "clicks": outcome.clicks.cpu().numpy(),
        "purchases": outcome.purchases.cpu().numpy(),
        "watch_time": outcome.info["watch_time"].cpu().numpy(),
        "time_budget": outcome.info["time_budget"].cpu().numpy(),
    }


class InterestEvolutionEnv(gym.Env):
    """RecSim's interest-evolution environment: one user watches videos from slates.

    ## Description

    The dynamics of RecSim's ``interest_evolution`` environment (the one its
    ``create_environment`` builds and RLlib's SlateQ examples train on), term by term,
    on shopgym's batched torch simulator. At each step N candidate videos are drawn:
    each has a cluster (topic) drawn uniformly from T, one-hot features of that
    cluster, a length of 4 minutes and a quality drawn around its cluster's mean
    (clusters 0..13 are "trashy", mean -3 up to 0; clusters 14..19 "nutritious", 0
    up to 3). The agent shows k of them. The user clicks at most one video, with
    probability proportional to its score (interest in its topic) minus
    ``min_normalizer``, against a no-click option of weight ``no_click_mass -
    min_normalizer``. A clicked video is watched for min(time budget, length)
    minutes; watching moves the user's interest in its topic towards or away from
    it (towards with probability (interest + 1) / 2), costs the watch time and gives
    back ``user_update_alpha`` × watch time × quality: good videos lengthen the
    session, trashy ones shorten it. A slate without a click costs
    ``step_penalty`` minutes.

    The observation is RecSim's: **the user's interest vector is observable**, as in
    RecSim's environment, so that results can be set beside RecSim's and RLlib's
    (shopgym's own environments never show latent preferences). Candidate quality
    is not observed, as in RecSim; the response to the last slate (which includes
    the quality and cluster of the videos shown) is.

    | RecSim | shopgym option | default |
    |---|---|---|
    | ``num_candidates`` (env_config) | ``num_candidates`` | 10 (RLlib's SlateQ) |
    | ``slate_size`` (env_config) | ``slate_size`` | 2 (RLlib's SlateQ) |
    | ``resample_documents`` (env_config) | ``resample_documents`` | True |
    | ``seed`` (env_config; NumPy's global seed via ``env.seed``) | ``reset(seed=...)`` | — |
    | ``IEvVideo.NUM_FEATURES``, ``IEvUserState.NUM_FEATURES`` | ``num_topics`` | 20 |
    | ``UtilityModelVideoSampler(min_utility, max_utility)`` | ``min_utility``, ``max_utility`` | -3, 3 |
    | quality ``normal(cluster_mean, quality_variance=0.1)`` | ``quality_std`` | 0.1 |
    | ``UtilityModelVideoSampler(video_length)`` | ``video_length`` | 4.0 |
    | ``time_budget`` (UtilityModelUserSampler) | ``time_budget`` | 200 |
    | ``step_penalty`` | ``step_penalty`` | 0.5 |
    | ``user_update_alpha`` = 0.9 / 3.4 | ``user_update_alpha`` | 0.2647 |
    | ``user_quality_factor`` | ``user_quality_factor`` | 0 |
    | ``document_quality_factor`` | ``document_quality_factor`` | 1 |
    | ``choice_model_ctor`` = MultinomialProportionalChoiceModel | ``choice_model`` | ``"proportional"`` |
    | ``no_click_mass`` | ``no_click_mass`` | 1 |
    | ``min_normalizer`` | ``min_normalizer`` | -1 |
    | ``score_scaling`` (cascade models only) | ``score_scaling`` | 0.05 |
    | ``attention_prob`` (cascade models only) | ``attention_prob`` | 0.65 |
    | ``alpha_x_intercept`` (IEvUserModel) | ``alpha_x_intercept`` | 1.0 |
    | ``alpha_y_intercept`` (IEvUserModel) | ``alpha_y_intercept`` | 0.3 |
    | (none: sessions end on the budget alone) | ``max_steps`` | None |

    ## Action Space

    :class:`SlateSpace`: ``k`` distinct integers in ``[0, N)``, indices into the
    current candidates. RecSim's ``MultiDiscrete`` accepts repeats; here a slate with
    repeats or out-of-range indices raises
    :class:`shopgym.simulator.errors.SlateError`, and ``sample()`` draws valid slates.

    ## Observation Space

    A ``Dict`` (RecSim's ``user``, ``doc`` and ``response``, flattened to fixed keys):

    | key | shape | meaning (RecSim's name) |
    |---|---|---|
    | ``user`` | (T,) float32 | the user's interests in [-1, 1] (``user``) |
    | ``doc_features`` | (N, T) float32 | one-hot clusters of the candidates (``doc``) |
    | ``response_click`` | (k,) int64 | 1 at the clicked slate position (``click``) |
    | ``response_watch_time`` | (k,) float32 | minutes watched (``watch_time``) |
    | ``response_liked`` | (k,) int64 | always 0: RecSim never sets it (``liked``) |
    | ``response_quality`` | (k,) float32 | quality of each video shown (``quality``) |
    | ``response_cluster_id`` | (k,) int64 | cluster of each video shown (``cluster_id``) |

    The ``response_*`` entries are zeros before a session's first slate (RecSim has no
    response there; RLlib's wrapper fills a random one).

    ## Rewards

    The watch time of the clicked video, 0 without a click (RecSim's
    ``clicked_watchtime_reward``). ``info`` holds ``clicks`` and ``purchases`` (k,) bool
    (purchases are always False), ``watch_time`` and the ``time_budget`` left (for
    analysis only).

    ## Starting State

    Interests uniform in [-1, 1] per topic, a full time budget, no response yet,
    fresh candidates.

    ## Episode End

    ``terminated``: the time budget fell to 0 or below (RecSim's ``is_terminal``).
    ``truncated``: ``max_steps`` slates were shown (never, by default; a random
    policy's sessions last about 84 steps).

    ## Arguments

    ``gymnasium.make("shopgym/InterestEvolution-v0", device="cpu", config=None,
    **options)``: ``options`` are fields of
    :class:`shopgym.simulator.interest_evolution.InterestEvolutionConfig` (the table
    above); an unknown option raises :class:`ConfigError` listing the valid ones.

    ## Version History

    - v0: initial release.
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        device: str | torch.device = "cpu",
        config: InterestEvolutionConfig | None = None,
        render_mode: None = None,
        **options: Any,
    ):
        self.simulator = make_simulator(1, device, config, options)
        self.render_mode = render_mode
        config = self.simulator.config
        self.action_space = SlateSpace(config.num_candidates, config.slate_size)
        self.observation_space = observation_space(config)
        self._session_started = False  # the simulator already began the next session

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None or not self._session_started:
            self.simulator.reset(seed)
        self._session_started = False
        return row(to_numpy(self.simulator.observe()), 0), {}

    def step(self, action: np.ndarray):
        outcome = self.simulator.step(torch.as_tensor(np.asarray(action))[None])
        terminated, truncated = bool(outcome.terminated[0]), bool(outcome.truncated[0])
        observation = row(to_numpy(self.simulator.observe(outcome.final_state)), 0)
        # When the session ended the simulator has already started the next one;
        # the following reset() returns it instead of drawing again.
        self._session_started = terminated or truncated
        info = row(step_info(outcome), 0)
        info["watch_time"] = float(info["watch_time"])
        info["time_budget"] = float(info["time_budget"])
        return observation, float(outcome.reward[0]), terminated, truncated, info


class InterestEvolutionTorchEnv(TorchVectorEnv):
    """``num_envs`` users of :class:`InterestEvolutionEnv` as a
    :class:`shopgym.envs.torch_env.TorchVectorEnv`: tensors in and out on the
    simulator's device (``"auto"``: CUDA when available). ``TorchStep.info`` holds
    ``watch_time`` and ``time_budget`` (B,); ``check_slates`` and ``compile`` as in
    :class:`~shopgym.envs.torch_env.TorchVectorEnv`; ``options`` as in
    :class:`InterestEvolutionEnv`."""

    def __init__(
        self,
        num_envs: int = 1,
        device: str | torch.device = "auto",
        config: InterestEvolutionConfig | None = None,
        check_slates: bool = True,
        compile: bool = False,
        **options: Any,
    ):
        simulator = make_simulator(num_envs, device, config, options)
        config = simulator.config
        super().__init__(
            simulator,
            observation_space(config),
            SlateSpace(config.num_candidates, config.slate_size),
            check_slates=check_slates,
            compile=compile,
        )


class InterestEvolutionVectorEnv(VectorEnv):
    """``num_envs`` users of :class:`InterestEvolutionEnv` stepped together by one batched
    simulator (no Python loop over users), whose documentation applies; with
    ``num_envs=1`` and the same seed the two give identical numbers. ``device``
    defaults to ``"auto"`` (CUDA when available).

    Autoreset is ``SAME_STEP``: a sub-environment whose session ends in a step already
    shows the next user in the returned observation; the final observation is in
    ``info["final_obs"]`` (an object array, ``None`` for the others) with the mask
    ``info["_final_obs"]``, and ``info["final_info"]`` holds the ended sessions' last
    ``clicks``, ``purchases``, ``watch_time`` and ``time_budget``; the top-level
    entries (B, ...), with their ``_key`` masks, hold the running sessions' (the
    layout of Gymnasium's ``SyncVectorEnv``; ``shopgym.envs.core.slate_info`` reads
    the slate just shown from both).

    ``reset(seed=s)`` seeds the batch's random streams (a list of seeds is not supported:
    the users share the streams). It is an adapter: the batch is an
    :class:`InterestEvolutionTorchEnv` (``torch_env``), whose tensors it copies to NumPy.
    """

    metadata = {"render_modes": [], "autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(
        self,
        num_envs: int = 1,
        device: str | torch.device = "auto",
        config: InterestEvolutionConfig | None = None,
        render_mode: None = None,
        **options: Any,
    ):
        self.torch_env = InterestEvolutionTorchEnv(num_envs, device, config, **options)
        self.simulator = self.torch_env.simulator
        self.num_envs = num_envs
        self.render_mode = render_mode
        config = self.simulator.config
        self.single_action_space = self.torch_env.single_action_space
        self.action_space = SlateSpace(config.num_candidates, config.slate_size, num_envs)
        self.single_observation_space = self.torch_env.single_observation_space
        self.observation_space = batch_space(self.single_observation_space, num_envs)

    def reset(self, *, seed: int | list[int] | None = None, options: dict | None = None):
        if isinstance(seed, list | tuple):
            raise ConfigError("InterestEvolutionVectorEnv.reset takes one integer seed for the whole batch")
        super().reset(seed=seed)
        observation, _ = self.torch_env.reset(seed)
        return to_numpy(observation), {}

    def step(self, actions: np.ndarray):
        return numpy_step(self.torch_env.step(torch.as_tensor(np.asarray(actions))), INFO_KEYS, set())
