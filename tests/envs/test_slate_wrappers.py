"""The SB3 slate wrappers (batched and single-env): valid slates from SB3's algorithms,
and the features extractor."""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from functools import partial
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env as gym_check_env
from sb3_contrib import MaskablePPO
from sb3_contrib.common.maskable.utils import get_action_masks, is_masking_supported
from stable_baselines3 import A2C, DQN, PPO, SAC
from stable_baselines3.common.env_checker import check_env as sb3_check_env
from stable_baselines3.common.vec_env import DummyVecEnv, VecCheckNan, VecEnv, VecMonitor

import shopgym.envs
from shopgym.envs import ShopperEnv, ShopperSB3VecEnv, ShopperTorchEnv
from shopgym.envs.slate_wrappers import (
    CandidateScorer,
    RepairingSlotFilling,
    RepairingSlotFillingVecEnv,
    ScoreVector,
    ScoreVectorVecEnv,
    SlotFilling,
    SlotFillingVecEnv,
    top_k_distinct,
    use_scores_as_head,
)
from shopgym.simulator.errors import ConfigError, SlateError
from tests.envs._helpers import SYNTHETIC, assert_same

PRESET = shopgym.envs.PRESETS[SYNTHETIC]  # N = 10 candidates, k = 3
B, N, K = 4, 10, 3
FEATURE_KEYS = {"candidate_features", "history_features", "step"}
WRAPPERS = (ScoreVectorVecEnv, SlotFillingVecEnv, RepairingSlotFillingVecEnv)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # The SB3 networks here are tiny: one thread is faster than several fighting over the cores.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _base(num_envs: int = B, **options) -> ShopperSB3VecEnv:
    return ShopperSB3VecEnv(num_envs, **{**PRESET, "device": "cpu", "observation": "features", **options})


def _valid_actions(env: VecEnv, rng: np.random.Generator) -> np.ndarray:
    """Random actions the wrapper accepts: scores, or masked candidates."""
    if isinstance(env.action_space, gym.spaces.Box):
        return rng.uniform(-1, 1, (env.num_envs, N)).astype(np.float32)
    masks = env.action_masks()
    return np.array([rng.choice(np.flatnonzero(row)) for row in masks])


def _assert_in_space(space: gym.spaces.Dict, observation: dict, rows: int | None, where: str) -> None:
    assert set(observation) == set(space.spaces), where
    for key, entry in space.items():
        value = observation[key]
        assert value.dtype == entry.dtype, f"{where} {key}"
        if rows is None:
            assert entry.contains(value), f"{where} {key}"
        else:
            assert value.shape == (rows, *entry.shape), f"{where} {key}"
            assert all(entry.contains(value[i]) for i in range(rows)), f"{where} {key}"


# ----------------------------------------------------------- the VecEnv contract


@pytest.mark.parametrize("wrapper", WRAPPERS)
def test_wrappers_keep_the_vec_env_contract(wrapper):
    # What SB3's env checker asks of an env, for a VecEnv: returns inside the spaces,
    # float32 rewards, bool dones, one info per env, terminal observations in the space.
    env = VecCheckNan(wrapper(_base(max_steps=3, patience=6.0)), raise_exception=True)
    assert env.num_envs == B
    env.seed(0)
    observation = env.reset()
    _assert_in_space(env.observation_space, observation, B, "reset")
    rng = np.random.default_rng(0)
    ends = 0
    for step in range(40):
        observation, rewards, dones, infos = env.step(_valid_actions(env.venv, rng))
        where = f"step {step}"
        _assert_in_space(env.observation_space, observation, B, where)
        assert rewards.shape == (B,) and rewards.dtype == np.float32, where
        assert dones.shape == (B,) and dones.dtype == np.bool_, where
        assert isinstance(infos, list) and len(infos) == B and all(isinstance(i, dict) for i in infos)
        for index in np.flatnonzero(dones):
            ends += 1
            _assert_in_space(env.observation_space, infos[index]["terminal_observation"], None, where)
            assert isinstance(infos[index]["TimeLimit.truncated"], bool)
    assert ends >= B


@pytest.mark.parametrize("wrapper", WRAPPERS)
def test_wrappers_drop_the_id_keys_of_a_full_observation(wrapper):
    env = wrapper(_base(observation="full"))
    assert set(env.observation_space.spaces) >= FEATURE_KEYS
    assert not {"candidate_ids", "history_ids"} & set(env.observation_space.spaces)
    assert not {"candidate_ids", "history_ids"} & set(env.reset())


@pytest.mark.parametrize("wrapper", WRAPPERS)
def test_wrappers_work_over_a_dummy_vec_env_of_single_shoppers(wrapper):
    venv = DummyVecEnv([lambda: gym.make(SYNTHETIC, max_steps=2) for _ in range(2)])
    env = wrapper(venv)
    env.seed(0)
    _assert_in_space(env.observation_space, env.reset(), 2, "reset")
    rng = np.random.default_rng(0)
    slates = []
    for _ in range(4 * K):
        _, _, dones, infos = env.step(_valid_actions(env, rng))
        slates += [info["slate"] for info in infos if "slate" in info]
        for index in np.flatnonzero(dones):
            _assert_in_space(env.observation_space, infos[index]["terminal_observation"], None, "end")
    assert slates and all(len(set(slate.tolist())) == K for slate in slates)


def test_wrappers_need_an_env_of_slates():
    venv = DummyVecEnv([lambda: gym.make("CartPole-v1")])
    for wrapper in WRAPPERS:
        with pytest.raises(ConfigError, match="SlateSpace"):
            wrapper(venv)


def test_sb3_adapter_over_an_existing_torch_env_steps_it():
    torch_env = ShopperTorchEnv(B, **{**PRESET, "device": "cpu"})
    adapter = ShopperSB3VecEnv.from_torch_env(torch_env, observation="features")
    direct = _base()
    assert adapter.torch_env is torch_env and adapter.simulator is torch_env.simulator
    assert adapter.observation_space == direct.observation_space
    adapter.seed(3), direct.seed(3)
    assert_same(adapter.reset(), direct.reset())
    rng = np.random.default_rng(0)
    for step in range(20):
        actions = np.argsort(rng.random((B, N)), axis=1)[:, :K]
        assert_same(adapter.step(actions), direct.step(actions), f"step {step}")
    with pytest.raises(ConfigError, match="observation must be one of"):
        ShopperSB3VecEnv.from_torch_env(torch_env, observation="ids")
    with pytest.raises(ConfigError, match="TorchVectorEnv"):
        ShopperSB3VecEnv.from_torch_env(direct)


# ------------------------------------------------------------------ slot filling


def _twin_runs(wrapper: type, steps: int, seed: int = 5, **options):
    """The wrapper and a bare adapter with the same seed, the bare one shown each slate
    the wrapper completed: (wrapper results, bare results at the completing sub-steps)."""
    env, bare = wrapper(_base(**options)), _base(**options)
    env.seed(seed), bare.seed(seed)
    first, bare_first = env.reset(), bare.reset()
    rng = np.random.default_rng(seed)
    results, bare_results = [], []
    for _ in range(steps):
        result = env.step(_valid_actions(env, rng))
        results.append(result)
        if "slate" in result[3][0]:
            bare_results.append(bare.step(np.stack([info["slate"] for info in result[3]])))
    return env, (first, results), (bare_first, bare_results)


def test_slot_filling_masks_chosen_items_and_never_repeats():
    env = SlotFillingVecEnv(_base(max_steps=4))
    env.seed(1)
    observation = env.reset()
    rng = np.random.default_rng(1)
    slates = 0
    for step in range(60):
        slot = step % K
        np.testing.assert_array_equal(observation["slot"], np.eye(K, dtype=np.float32)[[slot] * B])
        masks = env.action_masks()
        np.testing.assert_array_equal(masks, observation["chosen"] == 0)
        assert masks.sum(1).tolist() == [N - slot] * B
        # What MaskablePPO reads, through VecMonitor too: the same masks, one row per env.
        assert is_masking_supported(VecMonitor(env))
        np.testing.assert_array_equal(get_action_masks(VecMonitor(env)), masks)
        assert np.array_equal(np.stack(env.env_method("action_masks", indices=[2, 0])), masks[[2, 0]])
        observation, _, _, infos = env.step(_valid_actions(env, rng))
        for info in infos:
            if "slate" in info:
                slates += 1
                assert len(set(info["slate"].tolist())) == K
    assert slates == 20 * B


def test_slot_filling_rewards_and_dones_only_on_the_completing_sub_step():
    _, (first, results), (bare_first, bare_results) = _twin_runs(
        SlotFillingVecEnv, 90, max_steps=3, patience=6.0
    )
    assert_same({key: first[key] for key in FEATURE_KEYS}, bare_first)
    ends = 0
    for step, (observation, rewards, dones, infos) in enumerate(results):
        if (step + 1) % K:
            assert not rewards.any() and not dones.any(), step
            assert all("slate" not in info and "terminal_observation" not in info for info in infos)
            continue
        bare_observation, bare_rewards, bare_dones, bare_infos = bare_results[step // K]
        assert_same({key: observation[key] for key in FEATURE_KEYS}, bare_observation, f"step {step}")
        np.testing.assert_array_equal(rewards, bare_rewards)
        np.testing.assert_array_equal(dones, bare_dones)
        assert not observation["chosen"].any() and (observation["slot"][:, 0] == 1).all()
        for index in np.flatnonzero(dones):
            ends += 1
            terminal, bare_terminal = (
                infos[index]["terminal_observation"],
                bare_infos[index]["terminal_observation"],
            )
            assert_same({key: terminal[key] for key in FEATURE_KEYS}, bare_terminal, f"step {step}")
            # The session ended before any position of a next slate was filled.
            assert not terminal["chosen"].any() and terminal["slot"].tolist() == [1.0, 0.0, 0.0]
            assert infos[index]["TimeLimit.truncated"] == bare_infos[index]["TimeLimit.truncated"]
    assert ends >= B


def test_slot_filling_refuses_repeats_and_out_of_range_actions():
    env = SlotFillingVecEnv(_base())
    env.reset()
    env.step(np.array([1, 2, 3, 4]))
    with pytest.raises(SlateError, match=r"rows \[1, 3\] chose a candidate already in their slate"):
        env.step(np.array([0, 2, 5, 4]))
    env.reset()
    with pytest.raises(SlateError, match=r"rows \[2\] are not candidate indices"):
        env.step(np.array([0, 1, N, 3]))


def test_repairing_slot_filling_takes_the_next_free_candidate_in_index_order():
    env = RepairingSlotFillingVecEnv(_base())
    rng = np.random.default_rng(0)
    for _ in range(200):
        chosen = np.zeros((B, N), dtype=bool)
        for row in range(B):
            chosen[row, rng.choice(N, size=rng.integers(0, K), replace=False)] = True
        actions = rng.integers(0, N, B)
        placed, repaired = env.resolve(actions, chosen)
        for row in range(B):
            # The rule, written out: a, a + 1, ..., wrapping around, the first one free.
            expected = next(c % N for c in range(actions[row], actions[row] + N) if not chosen[row, c % N])
            assert placed[row] == expected
            assert repaired[row] == chosen[row, actions[row]]


def test_repairing_slot_filling_reports_and_optionally_charges_repairs():
    env = RepairingSlotFillingVecEnv(_base(), repeat_penalty=0.5)
    env.reset()
    # Every row asks for candidate 9 three times: 9, then 0 (wrapping), then 1.
    _, rewards, _, infos = env.step(np.full(B, 9))
    assert [info["repaired"] for info in infos] == [False] * B and not rewards.any()
    _, rewards, _, infos = env.step(np.array([9, 9, 3, 9]))
    assert [info["repaired"] for info in infos] == [True, True, False, True]
    np.testing.assert_array_equal(rewards, [-0.5, -0.5, 0.0, -0.5])
    _, _, _, infos = env.step(np.array([9, 0, 3, 5]))
    assert [info["slate"].tolist() for info in infos] == [[9, 0, 1], [9, 0, 1], [9, 3, 4], [9, 0, 5]]
    assert [info["repaired"] for info in infos] == [True, True, True, False]
    with pytest.raises(ConfigError, match="repeat_penalty"):
        RepairingSlotFillingVecEnv(_base(), repeat_penalty=-1.0)


def test_fill_builds_slates_as_the_wrapper_does():
    env = RepairingSlotFillingVecEnv(_base())
    features = {key: value for key, value in env.reset().items() if key in FEATURE_KEYS}
    seen = []

    def always_nine(observation, masks):
        seen.append((observation["slot"].argmax(1).tolist(), masks.sum(1).tolist()))
        return np.full(B, 9)

    assert env.fill(features, always_nine).tolist() == [[9, 0, 1]] * B
    assert seen == [([s] * B, [N - s] * B) for s in range(K)]
    with pytest.raises(SlateError, match="already in their slate"):
        SlotFillingVecEnv(_base()).fill(features, always_nine)


# ------------------------------------------------------------------ score vector


def test_top_k_distinct_ranks_scores_and_breaks_ties_by_index():
    scores = np.array([[0.1, 0.9, 0.5, 0.9, -2.0], [0.0, 0.0, 0.0, 0.0, 0.0], [1, 1, 2, 0, 1]])
    assert top_k_distinct(scores, 3).tolist() == [[1, 3, 2], [0, 1, 2], [2, 0, 1]]
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(50, N))
    np.testing.assert_array_equal(top_k_distinct(scores, K), np.argsort(-scores, axis=1)[:, :K])
    with pytest.raises(SlateError, match=r"rows \[1\] are not finite"):
        top_k_distinct(np.array([[0.0, 1.0], [np.nan, 1.0]]), 1)


def test_score_vector_shows_the_top_k_candidates():
    env, (_, results), (_, bare_results) = _twin_runs(ScoreVectorVecEnv, 30)
    assert env.action_space == gym.spaces.Box(-1.0, 1.0, (N,), dtype=np.float32)
    for (observation, rewards, dones, _), bare in zip(results, bare_results, strict=True):
        assert_same((observation, rewards, dones), bare[:3])
    scores = np.random.default_rng(0).uniform(-1, 1, (B, N)).astype(np.float32)
    _, _, _, infos = env.step(scores)
    np.testing.assert_array_equal(np.stack([info["slate"] for info in infos]), np.argsort(-scores, 1)[:, :K])
    with pytest.raises(SlateError, match="not finite"):
        env.step(np.full((B, N), np.inf, dtype=np.float32))
    with pytest.raises(ConfigError, match="bound"):
        ScoreVectorVecEnv(_base(), bound=0.0)


# ------------------------------------------------------------ features extractor


@pytest.mark.parametrize("wrapper", [ScoreVectorVecEnv, SlotFillingVecEnv])
def test_candidate_scorer_scores_every_row_with_shared_weights(wrapper):
    env = wrapper(_base())
    torch.manual_seed(0)
    scorer = CandidateScorer(env.observation_space, hidden=16, summary_dim=5)
    assert scorer.features_dim == N + 5
    env.seed(0)
    observation = env.reset()
    if wrapper is SlotFillingVecEnv:
        observation, *_ = env.step(np.array([0, 3, 5, 9]))
    tensors = {key: torch.as_tensor(value) for key, value in observation.items()}
    output = scorer(tensors)
    assert output.shape == (B, N + 5)
    # Permuting the candidate rows permutes their scores and leaves the summary alone.
    order = torch.randperm(N, generator=torch.Generator().manual_seed(1))
    permuted = dict(tensors, candidate_features=tensors["candidate_features"][:, order])
    if "chosen" in tensors:
        permuted["chosen"] = tensors["chosen"][:, order]
    again = scorer(permuted)
    torch.testing.assert_close(again[:, :N], output[:, order])
    torch.testing.assert_close(again[:, N:], output[:, N:])
    # A candidate's score depends on its own row: changing one row changes only its score.
    changed = dict(tensors, candidate_features=tensors["candidate_features"].clone())
    changed["candidate_features"][:, 4] += 1.0
    difference = (scorer(changed)[:, :N] - output[:, :N]).abs()
    assert (difference[:, 4] > 0).all() and (difference[:, [i for i in range(N) if i != 4]] == 0).all()
    bounded = CandidateScorer(env.observation_space, hidden=16, score_bound=1.0)
    assert bounded(tensors)[:, :N].abs().max() < 1.0


def test_use_scores_as_head_makes_the_scores_the_logits():
    env = SlotFillingVecEnv(_base())
    kwargs = {"features_extractor_class": CandidateScorer, "net_arch": {"pi": [], "vf": [8]}}
    model = MaskablePPO("MultiInputPolicy", env, n_steps=8, batch_size=16, policy_kwargs=kwargs, seed=0)
    use_scores_as_head(model, N)
    env.seed(0)
    observation, _ = model.policy.obs_to_tensor(env.reset())
    policy = model.policy
    scores = policy.extract_features(observation, policy.pi_features_extractor)[:, :N]
    logits = policy.get_distribution(observation).distribution.logits
    torch.testing.assert_close(logits, torch.log_softmax(scores, 1))
    assert not policy.action_net.weight.requires_grad
    model.learn(64)  # training leaves the head alone
    torch.testing.assert_close(policy.action_net.weight, torch.eye(N, N + 16))
    with pytest.raises(ConfigError, match="net_arch must be empty"):
        deep = {**kwargs, "net_arch": {"pi": [8], "vf": [8]}}
        use_scores_as_head(PPO("MultiInputPolicy", env, n_steps=8, batch_size=16, policy_kwargs=deep), N)
    with pytest.raises(ConfigError, match="needs the CandidateScorer"):
        use_scores_as_head(PPO("MultiInputPolicy", env, n_steps=8, batch_size=16, policy_kwargs={}), N)


# ------------------------------------------------- SB3 algorithms end to end


def _learns(model, timesteps: int) -> None:
    """Train briefly and check that the policy's parameters moved."""
    before = [p.detach().clone() for p in model.policy.parameters() if p.requires_grad]
    model.learn(timesteps)
    after = [p for p in model.policy.parameters() if p.requires_grad]
    assert any(not torch.equal(a, b) for a, b in zip(after, before, strict=True))
    assert model.num_timesteps >= timesteps


def _extractor() -> dict:
    """Fresh policy_kwargs each time (SB3 adds its own entries to the dict it is given)."""
    return {"features_extractor_class": CandidateScorer, "features_extractor_kwargs": {"hidden": 16}}


@pytest.mark.parametrize(
    ("algorithm", "kwargs"),
    [
        (PPO, {"n_steps": 16, "batch_size": 32}),
        (A2C, {"n_steps": 8}),
        (SAC, {"learning_starts": 16, "batch_size": 16, "buffer_size": 500}),
    ],
)
def test_box_algorithms_train_on_score_vectors(algorithm, kwargs):
    env = VecMonitor(ScoreVectorVecEnv(_base()))
    model = algorithm("MultiInputPolicy", env, policy_kwargs=_extractor(), seed=0, device="cpu", **kwargs)
    _learns(model, 128)


def test_maskable_ppo_trains_on_slot_filling_without_a_repeat():
    # The strict wrapper raises on a repeat, so finishing proves the masks were used.
    env = VecMonitor(SlotFillingVecEnv(_base()))
    model = MaskablePPO(
        "MultiInputPolicy", env, n_steps=24, batch_size=32, policy_kwargs=_extractor(), seed=0
    )
    _learns(model, 192)


def test_unmasked_ppo_on_strict_slot_filling_is_refused_not_repaired():
    env = SlotFillingVecEnv(_base())
    model = PPO("MultiInputPolicy", env, n_steps=24, batch_size=32, policy_kwargs=_extractor(), seed=0)
    with pytest.raises(SlateError, match="already in their slate"):
        model.learn(192)


@pytest.mark.parametrize(
    ("algorithm", "kwargs"),
    [
        (DQN, {"learning_starts": 16, "batch_size": 16, "buffer_size": 500}),
        (PPO, {"n_steps": 24, "batch_size": 32}),
    ],
)
def test_unmasked_algorithms_train_on_repairing_slot_filling(algorithm, kwargs):
    env = VecMonitor(RepairingSlotFillingVecEnv(_base()))
    model = algorithm("MultiInputPolicy", env, policy_kwargs=_extractor(), seed=0, device="cpu", **kwargs)
    _learns(model, 192)


# ------------------------------------------------------------ single-env twins

SINGLE_WRAPPERS = {ScoreVector: ScoreVectorVecEnv, SlotFilling: SlotFillingVecEnv}
SINGLE_WRAPPERS[RepairingSlotFilling] = RepairingSlotFillingVecEnv
# SB3's checker advises against observations that are neither images nor 1-D vectors
# (as in test_contract: the (N, F) and (H, F) rows are kept 2-D on purpose).
SB3_SHAPE_ADVICE = re.compile(
    r"Your observation (candidate_features|history_features) has an unconventional shape"
)
# Gymnasium's checker warns about any wrapper: it would rather check the unwrapped env,
# but the wrapper, whose spaces and steps differ from the env's, is what is checked here.
GYM_WRAPPER_ADVICE = re.compile(r"The environment \(<\w+<.*\) is different from the unwrapped version")


def _single(**options) -> ShopperEnv:
    return ShopperEnv(**{**PRESET, **options})


def _warnings(check: Callable[[], Any]) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check()
    return [str(w.message) for w in caught]


@pytest.mark.parametrize("wrapper", SINGLE_WRAPPERS)
def test_single_wrappers_pass_gymnasiums_env_checker(wrapper):
    # From gymnasium.make: the render check (no render modes) and the close check, which
    # rebuilds the wrapper from its spec, run too. Built directly there is no spec to
    # render from, so the render check is skipped.
    for env, skip_render_check in ((wrapper(gym.make(SYNTHETIC)), False), (wrapper(_single()), True)):
        caught = _warnings(partial(gym_check_env, env, skip_render_check=skip_render_check))
        assert len(caught) == 1 and GYM_WRAPPER_ADVICE.search(caught[0]), caught


@pytest.mark.parametrize("wrapper", SINGLE_WRAPPERS)
def test_single_wrappers_pass_sb3s_env_checker(wrapper):
    # Its advice against 2-D observations is the only warning, as for the bare env (test_contract).
    caught = _warnings(lambda: sb3_check_env(wrapper(_single()), skip_render_check=True))
    assert len(caught) == 2 and all(SB3_SHAPE_ADVICE.search(message) for message in caught), caught


@pytest.mark.parametrize(
    ("wrapper", "kwargs"),
    [(ScoreVector, {"bound": 2.0}), (SlotFilling, {}), (RepairingSlotFilling, {"repeat_penalty": 0.5})],
)
def test_single_wrappers_have_the_vec_spaces_and_a_spec_that_rebuilds_them(wrapper, kwargs):
    env = wrapper(gym.make(SYNTHETIC), **kwargs)
    vec = SINGLE_WRAPPERS[wrapper](_base(1), **kwargs)
    assert env.observation_space == vec.observation_space and env.action_space == vec.action_space
    assert not {"candidate_ids", "history_ids"} & set(env.observation_space.spaces)
    rebuilt = env.spec.make()
    assert type(rebuilt) is wrapper and rebuilt.spec.additional_wrappers[-1].kwargs == kwargs
    assert rebuilt.observation_space == env.observation_space and rebuilt.action_space == env.action_space
    if wrapper is RepairingSlotFilling:  # (the bound is in the action space)
        assert rebuilt.repeat_penalty == 0.5


def _strip_sub_step_time_limits(infos: list[dict]) -> list[dict]:
    """DummyVecEnv adds ``TimeLimit.truncated`` to every info, the Vec wrappers only to
    those of a step that showed a slate: drop it (False) from the other sub-steps."""
    stripped = []
    for info in infos:
        if "slate" not in info:
            assert info.pop("TimeLimit.truncated", False) is False
        stripped.append(info)
    return stripped


def _lockstep(vec: VecEnv, dummy: VecEnv, steps: int, seed: int) -> int:
    """Step the Vec wrapper and the DummyVecEnv of single wrappers with the same actions,
    asserting the same results; the number of sessions that ended."""
    vec.seed(seed), dummy.seed(seed)
    assert_same(vec.reset(), dummy.reset(), "reset")
    assert_same(vec.reset_infos, dummy.reset_infos, "reset infos")
    rng = np.random.default_rng(seed)
    ends = 0
    for step in range(steps):
        if isinstance(vec.action_space, gym.spaces.Box):
            # Scores on a coarse grid, so that ties (broken by index) are common.
            actions = rng.integers(-2, 3, (vec.num_envs, N)).astype(np.float32) / 2
        elif isinstance(vec, RepairingSlotFillingVecEnv):
            actions = rng.integers(0, N, vec.num_envs)  # repeats too: both repair them
        else:
            np.testing.assert_array_equal(get_action_masks(dummy), vec.action_masks())
            actions = _valid_actions(vec, rng)
        observation, rewards, dones, infos = vec.step(actions)
        dummy_observation, dummy_rewards, dummy_dones, dummy_infos = dummy.step(actions)
        assert_same(
            (observation, rewards, dones, infos),
            (dummy_observation, dummy_rewards, dummy_dones, _strip_sub_step_time_limits(dummy_infos)),
            f"step {step}",
        )
        ends += int(dones.sum())
    return ends


@pytest.mark.parametrize("wrapper", SINGLE_WRAPPERS)
def test_a_dummy_vec_env_of_single_wrappers_steps_as_the_vec_wrapper(wrapper):
    options = {"max_steps": 3, "patience": 6.0}
    kwargs = {"repeat_penalty": 0.5} if wrapper is RepairingSlotFilling else {}
    vec_wrapper = SINGLE_WRAPPERS[wrapper]
    # Over the batched adapter (one shopper: a batch of B draws from one generator, B
    # single envs from B) and over a DummyVecEnv of the same B = 3 shoppers.
    pairs = [
        (vec_wrapper(_base(1, **options), **kwargs), [lambda: wrapper(_single(**options), **kwargs)]),
        (
            vec_wrapper(DummyVecEnv([lambda: _single(**options)] * 3), **kwargs),
            [lambda: wrapper(_single(**options), **kwargs)] * 3,
        ),
    ]
    for vec, single_envs in pairs:
        assert _lockstep(vec, DummyVecEnv(single_envs), 30 * K, seed=4) >= vec.num_envs


def test_single_score_vector_shows_the_top_k_with_ties_by_index():
    env = ScoreVector(_single())
    assert env.action_space == gym.spaces.Box(-1.0, 1.0, (N,), dtype=np.float32)
    observation, _ = env.reset(seed=0)
    assert set(observation) == FEATURE_KEYS
    scores = np.zeros(N, dtype=np.float32)
    scores[[7, 2]] = 0.5
    observation, reward, *_, info = env.step(scores)
    assert info["slate"].tolist() == [2, 7, 0] and info["slate"].dtype == np.int64
    assert set(observation) == FEATURE_KEYS and isinstance(reward, float)
    with pytest.raises(SlateError, match="not finite"):
        env.step(np.full(N, np.nan, dtype=np.float32))
    with pytest.raises(ConfigError, match="bound"):
        ScoreVector(_single(), bound=-1.0)
    with pytest.raises(ConfigError, match="SlateSpace"):
        ScoreVector(gym.make("CartPole-v1"))


def test_single_slot_filling_masks_samples_and_refuses_repeats():
    env = SlotFilling(_single(max_steps=2))
    observation, _ = env.reset(seed=1)
    for _ in range(4):  # slates
        for slot in range(K):
            assert observation["slot"].tolist() == np.eye(K)[slot].tolist()
            masks = env.action_masks()
            assert masks.shape == (N,) and masks.sum() == N - slot
            np.testing.assert_array_equal(masks, observation["chosen"] == 0)
            # The space's samples are free candidates (what the env checkers step with).
            assert all(masks[env.action_space.sample()] for _ in range(50))
            observation, reward, terminated, truncated, info = env.step(env.action_space.sample())
            if slot < K - 1:
                assert (reward, terminated, truncated, info) == (0.0, False, False, {})
        assert len(set(info["slate"].tolist())) == K and {"clicks", "purchases"} <= set(info)
        assert not observation["chosen"].any() and observation["slot"][0] == 1
        if terminated or truncated:
            observation, _ = env.reset()
    env.reset()
    env.step(4)
    with pytest.raises(SlateError, match=r"already in their slate.*RepairingSlotFilling for algorithms"):
        env.step(np.int64(4))
    with pytest.raises(SlateError, match="not candidate indices"):
        env.step(N)


def test_single_repairing_slot_filling_repairs_reports_and_charges():
    env = RepairingSlotFilling(_single(), repeat_penalty=0.5)
    assert type(env.action_space) is gym.spaces.Discrete  # plain samples, repaired as the Vec ones
    env.reset(seed=0)
    _, reward, _, _, info = env.step(9)
    assert (reward, info) == (0.0, {"repaired": False})
    _, reward, _, _, info = env.step(9)
    assert (reward, info) == (-0.5, {"repaired": True})
    _, reward, _, _, info = env.step(0)  # 9, then 0 (wrapped): 0 is taken, so 1
    assert info["slate"].tolist() == [9, 0, 1] and info["repaired"] and isinstance(reward, float)
    with pytest.raises(ConfigError, match="repeat_penalty"):
        RepairingSlotFilling(_single(), repeat_penalty=-1.0)


def test_single_fill_builds_slates_as_the_vec_wrapper():
    features = {key: value for key, value in _base().reset().items() if key in FEATURE_KEYS}

    def last_free(observation, masks):
        return np.array([np.flatnonzero(row)[-1] for row in masks])

    for single, vec in ((SlotFilling, SlotFillingVecEnv), (RepairingSlotFilling, RepairingSlotFillingVecEnv)):
        expected = vec(_base()).fill(features, last_free)
        np.testing.assert_array_equal(single(_single()).fill(features, last_free), expected)
    assert expected.tolist() == [[9, 8, 7]] * B


def test_maskable_ppo_trains_on_a_dummy_vec_env_of_single_slot_filling():
    # The strict wrapper raises on a repeat, so finishing proves MaskablePPO read the masks.
    env = VecMonitor(DummyVecEnv([lambda: SlotFilling(_single())] * 2))
    assert is_masking_supported(env)
    kwargs = {**_extractor(), "net_arch": {"pi": [], "vf": [16]}}
    model = MaskablePPO("MultiInputPolicy", env, n_steps=48, batch_size=32, policy_kwargs=kwargs, seed=0)
    use_scores_as_head(model, N)
    _learns(model, 288)


def test_sb3_algorithms_train_on_dummy_vec_envs_of_the_other_single_wrappers():
    env = VecMonitor(DummyVecEnv([lambda: ScoreVector(_single())] * 2))
    _learns(PPO("MultiInputPolicy", env, n_steps=16, batch_size=32, policy_kwargs=_extractor(), seed=0), 64)
    env = VecMonitor(DummyVecEnv([lambda: RepairingSlotFilling(_single())] * 2))
    dqn = {"learning_starts": 16, "batch_size": 16, "buffer_size": 500}
    _learns(DQN("MultiInputPolicy", env, policy_kwargs=_extractor(), seed=0, device="cpu", **dqn), 96)
