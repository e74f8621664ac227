"""The standard adapters: Gymnasium's vector-env conventions (``final_info``, same-step
autoreset) as Gymnasium's own ``SyncVectorEnv``/``AsyncVectorEnv`` produce them, our
code reading them alike, SB3's ``VecEnv`` contract, and the single env's defaults."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest
import torch
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import VecMonitor

import shopgym.envs
from shopgym.agents import EpsilonGreedyAgent, RandomAgent
from shopgym.agents.logged_data import collect_log
from shopgym.envs import ShopperSB3VecEnv
from shopgym.envs.core import slate_info, to_numpy
from shopgym.envs.sb3 import ShopperSlot
from shopgym.experiments.evaluation import evaluate
from shopgym.simulator.errors import ConfigError, SlateError
from tests.envs._helpers import OBS_KEYS, SYNTHETIC, assert_same

PRESET = shopgym.envs.PRESETS[SYNTHETIC]
ID_KEYS = {"candidate_ids", "history_ids"}


def _single(**options) -> gym.Env:
    return gym.make(SYNTHETIC, device="cpu", **options)


def _sync(num_envs: int, mode: AutoresetMode = AutoresetMode.SAME_STEP, **options) -> SyncVectorEnv:
    return SyncVectorEnv([lambda: _single(**options)] * num_envs, autoreset_mode=mode)


def _ours(num_envs: int, **options):
    return gym.make_vec(SYNTHETIC, num_envs=num_envs, device="cpu", **options)


class RecordSteps(gym.Wrapper):
    """Keeps, per step of the single env, (reward, clicks, purchases, done) as the
    single env itself reports them."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.recorded: list[tuple[float, int, int, bool]] = []

    def step(self, action):
        result = self.env.step(action)
        _, reward, terminated, truncated, info = result
        self.recorded.append(
            (float(reward), int(info["clicks"].sum()), int(info["purchases"].sum()), terminated or truncated)
        )
        return result


def _episodes(recorded: list[tuple[float, int, int, bool]]) -> list[dict]:
    """The completed episodes of one single env's record, in order."""
    episodes, current = [], {"return": 0.0, "clicks": 0, "purchases": 0, "length": 0}
    for reward, clicks, purchases, done in recorded:
        current["return"] += reward
        current["clicks"] += clicks
        current["purchases"] += purchases
        current["length"] += 1
        if done:
            episodes.append(current)
            current = {"return": 0.0, "clicks": 0, "purchases": 0, "length": 0}
    return episodes


def _assert_records_match_the_single_envs(records: pd.DataFrame, recorded: list[list]) -> None:
    for index, steps in enumerate(recorded):
        mine = records[records["env_index"] == index].sort_values("round")
        expected = pd.DataFrame(_episodes(steps)[: len(mine)])
        assert len(expected) == len(mine)
        for column in ("return", "clicks", "purchases", "length"):
            np.testing.assert_allclose(mine[column].to_numpy(), expected[column].to_numpy(), err_msg=column)


# ------------------------------------------------------------------- Gymnasium


@pytest.mark.parametrize("oracle", [False, True])
def test_vector_env_step_results_are_those_of_gymnasiums_sync_vector_env(oracle):
    """One shopper: the same seed gives the same numbers, and the info the same keys,
    masks and dtypes, as Gymnasium's own SyncVectorEnv over the single env."""
    ours, theirs = _ours(1, oracle_info=oracle), _sync(1, oracle_info=oracle)
    assert_same(ours.reset(seed=3), theirs.reset(seed=3))
    ours.action_space.seed(0)
    ends = 0
    for step in range(150):
        action = ours.action_space.sample()
        mine, gymnasiums = ours.step(action), theirs.step(action)
        where = f"step {step}"
        assert_same([mine[0], *mine[2:]], [gymnasiums[0], *gymnasiums[2:]], where)
        np.testing.assert_array_equal(mine[1], gymnasiums[1], err_msg=where)  # float32 vs float64
        ends += int(mine[2][0] | mine[3][0])
    assert ends >= 10


def test_vector_env_puts_the_last_step_of_ended_sessions_under_final_info():
    num_envs = 6
    env = _ours(num_envs, max_steps=4, patience=6.0)
    env.action_space.seed(0)
    env.reset(seed=0)
    partial_ends = 0
    for step in range(80):
        _, reward, terminated, truncated, info = env.step(env.action_space.sample())
        done = terminated | truncated
        where = f"step {step}"
        if not done.any():
            assert "final_info" not in info and "_final_info" not in info, where
            assert info["_clicks"].all(), where
            continue
        final = info["final_info"]
        assert info["_final_info"].tolist() == done.tolist(), where
        assert set(final) == {"clicks", "purchases", "_clicks", "_purchases"}, where
        assert final["_clicks"].tolist() == done.tolist(), where
        assert final["clicks"].shape == (num_envs, 3) and final["clicks"].dtype == np.bool_, where
        assert not final["clicks"][~done].any() and not final["purchases"][~done].any(), where
        if done.all():
            assert "clicks" not in info and "_clicks" not in info, where
        else:
            partial_ends += 1
            # The top level holds what the reset reports (no clicks) for ended sessions.
            assert info["_clicks"].tolist() == (~done).tolist(), where
            assert not info["clicks"][done].any() and not info["purchases"][done].any(), where
        # Default rewards: one per click plus one per purchase, ended sessions included.
        clicks, purchases = slate_info(info, "clicks"), slate_info(info, "purchases")
        np.testing.assert_array_equal(reward, clicks.sum(1) + purchases.sum(1), err_msg=where)
    assert partial_ends >= 5


def test_slate_info_reads_both_places_and_refuses_missing_rows():
    done = np.array([True, False])
    step = {"clicks": np.array([[True, False], [False, True]])}
    gymnasium_layout = {
        "clicks": np.array([[False, False], [False, True]]),
        "_clicks": ~done,
        "final_info": {"clicks": np.array([[True, False], [False, False]]), "_clicks": done},
        "_final_info": done,
    }
    np.testing.assert_array_equal(slate_info(gymnasium_layout, "clicks"), step["clicks"])
    np.testing.assert_array_equal(slate_info(step, "clicks"), step["clicks"])
    with pytest.raises(KeyError, match=r"sub-environments \[0\]"):
        slate_info({"clicks": step["clicks"], "_clicks": ~done}, "clicks")
    with pytest.raises(KeyError, match="purchases"):
        slate_info(gymnasium_layout, "purchases")


def test_evaluate_under_gymnasiums_sync_vector_env_records_each_episodes_clicks():
    num_envs = 3
    env = SyncVectorEnv([lambda: RecordSteps(_single())] * num_envs, autoreset_mode=AutoresetMode.SAME_STEP)
    agent = RandomAgent(env.single_observation_space, env.single_action_space, seed=1)
    records = evaluate(agent, env, 24, seed=5)
    assert len(records) == 24 and records["clicks"].sum() > 0
    _assert_records_match_the_single_envs(records, env.get_attr("recorded"))


@pytest.mark.slow  # two spawned workers, each importing torch and building a World (~30 s)
def test_evaluate_under_gymnasiums_async_vector_env_records_each_episodes_clicks():
    num_envs = 2
    env = AsyncVectorEnv(
        [lambda: RecordSteps(_single())] * num_envs,
        autoreset_mode=AutoresetMode.SAME_STEP,
        context="spawn",  # forking a process that has run torch can deadlock its workers
    )
    try:
        agent = RandomAgent(env.single_observation_space, env.single_action_space, seed=1)
        records = evaluate(agent, env, 8, seed=5)
        assert records["clicks"].sum() > 0
        _assert_records_match_the_single_envs(records, env.get_attr("recorded"))
    finally:
        env.close()


def test_evaluate_gives_the_same_records_under_our_vector_env_and_gymnasiums():
    frames = []
    for env in (_ours(1), _sync(1)):
        agent = RandomAgent(env.single_observation_space, env.single_action_space, seed=2)
        frames.append(evaluate(agent, env, 12, seed=4))
    pd.testing.assert_frame_equal(frames[0], frames[1])
    assert frames[0]["clicks"].sum() > 0


def test_collect_log_and_the_bandit_learn_the_same_under_our_vector_env_and_gymnasiums():
    logs, bandits = [], []
    for env in (_ours(1), _sync(1)):
        policy = RandomAgent(env.single_observation_space, env.single_action_space, seed=3)
        logs.append(collect_log(env, policy, 300, seed=6))
        bandit = EpsilonGreedyAgent(env.single_observation_space, env.single_action_space, seed=3)
        evaluate(bandit, env, 10, seed=7)
        bandits.append(bandit.state_dict())
    for field in ("history_ids", "shown_ids", "clicks", "purchases"):
        assert torch.equal(getattr(logs[0], field), getattr(logs[1], field)), field
    assert torch.equal(logs[0].reward, logs[1].reward)
    assert torch.equal(logs[0].reward, (logs[0].clicks.sum(1) + logs[0].purchases.sum(1)).float())
    for key in ("reward_sum", "impressions"):
        assert torch.equal(bandits[0][key], bandits[1][key]), key
    assert bandits[0]["reward_sum"].sum() > 0


def test_next_step_autoreset_is_refused_with_the_mode_named():
    env = _sync(2, AutoresetMode.NEXT_STEP)
    agent = RandomAgent(env.single_observation_space, env.single_action_space)
    with pytest.raises(ConfigError, match=r"evaluate needs .*SAME_STEP.*NextStep"):
        evaluate(agent, env, 4, seed=0)
    with pytest.raises(ConfigError, match=r"collect_log needs .*NextStep"):
        collect_log(env, agent, 10, seed=0)
    with pytest.raises(ConfigError, match="Disabled"):
        evaluate(agent, _sync(2, AutoresetMode.DISABLED), 4, seed=0)


# ------------------------------------------------------------------------- SB3

B = 4


def _sb3(**options) -> ShopperSB3VecEnv:
    return ShopperSB3VecEnv(B, **{**PRESET, "device": "cpu", **options})


def _actions(env: ShopperSB3VecEnv, rng: np.random.Generator) -> np.ndarray:
    keys = rng.random((env.num_envs, env.action_space.num_candidates))
    return np.argsort(keys, axis=1)[:, : env.action_space.slate_size]


def test_sb3_env_method_calls_once_per_index_asked(monkeypatch):
    calls: list[tuple[int, int]] = []

    def ping(slot: ShopperSlot, value: int) -> tuple[int, int]:
        calls.append((slot.index, value))
        return slot.index, value

    monkeypatch.setattr(ShopperSlot, "ping", ping, raising=False)
    env = _sb3()
    assert env.env_method("ping", 7) == [(index, 7) for index in range(B)]
    assert calls == [(index, 7) for index in range(B)]
    calls.clear()
    assert env.env_method("ping", value=1, indices=[2, 0]) == [(2, 1), (0, 1)]
    assert env.env_method("ping", 5, indices=3) == [(3, 5)]
    assert calls == [(2, 1), (0, 1), (3, 5)]
    assert env.env_method("get_wrapper_attr", "index") == list(range(B))
    assert env.env_method("has_wrapper_attr", "simulator", indices=[1]) == [True]


@pytest.mark.parametrize("method", ["reset", "seed", "step_async", "step_wait", "close"])
def test_sb3_batch_methods_are_refused_per_sub_environment(method):
    env = _sb3()
    env.seed(0)
    before = env.reset()
    with pytest.raises(ConfigError, match=f"{method} acts on the one simulator of all {B} shoppers"):
        env.env_method(method, indices=[1])
    with pytest.raises(ConfigError, match="cannot be called per sub-environment"):
        env.env_method(method)
    # Nothing was reset, seeded or stepped.
    assert_same(env._keep(to_numpy(env.simulator.observe())), before)


def test_sb3_get_attr_and_set_attr():
    env = _sb3()
    assert env.get_attr("render_mode") == [None] * B
    assert env.get_attr("observation_space", indices=[0, 3]) == [env.observation_space] * 2
    assert env.get_attr("index") == list(range(B))
    assert env.get_attr("metadata", indices=2) == [env.metadata]
    assert env.has_attr("simulator") and not env.has_attr("bogus")
    with pytest.raises(AttributeError):
        env.get_attr("bogus")
    env.set_attr("note", "shared", indices=range(B))
    assert env.get_attr("note") == ["shared"] * B
    with pytest.raises(ConfigError, match=r"sub-environments \[1, 2\]"):
        env.set_attr("note", "one", indices=[2, 1])
    assert env.note == "shared"
    # What the adapter takes from its torch env when built cannot be changed after.
    with pytest.raises(ConfigError, match="oracle_info is fixed when the adapter is built"):
        env.set_attr("oracle_info", True)
    env.reset()
    env.step_async(_actions(env, np.random.default_rng(0)))
    env.step_wait()  # still steps


def test_numpy_observations_do_not_share_memory_with_the_simulator():
    vector = gym.make_vec(SYNTHETIC, num_envs=B, vectorization_mode="vector_entry_point")
    observation, _ = vector.reset(seed=0)
    simulator = vector.unwrapped.torch_env.simulator
    before = {key: value.clone() for key, value in simulator.observe().items()}
    for value in observation.values():
        value[...] = 0  # a caller's scratch use of the arrays it was handed
    single = gym.make(SYNTHETIC)
    single_observation, _ = single.reset(seed=0)
    single_before = single.unwrapped.simulator.observe()["candidate_ids"].clone()
    single_observation["candidate_ids"][...] = 0
    after = simulator.observe()
    assert all(torch.equal(before[key], after[key]) for key in before)
    assert torch.equal(single.unwrapped.simulator.observe()["candidate_ids"], single_before)


def test_as_torch_env_does_not_unwrap_through_a_wrapper():
    from stable_baselines3.common.vec_env import VecNormalize

    from shopgym.envs.torch_env import as_torch_env

    wrapped = VecNormalize(_sb3(observation="features"))
    assert wrapped.torch_env is wrapped.venv.torch_env  # SB3 forwards the attribute read
    with pytest.raises(ConfigError):
        as_torch_env(wrapped)


def test_sb3_seed_reset_infos_and_terminal_observation():
    env = _sb3(oracle_info=True, max_steps=3, patience=6.0)
    assert env.seed(10) == [10, 11, 12, 13]
    first = env.reset()
    again = _sb3(oracle_info=True, max_steps=3, patience=6.0)
    again.seed(10)
    assert_same(first, again.reset())
    assert_same(env.reset_infos, again.reset_infos)
    assert env._seeds == [None] * B  # a seed is used once
    simulator = env.simulator

    def utilities(candidate_ids: np.ndarray) -> np.ndarray:
        items = torch.as_tensor(candidate_ids).reshape(B, -1)
        return simulator.world.utilities(simulator.shopper, items).numpy()

    rng = np.random.default_rng(0)
    ends = 0
    previous = first
    for step in range(30):
        obs, _, dones, infos = env.step(_actions(env, rng))
        where = f"step {step}"
        assert all(isinstance(info["TimeLimit.truncated"], bool) for info in infos), where
        true = utilities(obs["candidate_ids"])
        for index in np.flatnonzero(dones):
            ends += 1
            terminal = infos[index]["terminal_observation"]
            assert set(terminal) == OBS_KEYS and env.observation_space.contains(terminal), where
            assert terminal["step"][0] == previous["step"][index][0] + 1, where
            assert obs["step"][index][0] == 0, where
            # The new session's reset info, as DummyVecEnv keeps it.
            np.testing.assert_allclose(env.reset_infos[index]["utilities"], true[index], err_msg=where)
        for index in np.flatnonzero(~dones):
            assert "terminal_observation" not in infos[index], where
            assert not infos[index]["TimeLimit.truncated"], where
        previous = obs
    assert ends >= B


def test_sb3_features_observation_drops_the_id_keys():
    full, features = _sb3(), _sb3(observation="features")
    assert set(features.observation_space.spaces) == OBS_KEYS - ID_KEYS
    assert all(isinstance(space, gym.spaces.Box) for space in features.observation_space.values())
    for key, space in features.observation_space.items():
        assert space == full.observation_space[key], key
    full.seed(2), features.seed(2)
    obs, full_obs = features.reset(), full.reset()
    assert_same(obs, {key: full_obs[key] for key in OBS_KEYS - ID_KEYS})
    rng = np.random.default_rng(1)
    ends = 0
    for _ in range(40):
        actions = _actions(features, rng)
        obs, rewards, dones, infos = features.step(actions)
        full_obs, full_rewards, *_ = full.step(actions)
        assert_same(obs, {key: full_obs[key] for key in OBS_KEYS - ID_KEYS})
        np.testing.assert_array_equal(rewards, full_rewards)
        for index in np.flatnonzero(dones):
            ends += 1
            terminal = infos[index]["terminal_observation"]
            assert set(terminal) == OBS_KEYS - ID_KEYS
            assert features.observation_space.contains(terminal)
    assert ends > 0
    with pytest.raises(ConfigError, match="observation must be one of"):
        _sb3(observation="ids")


def test_ppo_multi_input_policy_takes_the_features_observation():
    env = VecMonitor(_sb3(observation="features"))
    model = PPO("MultiInputPolicy", env, n_steps=16, batch_size=32, seed=0, device="cpu")
    # Features only: N * F + H * F + 1 inputs, no one-hot encoded catalogue IDs.
    space = env.observation_space
    inputs = sum(int(np.prod(entry.shape)) for entry in space.values())
    assert model.policy.features_extractor.features_dim == inputs
    env.seed(0)
    obs = env.reset()
    actions, _ = model.predict(obs, deterministic=False)
    assert actions.shape == (B, env.action_space.slate_size)
    assert ((actions >= 0) & (actions < env.action_space.num_candidates)).all()
    # PPO samples each slate position independently, so its slates may repeat items
    # (rejected by the simulator): making it act validly is not this adapter's job.


# ------------------------------------------------------------------ single env


def test_single_env_defaults_to_cpu_and_accepts_auto():
    assert gym.make(SYNTHETIC).unwrapped.simulator.device == torch.device("cpu")
    auto = gym.make(SYNTHETIC, device="auto").unwrapped.simulator.device
    assert auto.type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_single_env_still_rejects_invalid_slates_with_the_simulators_messages():
    env = _single()
    env.reset(seed=0)
    with pytest.raises(SlateError, match=r"shopper 0 repeats an item: \[1, 4, 1\]"):
        env.step(np.array([1, 4, 1]))
    with pytest.raises(SlateError, match=r"shopper 0 is out of range \[0, 10\)"):
        env.step(np.array([1, 4, 10]))
    with pytest.raises(SlateError, match=r"shopper 0 is out of range"):
        env.step(np.array([-1, 4, 2]))
    with pytest.raises(SlateError, match=r"dtype torch\.float"):
        env.step(np.array([1.0, 4.0, 2.0]))
    with pytest.raises(SlateError, match=r"shape \(1, 3\), got \(1, 2\)"):
        env.step(np.array([1, 4]))
    observation, *_ = env.step([1, 4, 2])  # a list is a slate too
    assert observation["step"].tolist() == [1.0]
    observation, *_ = env.step(np.array([3, 0, 2], dtype=np.int32))
    assert observation["step"].tolist() in ([2.0], [1.0])  # [1.0]: the first session had ended


def test_interest_evolution_vector_env_lays_out_infos_as_gymnasiums_sync_vector_env():
    """One user: the same keys and masks at the top level and under final_info, and
    the same values, as SyncVectorEnv over the single interest-evolution env."""
    env_id = "shopgym/InterestEvolution-v0"
    ours = gym.make_vec(env_id, num_envs=1, device="cpu", time_budget=3.0)
    theirs = SyncVectorEnv(
        [lambda: gym.make(env_id, device="cpu", time_budget=3.0)], autoreset_mode=AutoresetMode.SAME_STEP
    )
    ours.reset(seed=5), theirs.reset(seed=5)
    ours.action_space.seed(0)
    ends = 0
    for step in range(60):
        action = ours.action_space.sample()
        mine, gymnasiums = ours.step(action)[4], theirs.step(action)[4]
        mine = {key: value for key, value in mine.items() if key not in ("final_obs", "_final_obs")}
        gymnasiums = {
            key: value for key, value in gymnasiums.items() if key not in ("final_obs", "_final_obs")
        }
        assert set(mine) == set(gymnasiums), f"step {step}"
        for key in gymnasiums:
            if key == "final_info":
                assert set(mine[key]) == set(gymnasiums[key])
                for inner in gymnasiums[key]:
                    np.testing.assert_allclose(mine[key][inner], gymnasiums[key][inner], rtol=1e-6)
            else:
                np.testing.assert_allclose(
                    mine[key], gymnasiums[key], rtol=1e-6, err_msg=f"step {step} {key}"
                )
        ends += int("final_info" in gymnasiums)
    assert ends >= 5
