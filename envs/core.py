"""What the single, vector and SB3 environments share: building the batched
simulator from keyword arguments, turning its tensors into NumPy, and laying out
vector infos the way Gymnasium does (and reading them back, whichever Gymnasium
vector env produced them)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium.vector import AutoresetMode

from shopgym.simulator.build import resolve_world
from shopgym.simulator.config import ShopperConfig
from shopgym.simulator.errors import ConfigError
from shopgym.simulator.shoppers import ShopperSimulator, StepOutcome
from shopgym.simulator.world import World

CONFIG_FIELDS = tuple(field.name for field in dataclasses.fields(ShopperConfig))


def make_simulator(
    num_shoppers: int,
    world: World | str | Path | None,
    shoppers: str,
    device: str | torch.device,
    config: ShopperConfig | None,
    overrides: dict[str, Any],
) -> ShopperSimulator:
    """Build the simulator; ``overrides`` are ``ShopperConfig`` fields given as keywords."""
    config = with_options(config or ShopperConfig(), overrides)
    return ShopperSimulator(resolve_world(world, device), config, num_shoppers, shoppers, device)


def with_options(config: Any, overrides: dict[str, Any]) -> Any:
    """The frozen dataclass ``config`` with ``overrides`` (environment options) applied;
    an unknown option is a ConfigError that lists the valid ones."""
    fields = [field.name for field in dataclasses.fields(config)]
    unknown = sorted(set(overrides) - set(fields))
    if unknown:
        raise ConfigError(f"unknown environment option(s) {unknown}; valid options: {fields}")
    return dataclasses.replace(config, **overrides)


def to_numpy(tensors: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """Batched tensors -> batched NumPy arrays (float32 and int64) of their own: on the CPU
    ``.numpy()`` would share memory with the simulator's state, which a caller writing
    into an observation would then change."""
    return {key: _own_array(value) for key, value in tensors.items()}


def _own_array(tensor: torch.Tensor) -> np.ndarray:
    array = tensor.cpu().numpy()
    return array.copy() if tensor.device.type == "cpu" else array  # .cpu() copied from a GPU


def row(batch: dict[str, np.ndarray], index: int) -> dict[str, np.ndarray]:
    """One shopper's entries of a batched dict."""
    return {key: value[index] for key, value in batch.items()}


def step_info(simulator: ShopperSimulator, outcome: StepOutcome | None, oracle_info: bool) -> dict:
    """Batched info: ``clicks`` and ``purchases`` (B, k) of the slate just shown, and
    with ``oracle_info`` the true ``utilities`` (B, N) of the next candidates."""
    info: dict[str, np.ndarray] = {}
    if outcome is not None:
        info["clicks"] = outcome.clicks.cpu().numpy()
        info["purchases"] = outcome.purchases.cpu().numpy()
    if oracle_info:
        info["utilities"] = simulator.utilities(simulator.candidates).cpu().numpy()
    return info


def numpy_step(step: Any, info_keys: tuple[str, ...], reset_keys: set[str]) -> tuple:
    """A :class:`shopgym.envs.torch_env.TorchStep` as Gymnasium's vector ``step`` returns
    it: NumPy ``(observation, reward, terminated, truncated, info)``, the info (``clicks``,
    ``purchases`` and the ``info_keys`` of ``step.info``) laid out by :func:`vector_info`,
    and for ended sessions their final observation in ``info["final_obs"]`` (an object
    array, ``None`` elsewhere, mask ``info["_final_obs"]``)."""
    done = step.done.cpu().numpy()
    arrays = {"clicks": step.clicks, "purchases": step.purchases} | {key: step.info[key] for key in info_keys}
    info = vector_info(to_numpy(arrays), done, reset_keys)
    if done.any():
        final = to_numpy(step.final_observation)
        final_obs = np.full(len(done), None, dtype=object)
        for index in np.flatnonzero(done):
            final_obs[index] = row(final, int(index))
        info["final_obs"], info["_final_obs"] = final_obs, done.copy()
    reward, terminated, truncated = (t.cpu().numpy() for t in (step.reward, step.terminated, step.truncated))
    return to_numpy(step.observation), reward, terminated, truncated, info


def vector_info(step: dict[str, np.ndarray], done: np.ndarray, reset_keys: set[str]) -> dict[str, Any]:
    """A step's batched info in the layout of Gymnasium's same-step autoreset.

    Gymnasium's ``SyncVectorEnv`` puts, for a sub-environment whose episode ended,
    its last step's info under ``final_info`` and the info of the reset that follows
    at the top level; every key ``x`` comes with a (B,) bool mask ``_x`` of the
    sub-environments that hold it, and a key no sub-environment holds is absent.

    Args:
        step: the (B, ...) info of the step, for every sub-environment (as
            :func:`step_info` gives it).
        done: (B,) bool, the episodes that ended in this step.
        reset_keys: the keys of ``step`` that a reset also reports (and whose values
            for ended rows already describe the next episode, as ``utilities`` do).

    Returns:
        The top-level ``step`` keys with their masks (rows of ended episodes zeroed
        and unmasked, except for ``reset_keys``) and, when an episode ended,
        ``final_info`` (each key zeroed outside ``done``, with its ``_key`` mask) and
        ``_final_info``.
    """
    # One mask array per key, as Gymnasium gives: a caller that edits one in place
    # must not change the others (or the simulator's tensor the flags came from).
    done = np.array(done, dtype=np.bool_)
    live = ~done
    info: dict[str, Any] = {}
    for key, value in step.items():
        if key in reset_keys:
            info[key], info[f"_{key}"] = value, np.ones_like(done)
        elif live.any():
            info[key], info[f"_{key}"] = _where_rows(live, value), live.copy()
    if done.any():
        final: dict[str, np.ndarray] = {}
        for key, value in step.items():
            final[key], final[f"_{key}"] = _where_rows(done, value), done.copy()
        info["final_info"], info["_final_info"] = final, done.copy()
    return info


def vector_reset_info(step: dict[str, np.ndarray]) -> dict[str, Any]:
    """The batched info of a reset in Gymnasium's vector layout: each key with an
    all-True ``_key`` mask."""
    info: dict[str, Any] = {}
    for key, value in step.items():
        info[key], info[f"_{key}"] = value, np.ones(len(value), dtype=np.bool_)
    return info


def _where_rows(rows: np.ndarray, value: np.ndarray) -> np.ndarray:
    """``value`` (B, ...) with the rows outside the (B,) mask ``rows`` zeroed."""
    return np.where(rows.reshape(-1, *[1] * (value.ndim - 1)), value, np.zeros((), value.dtype))


def slate_info(info: dict[str, Any], key: str) -> np.ndarray:
    """``info[key]`` (B, ...) of the slate every sub-environment was just shown, from a
    Gymnasium vector env's step info with same-step autoreset: the top level for
    running episodes, ``info["final_info"]`` for those that ended in this step.

    Works on the layout of Gymnasium's own ``SyncVectorEnv`` and ``AsyncVectorEnv``
    (where the top level of an ended sub-environment holds its reset's info) as on
    a layout that repeats the last step at the top level.

    Raises:
        KeyError: some sub-environment reported no ``key`` for this step.
    """
    final = info.get("final_info", {})
    if key not in final:
        if key not in info:
            raise KeyError(f"the step's info has no {key!r} (keys: {sorted(info)})")
        return _covered(info[key], info.get(f"_{key}"), key)
    ended = final.get(f"_{key}", info.get("_final_info"))
    if ended is None:
        raise KeyError(f"the step's final_info has {key!r} but neither '_{key}' nor '_final_info' masks")
    if key not in info:
        return _covered(final[key], ended, key)
    present = info.get(f"_{key}", np.ones_like(ended))
    value = np.where(ended.reshape(-1, *[1] * (final[key].ndim - 1)), final[key], info[key])
    return _covered(value, present | ended, key)


def _covered(value: np.ndarray, mask: np.ndarray | None, key: str) -> np.ndarray:
    if mask is not None and not mask.all():
        missing = np.flatnonzero(~mask).tolist()
        raise KeyError(f"sub-environments {missing} reported no {key!r} for this step")
    return value


def require_same_step_autoreset(env: Any, user: str) -> None:
    """Raise :class:`ConfigError` unless the vector env ``env`` resets ended
    sub-environments in the same step (``metadata["autoreset_mode"]`` is
    ``AutoresetMode.SAME_STEP``), as ``user`` (what needs it, for the message) assumes."""
    mode = getattr(env, "metadata", {}).get("autoreset_mode")
    if mode not in (AutoresetMode.SAME_STEP, AutoresetMode.SAME_STEP.value):
        raise ConfigError(
            f"{user} needs a vector env with same-step autoreset (AutoresetMode.SAME_STEP), "
            f"but {env} has metadata['autoreset_mode'] = {mode!r}; build Gymnasium's vector envs with "
            "autoreset_mode=gymnasium.vector.AutoresetMode.SAME_STEP, e.g. gymnasium.make_vec(id, n, "
            "vectorization_mode='sync', vector_kwargs={'autoreset_mode': AutoresetMode.SAME_STEP})"
        )
