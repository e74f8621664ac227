"""The torch-native batched environment: tensors in, tensors out, on the simulator's device.

It is the loop that shopgym's own runner, evaluation and agents use: a step takes a
(B, k) tensor of slates and returns a :class:`TorchStep` of tensors on the same
device, without copying to the host. The Gymnasium and SB3 adapters convert its
tensors to NumPy at their edge; :class:`GymnasiumTorchAdapter` goes the other way,
so that the same evaluation code runs on Gymnasium's own ``SyncVectorEnv``.

Autoreset is same-step, as in the adapters: a row whose session ends in a step
already shows the next session in ``TorchStep.observation``; the observation the
session ended in is in ``TorchStep.final_observation`` (every row; meaningful where
``TorchStep.done``).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector import AutoresetMode

from shopgym.envs.core import make_simulator, require_same_step_autoreset, slate_info
from shopgym.envs.spaces import SlateSpace, observation_space
from shopgym.simulator.config import ShopperConfig
from shopgym.simulator.errors import ConfigError
from shopgym.simulator.outcome import StepOutcome
from shopgym.simulator.world import World

Observation = dict[str, torch.Tensor]
# Info entries that hold latent truth: only declared oracles may read them.
LATENT_INFO = ("utilities", "time_budget")


@dataclass(frozen=True)
class TorchStep:
    """What one step of B sessions returns, as tensors on the environment's device.

    Attributes:
        observation: (B, ...) per key, the next observation; a row whose session ended
            shows the next session (same-step autoreset).
        reward: (B,) float32.
        terminated: (B,) bool, the shopper left.
        truncated: (B,) bool, a time limit ended the session.
        clicks: (B, k) bool, the slate positions clicked.
        purchases: (B, k) bool, the slate positions bought.
        info: further (B, ...) tensors of the step (``revenue``; ``watch_time`` and
            ``time_budget`` in InterestEvolution; with ``oracle_info`` the true
            ``utilities`` (B, N) of the next candidates).
    """

    observation: Observation
    reward: torch.Tensor
    terminated: torch.Tensor
    truncated: torch.Tensor
    clicks: torch.Tensor
    purchases: torch.Tensor
    info: dict[str, torch.Tensor]
    observe_final: Callable[[], Observation] = field(repr=False, compare=False)

    def observable(self) -> TorchStep:
        """This step without the info entries that hold latent truth (:data:`LATENT_INFO`):
        what a learner that is not an oracle may see."""
        info = {key: value for key, value in self.info.items() if key not in LATENT_INFO}
        return replace(self, info=info)

    @property
    def done(self) -> torch.Tensor:
        """(B,) bool, the sessions that ended in this step (the mask of ``final_observation``)."""
        return self.terminated | self.truncated

    @cached_property
    def final_observation(self) -> Observation:
        """(B, ...) per key: the observation each row's session ended in, where ``done``;
        the same as ``observation`` elsewhere. Computed on first use (most steps end no
        session, and most callers never read it)."""
        return self.observe_final()


class BatchedSimulator(Protocol):
    """What :class:`TorchVectorEnv` needs of a simulator (both of shopgym's have it)."""

    num_shoppers: int
    device: torch.device
    config: Any  # its num_candidates and slate_size

    def reset(self, seed: int | None = None) -> None: ...

    def step(self, slates: torch.Tensor, check: bool = True) -> StepOutcome: ...

    def observe(self, state: dict[str, torch.Tensor] | None = None) -> Observation: ...

    def snapshot(self) -> dict[str, Any]: ...

    def restore(self, snapshot: dict[str, Any]) -> None: ...


class TorchVectorEnv:
    """B sessions of a batched simulator, stepped with tensors on its device.

    Args:
        simulator: the batched simulator (it owns the device and the random streams).
        single_observation_space: one session's observation space (what the adapters
            and agents are built from; the tensors' shapes are (B, ...) of it).
        single_action_space: one session's :class:`SlateSpace`.
        check_slates: validate every slate (a :class:`SlateError` names the bad row).
            The check reads a flag back from the device, one host synchronisation per
            step; switch it off for speed when the slates are valid by construction
            (an invalid slate is then undefined behaviour, not an error).
        info: a function of the simulator giving the (B, ...) tensors that a reset and
            every step add to their info (the oracle's true utilities), or ``None``.
        compile: step the simulator through ``torch.compile``. The compiled core step is
            about 2x the eager one for the shopper presets at B = 4,096 on 2 CPU cores
            (docs/benchmarks.md; the env's own gain is measured only on a loaded machine
            so far), after a compile of 5-60 s, made here by a trial step whose state is
            then restored. Where compiling fails (no C++ compiler, say),
            a warning says so and the env steps eagerly. Compiled kernels may round
            differently from eager ones, so a compiled env's numbers can differ from an
            eager env's with the same seed (each is reproducible).

    The observation tensors may be the simulator's own state (no copies on the device):
    read them, do not write into them; the NumPy adapters hand out copies.

    Attributes:
        num_envs: B.
        compiled: whether the simulator steps through ``torch.compile``.
        device: where every tensor in and out lives.
        action_space: the batch's :class:`SlateSpace` (B, k).
        metadata: ``autoreset_mode`` is ``AutoresetMode.SAME_STEP``.
    """

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(
        self,
        simulator: BatchedSimulator,
        single_observation_space: spaces.Dict,
        single_action_space: SlateSpace,
        check_slates: bool = True,
        info: Callable[[Any], dict[str, torch.Tensor]] | None = None,
        compile: bool = False,
    ):
        self.simulator = simulator
        self.num_envs = simulator.num_shoppers
        self.device = simulator.device
        self.single_observation_space = single_observation_space
        self.single_action_space = single_action_space
        self.action_space = SlateSpace(
            single_action_space.num_candidates, single_action_space.slate_size, self.num_envs
        )
        self.slate_size = single_action_space.slate_size
        self.check_slates = check_slates
        self._info = info
        compiled = _compiled_step(simulator) if compile else None
        self.compiled = compiled is not None
        self._simulator_step = compiled or simulator.step

    def reset(self, seed: int | None = None) -> tuple[Observation, dict[str, torch.Tensor]]:
        """Start new sessions in every row (reseeding every stream when ``seed`` is given)
        -> (B, ...) observations and the reset's info."""
        self.simulator.reset(seed)
        return self.simulator.observe(), self._extra_info()

    def step(self, slates: torch.Tensor) -> TorchStep:
        """Show (B, k) int64 slates of candidate indices (on any device; moved to the
        simulator's) and advance every session by one step."""
        simulator = self.simulator
        outcome = self._simulator_step(slates, check=self.check_slates)
        final_state = outcome.final_state
        return TorchStep(
            observation=simulator.observe(),
            reward=outcome.reward,
            terminated=outcome.terminated,
            truncated=outcome.truncated,
            clicks=outcome.clicks,
            purchases=outcome.purchases,
            info={**outcome.info, **self._extra_info()},
            observe_final=lambda: simulator.observe(final_state),
        )

    def _extra_info(self) -> dict[str, torch.Tensor]:
        return {} if self._info is None else self._info(self.simulator)

    def close(self) -> None:
        """Nothing to release (kept for the vector-env protocol)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(num_envs={self.num_envs}, device={self.device})"


def _compiled_step(simulator: BatchedSimulator) -> Callable[..., StepOutcome] | None:
    """``torch.compile(simulator.step)``, compiled now by a trial step on valid slates from
    a snapshot of the state; ``None``, with a warning, if compiling fails."""
    k = simulator.config.slate_size
    slates = torch.arange(k, device=simulator.device).expand(simulator.num_shoppers, k)
    snapshot = simulator.snapshot()
    try:
        with warnings.catch_warnings():
            # torch's own deprecation notices while compiling are not failures, even
            # where warnings are errors (a test suite).
            warnings.simplefilter("ignore", DeprecationWarning)
            step = torch.compile(simulator.step)
            step(slates, check=False)
    except Exception as exc:  # any failure to compile: keep the eager step
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        warnings.warn(f"torch.compile failed ({message}); the env steps eagerly", stacklevel=3)
        return None
    finally:
        simulator.restore(snapshot)
    return step


def oracle_utilities(simulator: Any) -> dict[str, torch.Tensor]:
    """The true utilities (B, N) of the current candidates (oracle upper bounds only)."""
    return {"utilities": simulator.utilities(simulator.candidates)}


class ShopperTorchEnv(TorchVectorEnv):
    """The shopper presets as a :class:`TorchVectorEnv`. Arguments and dynamics as
    :class:`shopgym.envs.ShopperEnv` (``gymnasium.make_vec`` gives its Gymnasium twin,
    :class:`shopgym.envs.ShopperVectorEnv`), and ``check_slates`` and ``compile`` as
    :class:`TorchVectorEnv`. ``device`` is ``"auto"``: CUDA when available."""

    def __init__(
        self,
        num_envs: int = 1,
        world: World | str | Path | None = None,
        shoppers: str = "train",
        device: str | torch.device = "auto",
        oracle_info: bool = False,
        config: ShopperConfig | None = None,
        check_slates: bool = True,
        compile: bool = False,
        **options: Any,
    ):
        simulator = make_simulator(num_envs, world, shoppers, device, config, options)
        super().__init__(
            simulator,
            observation_space(simulator),
            SlateSpace(simulator.config.num_candidates, simulator.config.slate_size),
            check_slates=check_slates,
            info=oracle_utilities if oracle_info else None,
            compile=compile,
        )
        self.oracle_info = oracle_info


class GymnasiumTorchAdapter:
    """A Gymnasium vector env with NumPy input and output (same-step autoreset: ours, or
    Gymnasium's ``SyncVectorEnv`` / ``AsyncVectorEnv`` of single envs) behind the
    interface of :class:`TorchVectorEnv`, so that shopgym's evaluation and agents run on
    it. It copies to and from the host every step: for compatibility, not speed.

    The slate's ``clicks`` and ``purchases`` are read from the top level for running
    sessions and from ``info["final_info"]`` for ended ones; the final observation
    from ``info["final_obs"]``.

    Raises:
        ConfigError: the env does not reset in the same step.
    """

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(self, env: Any, device: str | torch.device = "cpu", user: str = "GymnasiumTorchAdapter"):
        require_same_step_autoreset(env, user)
        self.env = env
        self.num_envs = env.num_envs
        self.device = torch.device(device)
        self.single_observation_space = env.single_observation_space
        self.single_action_space = env.single_action_space
        self.action_space = env.action_space
        self.slate_size = env.single_action_space.slate_size

    @property
    def unwrapped(self) -> Any:
        return getattr(self.env, "unwrapped", self.env)

    def reset(self, seed: int | None = None) -> tuple[Observation, dict[str, torch.Tensor]]:
        observation, info = self.env.reset(seed=seed)
        return self._tensors(observation), self._tensors(_array_entries(info))

    def step(self, slates: torch.Tensor) -> TorchStep:
        observation, reward, terminated, truncated, info = self.env.step(slates.cpu().numpy())
        done = np.asarray(terminated) | np.asarray(truncated)
        next_observation = self._tensors(observation)

        def observe_final() -> Observation:
            final = {key: value.clone() for key, value in next_observation.items()}
            for index in np.flatnonzero(done):
                for key, value in info["final_obs"][index].items():
                    final[key][index] = torch.as_tensor(value, device=self.device)
            return final

        return TorchStep(
            observation=next_observation,
            reward=torch.as_tensor(np.asarray(reward, dtype=np.float32), device=self.device),
            terminated=torch.as_tensor(np.asarray(terminated), device=self.device),
            truncated=torch.as_tensor(np.asarray(truncated), device=self.device),
            clicks=torch.as_tensor(slate_info(info, "clicks"), device=self.device),
            purchases=torch.as_tensor(slate_info(info, "purchases"), device=self.device),
            info=self._tensors(_array_entries(info)),
            observe_final=observe_final,
        )

    def _tensors(self, arrays: dict[str, np.ndarray]) -> Observation:
        # Copies: a vector env built with copy=False reuses its NumPy buffers every step.
        return {key: torch.tensor(np.array(value), device=self.device) for key, value in arrays.items()}

    def close(self) -> None:
        self.env.close()


def _array_entries(info: dict[str, Any]) -> dict[str, np.ndarray]:
    """The (B, ...) numeric arrays of a vector info, without masks and nested dicts."""
    return {
        key: value
        for key, value in info.items()
        if not key.startswith("_") and isinstance(value, np.ndarray) and value.dtype != object
    }


def as_torch_env(env: Any, user: str = "GymnasiumTorchAdapter") -> TorchVectorEnv | GymnasiumTorchAdapter:
    """``env`` itself when it is torch-native; for shopgym's own Gymnasium vector envs the
    torch env they wrap (no copies); a :class:`GymnasiumTorchAdapter` over another
    Gymnasium vector env (``user``, what needs it, names the caller in the error raised
    when that env does not reset in the same step)."""
    if isinstance(env, TorchVectorEnv | GymnasiumTorchAdapter):
        return env
    # The env's own attribute only: a wrapper (SB3's VecNormalize, say) forwards
    # attribute reads to what it wraps, and unwrapping it would drop what it does.
    torch_env = vars(env).get("torch_env") if hasattr(env, "__dict__") else None
    if isinstance(torch_env, TorchVectorEnv):
        return torch_env
    if not hasattr(env, "num_envs"):
        raise ConfigError(f"expected a vector environment (torch or Gymnasium), got {type(env).__name__}")
    return GymnasiumTorchAdapter(env, user=user)
