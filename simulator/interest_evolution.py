"""RecSim's interest-evolution environment as a batched torch simulator of B users.

The dynamics follow RecSim's ``interest_evolution`` environment term by term (the
environment that ``create_environment`` builds and that RLlib's SlateQ examples
train on): the utility-model video sampler, the utility-model user sampler, the
multinomial proportional choice model, watch time and time budget, and the
stochastic interest update. ``docs/interest_evolution.md`` maps every RecSim
parameter to a field of :class:`InterestEvolutionConfig`.

State of user b (every tensor leads with the batch dimension B, also for B = 1;
T topics, N candidates, k slate positions):

- ``interests`` (B, T): the user's interest in each topic, in [-1, 1];
- ``time_budget`` (B,): minutes left in the session; the session ends at <= 0. A live
  user's budget is > 0, so at the end of a step it is >= -``step_penalty`` after a
  slate without a click, and >= ``user_update_alpha`` × watch time × received utility
  after a click (below 0 only when the clicked video's received utility is);
- ``steps`` (B,): slates seen this session (for the optional ``max_steps``);
- ``candidates``: the N videos offered for the next slate, a dict of ``cluster``
  (B, N) int64, ``features`` (B, N, T) float32 (one-hot of the cluster),
  ``quality`` (B, N) float32 and ``video_length`` (B, N) float32;
- ``response_*`` (B, k): the user's response to the slate just shown (zeros at
  the start of a session, where RecSim has no response yet).

Unlike RecSim, whose choice and interest-update draws come from NumPy's global
random state, every draw comes from four ``torch.Generator`` streams on the
simulator's device, seeded from one seed: documents, users, choice and interest
update. Each stream draws the same number of values every step whatever
happened, so the users' fates never shift one another's draws.
"""

from __future__ import annotations

import dataclasses
import math
import secrets
from dataclasses import dataclass

import torch

from shopgym.simulator.determinism import derived_seeds
from shopgym.simulator.device import resolve_device
from shopgym.simulator.errors import ConfigError
from shopgym.simulator.outcome import StepOutcome
from shopgym.simulator.slates import check_slates
from shopgym.simulator.tensors import rows

# RecSim's IEvVideo.MAX_VIDEO_LENGTH: the upper bound of the watch-time response.
MAX_VIDEO_LENGTH = 100.0
CHOICE_MODELS = ("proportional", "logit", "proportional_cascade", "exponential_cascade")
# Generator streams, in the order of derived_seeds.
STREAMS = ("documents", "users", "choice", "interest_update")
RESPONSE_KEYS = (
    "response_click",
    "response_watch_time",
    "response_liked",
    "response_quality",
    "response_cluster_id",
)
OBSERVATION_KEYS = ("user", "doc_features", *RESPONSE_KEYS)


@dataclass(frozen=True)
class InterestEvolutionConfig:
    """Parameters of the interest-evolution environment. Defaults are RecSim's (those of
    ``UtilityModelVideoSampler``, ``UtilityModelUserSampler``, ``IEvUserModel`` and the
    multinomial proportional choice model), with RLlib's ``num_candidates=10`` and
    ``slate_size=2``."""

    num_candidates: int = 10
    """N, videos offered at each step (RLlib's SlateQ setting)."""
    slate_size: int = 2
    """k, videos shown per slate (RLlib's SlateQ setting)."""
    resample_documents: bool = True
    """Draw fresh candidates after every step (RecSim's ``resample_documents``); when False the
    candidates drawn at ``reset`` stay for good."""
    num_topics: int = 20
    """T, topics (clusters) and length of the user and video feature vectors (RecSim's
    ``NUM_FEATURES``)."""
    min_utility: float = -3.0
    """Mean quality of cluster 0, the trashiest (RecSim's ``min_utility``)."""
    max_utility: float = 3.0
    """Mean quality of cluster T-1, the most nutritious (RecSim's ``max_utility``)."""
    quality_std: float = 0.1
    """Standard deviation of a video's quality around its cluster's mean (the scale RecSim
    calls ``quality_variance``)."""
    video_length: float = 4.0
    """Length of every video in minutes (RecSim's ``video_length``)."""
    time_budget: float = 200.0
    """Minutes each user has at the start of a session."""
    step_penalty: float = 0.5
    """Minutes a slate without a click costs."""
    user_update_alpha: float = 0.9 / 3.4
    """Fraction of the watch time that one unit of received utility gives back to (or takes
    from) the budget: RecSim's 0.9 times its utility range 1 / 3.4."""
    user_quality_factor: float = 0.0
    """Weight of the user's expected utility in the received utility."""
    document_quality_factor: float = 1.0
    """Weight of the video's quality in the received utility."""
    choice_model: str = "proportional"
    """``proportional`` (RecSim's MultinomialProportionalChoiceModel, the one the environment
    uses), ``logit`` (MultinomialLogitChoiceModel), ``proportional_cascade`` or
    ``exponential_cascade``."""
    no_click_mass: float = 1.0
    """Score of the no-click option (before the shift by ``min_normalizer``)."""
    min_normalizer: float = -1.0
    """Offset subtracted from every score by the proportional models so that weights are not
    negative; must be <= -1, the lowest possible score."""
    score_scaling: float = 0.05
    """Cascade models only: factor turning a score into a click probability."""
    attention_prob: float = 0.65
    """Cascade models only: probability of examining the next slate position."""
    alpha_x_intercept: float = 1.0
    """Interest at which the interest step size falls to zero."""
    alpha_y_intercept: float = 0.3
    """Interest step size at interest 0: alpha(x) = y0 - (y0 / x0) |x|."""
    max_steps: int | None = None
    """Truncate sessions after this many slates; None (RecSim's setting): sessions end only when
    the time budget runs out."""

    def __post_init__(self) -> None:
        def fail(name: str, problem: str) -> None:
            raise ConfigError(f"InterestEvolutionConfig.{name}: {problem}, got {getattr(self, name)!r}")

        for name in ("num_candidates", "slate_size", "num_topics"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                fail(name, "must be a positive integer")
        if self.slate_size > self.num_candidates:
            fail("slate_size", f"must be at most num_candidates ({self.num_candidates})")
        trashy, nutritious = _cluster_counts(self.num_topics)
        if trashy + nutritious != self.num_topics:
            fail("num_topics", "must split into int(0.7 T) + int(0.3 T) clusters, as RecSim's means do")
        if not isinstance(self.resample_documents, bool):
            fail("resample_documents", "must be True or False")
        for name in (field.name for field in dataclasses.fields(self)):
            value = getattr(self, name)
            if isinstance(value, float) and not math.isfinite(value):
                fail(name, "must be finite")
        if self.min_utility > 0 or self.max_utility < 0:
            fail("min_utility", "and max_utility must bracket 0 (min_utility <= 0 <= max_utility)")
        if self.quality_std < 0:
            fail("quality_std", "must be >= 0")
        if not 0 < self.video_length <= MAX_VIDEO_LENGTH:
            fail("video_length", f"must be in (0, {MAX_VIDEO_LENGTH}]")
        if self.time_budget <= 0:
            fail("time_budget", "must be > 0")
        if self.step_penalty < 0:
            fail("step_penalty", "must be >= 0")
        if self.choice_model not in CHOICE_MODELS:
            fail("choice_model", f"must be one of {list(CHOICE_MODELS)}")
        proportional = self.choice_model in ("proportional", "proportional_cascade")
        if proportional and self.min_normalizer > -1:
            fail("min_normalizer", "must be <= -1 so that no shifted score is negative")
        if self.choice_model == "proportional" and self.no_click_mass < self.min_normalizer:
            fail("no_click_mass", f"must be >= min_normalizer ({self.min_normalizer})")
        if not 0 <= self.attention_prob <= 1:
            fail("attention_prob", "must be in [0, 1]")
        if self.score_scaling < 0:
            fail("score_scaling", "must be >= 0")
        highest_score = {"proportional_cascade": 1 - self.min_normalizer, "exponential_cascade": math.e}
        if self.score_scaling * highest_score.get(self.choice_model, 0.0) > 1:
            fail("score_scaling", "times the highest score must be <= 1 for a cascade choice model")
        if self.alpha_x_intercept <= 0:
            fail("alpha_x_intercept", "must be > 0")
        if self.max_steps is not None and (
            not isinstance(self.max_steps, int) or isinstance(self.max_steps, bool) or self.max_steps < 1
        ):
            fail("max_steps", "must be None or a positive integer")


def _cluster_counts(num_topics: int) -> tuple[int, int]:
    """RecSim's split of the clusters into trashy (quality mean <= 0) and nutritious ones."""
    return int(num_topics * 0.7), int(num_topics * 0.3)


def cluster_quality_means(config: InterestEvolutionConfig) -> torch.Tensor:
    """(T,) mean quality of each cluster: 70% evenly from ``min_utility`` up to 0, then 30%
    evenly from 0 up to ``max_utility`` (0 appears twice, as in RecSim)."""
    trashy, nutritious = _cluster_counts(config.num_topics)
    return torch.cat(
        [
            torch.linspace(config.min_utility, 0.0, trashy, dtype=torch.float64),
            torch.linspace(0.0, config.max_utility, nutritious, dtype=torch.float64),
        ]
    ).float()


def choice_weights(config: InterestEvolutionConfig, scores: torch.Tensor) -> torch.Tensor:
    """Unnormalised choice weights of the slate and of not clicking.

    Args:
        scores: (B, k) user-video scores (dot product of interests and features), in slate order.

    Returns:
        (B, k + 1) non-negative weights; the last column is the no-click option. The
        probability of each option is its weight over the row's sum.
    """
    no_click = scores.new_full((*scores.shape[:-1], 1), config.no_click_mass)
    if config.choice_model == "proportional":
        return torch.cat([scores, no_click], -1) - config.min_normalizer
    if config.choice_model == "logit":
        return torch.softmax(torch.cat([scores, no_click], -1), -1)
    if config.choice_model == "proportional_cascade":
        click_given_seen = config.attention_prob * config.score_scaling * (scores - config.min_normalizer)
    else:
        click_given_seen = config.attention_prob * config.score_scaling * scores.exp()
    # Position i is clicked when every earlier position was passed over and i was not.
    passed = torch.cumprod(1 - click_given_seen, -1)
    reached = torch.cat([torch.ones_like(passed[..., :1]), passed[..., :-1]], -1)
    return torch.cat([reached * click_given_seen, passed[..., -1:]], -1)


def choice_probabilities(config: InterestEvolutionConfig, scores: torch.Tensor) -> torch.Tensor:
    """(B, k + 1) probabilities of clicking each slate position or (last column) none,
    from (B, k) scores. A row whose weights are all zero has probability 1 of no click."""
    weights = choice_weights(config, scores)
    total = weights.sum(-1, keepdim=True)
    probabilities = weights / total.clamp(min=torch.finfo(weights.dtype).tiny)
    no_click_only = torch.zeros_like(weights)
    no_click_only[..., -1] = 1
    return torch.where(total > 0, probabilities, no_click_only)


def expected_utility(config: InterestEvolutionConfig, scores: torch.Tensor) -> torch.Tensor:
    """What RecSim's choice model reports as the score of a video scored alone, (B,) from
    (B,) raw scores; it enters the received utility with weight ``user_quality_factor``."""
    if config.choice_model == "proportional":
        return scores - config.min_normalizer
    if config.choice_model == "logit":
        return torch.sigmoid(scores - config.no_click_mass)
    if config.choice_model == "proportional_cascade":
        return config.attention_prob * config.score_scaling * (scores - config.min_normalizer)
    return config.attention_prob * config.score_scaling * scores.exp()


def sample_choice(weights: torch.Tensor, uniform: torch.Tensor) -> torch.Tensor:
    """Inverse-CDF draw from (B, k + 1) weights with (B,) uniforms in [0, 1) -> (B,) int64,
    k meaning no click. An option of weight zero is never drawn; an all-zero row gives k."""
    cumulative = weights.cumsum(-1)
    target = uniform[:, None] * cumulative[:, -1:]
    choice = (cumulative <= target).sum(-1)
    return choice.clamp(max=weights.shape[-1] - 1)


def _copied(tensors: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {key: value.clone().to(device) for key, value in tensors.items()}


def interest_step_size(config: InterestEvolutionConfig, interests: torch.Tensor) -> torch.Tensor:
    """(B, T) step size of the interest update: largest at interest 0, falling linearly with |x|."""
    slope = config.alpha_y_intercept / config.alpha_x_intercept
    return config.alpha_y_intercept - slope * interests.abs()


class InterestEvolutionSimulator:
    """B users of RecSim's interest-evolution environment, advanced together.

    Args:
        config: the environment's parameters.
        num_shoppers: B, the batch size.
        device: ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``.
        seed: seed of the random streams; :meth:`reset` can reseed. None draws one.
    """

    def __init__(
        self,
        config: InterestEvolutionConfig = InterestEvolutionConfig(),
        num_shoppers: int = 1,
        device: str | torch.device = "auto",
        seed: int | None = None,
    ):
        if not isinstance(num_shoppers, int) or isinstance(num_shoppers, bool) or num_shoppers < 1:
            raise ConfigError(
                f"the number of users (num_envs) must be a positive integer, got {num_shoppers!r}"
            )
        if not isinstance(config, InterestEvolutionConfig):
            raise ConfigError(f"config must be an InterestEvolutionConfig, got {type(config).__name__}")
        self.config = config
        self.num_shoppers = num_shoppers
        self.device = dev = resolve_device(device)
        self.generators = {name: torch.Generator(device=dev) for name in STREAMS}
        self.seed(seed if seed is not None else secrets.randbits(63))
        self._cluster_means = cluster_quality_means(config).to(dev)
        self._identity = torch.eye(config.num_topics, device=dev)  # row c: cluster c's one-hot
        b, n, k, t = num_shoppers, config.num_candidates, config.slate_size, config.num_topics
        self.interests = torch.zeros((b, t), device=dev)
        self.time_budget = torch.zeros(b, device=dev)
        self.steps = torch.zeros(b, dtype=torch.long, device=dev)
        self.candidates: dict[str, torch.Tensor] = {
            "cluster": torch.zeros((b, n), dtype=torch.long, device=dev),
            "quality": torch.zeros((b, n), device=dev),
            "video_length": torch.zeros((b, n), device=dev),
        }
        self.response = self._no_response(k)
        self.reset()

    # -------------------------------------------------------------------- seeding
    def seed(self, seed: int) -> None:
        """Seed the four streams (documents, users, choice, interest update) from one seed."""
        seeds = derived_seeds(seed, len(STREAMS))
        for generator, stream_seed in zip(self.generators.values(), seeds, strict=True):
            generator.manual_seed(stream_seed)

    # ---------------------------------------------------------------- samplers
    def _draw_documents(self) -> dict[str, torch.Tensor]:
        """(B, N) fresh videos: a uniform cluster, a quality drawn around the cluster's mean,
        and the fixed length (RecSim's utility-model video sampler). A video's features are
        the one-hot of its cluster: the step reads the cluster, and only the observation
        builds the (B, N, T) one-hot tensor (the largest of the state)."""
        config, generator = self.config, self.generators["documents"]
        shape = (self.num_shoppers, config.num_candidates)
        cluster = torch.randint(config.num_topics, shape, generator=generator, device=self.device)
        noise = torch.randn(shape, generator=generator, device=self.device)
        return {
            "cluster": cluster,
            "quality": self._cluster_means[cluster] + config.quality_std * noise,
            "video_length": torch.full(shape, config.video_length, device=self.device),
        }

    def _draw_interests(self) -> torch.Tensor:
        """(B, T) interests of fresh users, uniform in [-1, 1) (RecSim's user sampler)."""
        shape = (self.num_shoppers, self.config.num_topics)
        uniform = torch.rand(shape, generator=self.generators["users"], device=self.device)
        return 2 * uniform - 1

    def _no_response(self, slate_size: int) -> dict[str, torch.Tensor]:
        """All-zero (B, k) responses: what a session shows before its first slate."""
        shape, dev = (self.num_shoppers, slate_size), self.device
        return {
            "response_click": torch.zeros(shape, dtype=torch.long, device=dev),
            "response_watch_time": torch.zeros(shape, device=dev),
            "response_liked": torch.zeros(shape, dtype=torch.long, device=dev),
            "response_quality": torch.zeros(shape, device=dev),
            "response_cluster_id": torch.zeros(shape, dtype=torch.long, device=dev),
        }

    def _start_sessions(self, rows: torch.Tensor) -> None:
        """Replace the users in ``rows`` (B,) bool by fresh ones. The users' stream draws for
        every row, so that it advances by the same amount whichever sessions ended."""
        interests = self._draw_interests()
        self.interests = torch.where(rows[:, None], interests, self.interests)
        self.time_budget = torch.where(rows, self.config.time_budget, self.time_budget)
        self.steps = torch.where(rows, 0, self.steps)
        empty = self._no_response(self.config.slate_size)
        self.response = {key: torch.where(rows[:, None], empty[key], self.response[key]) for key in empty}

    # ------------------------------------------------------------------ reset
    def reset(self, seed: int | None = None) -> None:
        """Start new sessions for every user on fresh candidates (reseeding first if ``seed``
        is given)."""
        if seed is not None:
            self.seed(seed)
        self._start_sessions(torch.ones(self.num_shoppers, dtype=torch.bool, device=self.device))
        self.candidates = self._draw_documents()

    # ------------------------------------------------------------------- step
    def scores(self, clusters: torch.Tensor) -> torch.Tensor:
        """(B, n) scores of videos of (B, n) clusters for the current users: interests ·
        features, where the features are the one-hot of the cluster (so, exactly, the
        interest in the video's cluster)."""
        return self.interests.gather(1, clusters)

    def step(self, slates: torch.Tensor, check: bool = True) -> StepOutcome:
        """Show (B, k) slates of candidate indices; advance every user by one step.

        Order within the step, as in RecSim: choice, response, user update (interests, then
        budget), termination, new candidates; then ended sessions restart (same-step autoreset).

        Args:
            slates: (B, k) int64, indices into the N candidates, distinct per row.
            check: validate the slates first (raises :class:`SlateError`).

        Returns:
            A :class:`StepOutcome`: ``reward`` (B,) watch time, ``clicks`` (B, k),
            ``purchases`` (B, k) all False, ``terminated`` (B,) budget <= 0, ``truncated``
            (B,) ``max_steps`` reached, ``final_state`` (the observation's tensors at the
            end of the step) and ``info`` with ``watch_time`` (B,) and ``time_budget`` (B,)
            (the budget at the end of the step, before any restart).
        """
        config, dev = self.config, self.device
        if check:
            check_slates(slates, self.num_shoppers, config.slate_size, config.num_candidates)
        slates = slates.to(dev, torch.long)
        shown = {key: value.gather(1, slates) for key, value in self.candidates.items()}
        # Each stream draws once per user and step, used or not.
        choice_uniform = torch.rand(self.num_shoppers, generator=self.generators["choice"], device=dev)
        flip = torch.rand(self.num_shoppers, generator=self.generators["interest_update"], device=dev)

        scores = self.scores(shown["cluster"])  # (B, k)
        choice = sample_choice(choice_weights(config, scores), choice_uniform)  # (B,), k = no click
        clicked = choice < config.slate_size
        position = choice.clamp(max=config.slate_size - 1)
        positions = torch.arange(config.slate_size, device=dev)
        clicks = clicked[:, None] & (positions[None] == position[:, None])  # (B, k)

        # Response: the clicked video is watched for min(budget, length).
        length = shown["video_length"].gather(1, position[:, None]).squeeze(1)
        watch_time = torch.where(clicked, torch.minimum(self.time_budget, length), 0.0)
        quality = shown["quality"].gather(1, position[:, None]).squeeze(1)

        # Interest update toward (or away from) the clicked video's features. The expected
        # utility is scored before the interests move, as in RecSim.
        clicked_cluster = shown["cluster"].gather(1, position[:, None]).squeeze(1)
        doc = torch.nn.functional.one_hot(clicked_cluster, config.num_topics).float()  # (B, T)
        utility = expected_utility(config, scores.gather(1, position[:, None]).squeeze(1))
        update = interest_step_size(config, self.interests) * doc * (doc - self.interests)
        positive = flip < ((self.interests + 1) / 2 * doc).sum(-1)
        moved = (self.interests + torch.where(positive[:, None], update, -update)).clamp(-1.0, 1.0)
        self.interests = torch.where(clicked[:, None], moved, self.interests)

        # Budget: a click costs its watch time and gives back a share of the received utility;
        # a slate without a click costs the step penalty.
        received = config.user_quality_factor * utility + config.document_quality_factor * quality
        after_click = self.time_budget - watch_time + config.user_update_alpha * watch_time * received
        self.time_budget = torch.where(clicked, after_click, self.time_budget - config.step_penalty)
        self.steps = self.steps + 1

        self.response = {
            "response_click": clicks.long(),
            "response_watch_time": torch.where(clicks, watch_time[:, None], 0.0),
            "response_liked": torch.zeros_like(clicks, dtype=torch.long),  # RecSim never sets it
            "response_quality": shown["quality"],
            "response_cluster_id": shown["cluster"],
        }
        terminated = self.time_budget <= 0
        if config.max_steps is None:
            truncated = torch.zeros_like(terminated)
        else:
            truncated = (self.steps >= config.max_steps) & ~terminated
        if config.resample_documents:
            self.candidates = self._draw_documents()
        outcome = StepOutcome(
            reward=watch_time,
            clicks=clicks,
            purchases=torch.zeros_like(clicks),
            terminated=terminated,
            truncated=truncated,
            final_state=self._observed_state(),
            info={"watch_time": watch_time, "time_budget": self.time_budget.clone()},
        )
        # A new session starts on the candidates just drawn: they do not depend on the user.
        self._start_sessions(outcome.done)
        return outcome

    # ------------------------------------------------------------ observation
    def state(self) -> dict[str, torch.Tensor]:
        """Copies of the tensors that :meth:`observe` reads."""
        return {key: value.clone() for key, value in self._observed_state().items()}

    def _observed_state(self) -> dict[str, torch.Tensor]:
        """The tensors that :meth:`observe` reads (``user``, ``doc_cluster`` and the
        responses). No copies: the step replaces these tensors and never writes into them,
        so the ones handed out in ``StepOutcome.final_state`` stay as they were."""
        return {"user": self.interests, "doc_cluster": self.candidates["cluster"], **self.response}

    def observe(self, state: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """RecSim's observation of each user, as tensors (of ``state`` when given, e.g. an
        outcome's ``final_state``).

        Returns:
            ``user`` (B, T) float32 interests (observable in RecSim's environment),
            ``doc_features`` (B, N, T) float32 one-hot clusters of the candidates, and the
            response to the last slate: ``response_click`` (B, k) int64, ``response_watch_time``
            (B, k) float32, ``response_liked`` (B, k) int64 (always 0, as in RecSim),
            ``response_quality`` (B, k) float32 and ``response_cluster_id`` (B, k) int64 of the
            shown videos (all zeros before a session's first slate). Candidate quality is not
            observed, as in RecSim.
        """
        state = self._observed_state() if state is None else state
        # A row gather from the identity: the one-hot without one_hot's int64 intermediate
        # (4x faster at B = 65,536, where the (B, N, T) features are 52 MB).
        features = rows(self._identity, state["doc_cluster"])
        return {"user": state["user"], "doc_features": features, **{key: state[key] for key in RESPONSE_KEYS}}

    # ------------------------------------------------------- snapshot/restore
    def snapshot(self) -> dict:
        """The full state, generator states included; :meth:`restore` returns to it."""
        return {
            "interests": self.interests.clone(),
            "time_budget": self.time_budget.clone(),
            "steps": self.steps.clone(),
            "candidates": _copied(self.candidates, self.device),
            "response": _copied(self.response, self.device),
            "generators": {name: generator.get_state() for name, generator in self.generators.items()},
        }

    def restore(self, snapshot: dict) -> None:
        """Return to a state taken by :meth:`snapshot` (of a simulator with the same config and B)."""
        self.interests = snapshot["interests"].clone().to(self.device)
        self.time_budget = snapshot["time_budget"].clone().to(self.device)
        self.steps = snapshot["steps"].clone().to(self.device)
        self.candidates = _copied(snapshot["candidates"], self.device)
        self.response = _copied(snapshot["response"], self.device)
        for name, generator in self.generators.items():
            generator.set_state(snapshot["generators"][name])
