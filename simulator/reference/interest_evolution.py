"""``shopgym/InterestEvolution-v0``'s user, one at a time, in plain Python and NumPy.

RecSim's interest-evolution environment written as RecSim writes it: one user, one
slate per :meth:`ReferenceInterestEvolution.step`, a document sampler drawing N videos
after every step. A reference for
:class:`shopgym.simulator.interest_evolution.InterestEvolutionSimulator`, sharing only
its parameters (:class:`InterestEvolutionConfig`), none of its step code. One step, for
a slate of k of the N candidate videos (T topics; ``docs/interest_evolution.md`` maps
each term to RecSim)::

    score_j  = interests . features_j              (features: one-hot of the video's cluster)
    choice   ~ weights (proportional: score_j - min_normalizer, no click: no_click_mass - min_normalizer)
    click j: watch = min(budget, length_j); the interests move toward (or away from) features_j;
             budget += -watch + user_update_alpha watch (uqf expected_utility + dqf quality_j)
    no click: budget -= step_penalty
    reward   = watch time; the session ends when the budget is <= 0
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from shopgym.simulator.interest_evolution import InterestEvolutionConfig
from shopgym.simulator.reference import StepResult, check_slate


def cluster_means(config: InterestEvolutionConfig) -> np.ndarray:
    """(T,) mean quality of each cluster, RecSim's ``UtilityModelVideoSampler``: 70% of the
    clusters evenly from ``min_utility`` to 0 (trashy), 30% evenly from 0 to ``max_utility``."""
    t = config.num_topics
    trashy, nutritious = int(t * 0.7), int(t * 0.3)
    return np.concatenate(
        [np.linspace(config.min_utility, 0.0, trashy), np.linspace(0.0, config.max_utility, nutritious)]
    )


class ReferenceInterestEvolution:
    """One user of RecSim's interest-evolution environment at a time.

    Args:
        config: the environment's parameters (every choice model is supported); None: the
            defaults, ``InterestEvolution-v0``'s.
        seed: seed of the simulator's random stream (or a ``np.random.Generator``).

    State of the current session: ``interests`` (T,) in [-1, 1], ``time_budget``
    (minutes left), ``steps``, the candidates ``cluster``, ``quality`` and
    ``video_length`` (N,), and the response to the last slate (``last_*``).
    """

    def __init__(
        self,
        config: InterestEvolutionConfig | None = None,
        seed: int | np.random.Generator | None = None,
    ):
        self.config = config = config or InterestEvolutionConfig()
        self.num_candidates = config.num_candidates
        self.slate_size = config.slate_size
        self.rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        self.means = cluster_means(config)
        self.topics = np.eye(config.num_topics)  # row c: the features of a video of cluster c
        # Every video has the same length (RecSim's utility-model sampler): no draw needed.
        self.video_length = np.full(config.num_candidates, config.video_length)
        self.done = True

    # ------------------------------------------------------------------ episode
    def reset(self) -> dict[str, np.ndarray]:
        """A new user (interests uniform in [-1, 1] per topic, a full budget) on fresh videos."""
        config, k = self.config, self.slate_size
        self.interests = self.rng.uniform(-1.0, 1.0, config.num_topics)
        self.time_budget = config.time_budget
        self.steps = 0
        # The last slate's response, kept raw (observe() builds the arrays): clicks (k,),
        # watch time, and the shown videos' qualities and clusters (k,); zeros before any.
        self.last_clicks = np.zeros(k, dtype=bool)
        self.last_watch_time = 0.0
        self.last_quality = np.zeros(k)
        self.last_cluster = np.zeros(k, dtype=np.int64)
        self._draw_documents()
        self.done = False
        return self.observe()

    def _draw_documents(self) -> None:
        """N videos: a uniform cluster and a quality around the cluster's mean."""
        config, n = self.config, self.num_candidates
        self.cluster = self.rng.integers(config.num_topics, size=n)
        self.quality = self.means[self.cluster] + config.quality_std * self.rng.standard_normal(n)

    def observe(self) -> dict[str, np.ndarray]:
        """RecSim's observation: ``user`` (T,) interests, ``doc_features`` (N, T) one-hot
        clusters, and the ``response_*`` (k,) to the last slate (zeros before the first)."""
        clicks = self.last_clicks
        return {
            "user": self.interests.astype(np.float32),
            "doc_features": self.topics[self.cluster].astype(np.float32),
            "response_click": clicks.astype(np.int64),
            "response_watch_time": np.where(clicks, self.last_watch_time, 0.0).astype(np.float32),
            "response_liked": np.zeros(self.slate_size, dtype=np.int64),  # RecSim never sets it
            "response_quality": self.last_quality.astype(np.float32),
            "response_cluster_id": self.last_cluster.copy(),
        }

    # ------------------------------------------------------------------- choice
    def _choice_weights(self, scores: np.ndarray) -> np.ndarray:
        """(k + 1,) non-negative weights of clicking each slate position or (last) none."""
        config = self.config
        if config.choice_model == "proportional":
            return np.concatenate((scores, [config.no_click_mass])) - config.min_normalizer
        if config.choice_model == "logit":
            logits = np.concatenate((scores, [config.no_click_mass]))
            return np.exp(logits - logits.max())
        # Cascades: the user looks down the slate and clicks position i with probability
        # x_i if every earlier one was passed over.
        if config.choice_model == "proportional_cascade":
            x = config.attention_prob * config.score_scaling * (scores - config.min_normalizer)
        else:
            x = config.attention_prob * config.score_scaling * np.exp(scores)
        weights, reached = np.zeros(len(scores) + 1), 1.0
        for position, probability in enumerate(x):
            weights[position] = reached * probability
            reached *= 1.0 - probability
        weights[-1] = reached
        return weights

    def _expected_utility(self, score: float) -> float:
        """The choice model's score of a video scored alone (RecSim's ``expected_utility``)."""
        config = self.config
        if config.choice_model == "proportional":
            return score - config.min_normalizer
        if config.choice_model == "logit":
            return 1.0 / (1.0 + math.exp(config.no_click_mass - score))
        scale = config.attention_prob * config.score_scaling
        if config.choice_model == "proportional_cascade":
            return scale * (score - config.min_normalizer)
        return scale * math.exp(score)

    # --------------------------------------------------------------------- step
    def step(self, slate: Sequence[int] | np.ndarray, check: bool = True) -> StepResult:
        """Show a slate: k distinct indices into the N candidates, in slate order."""
        config, rng, k = self.config, self.rng, self.slate_size
        if self.done:
            raise RuntimeError("the session is over: call reset()")
        slate = np.asarray(slate)
        if check:
            check_slate(slate, k, self.num_candidates)
        clusters = self.cluster[slate]  # (k,)
        scores = self.interests[clusters]  # interests . one-hot features

        weights = self._choice_weights(scores)
        cumulative = np.cumsum(weights)
        if cumulative[-1] > 0:
            choice = min(int(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right")), k)
        else:
            choice = k  # nothing has any weight: no click (RecSim would divide by zero)
        clicks = np.zeros(k, dtype=bool)
        watch_time = 0.0
        if choice < k:
            clicks[choice] = True
            candidate = int(slate[choice])
            watch_time = min(self.time_budget, float(self.video_length[candidate]))
            quality = float(self.quality[candidate])
            # Scored before the interests move, as RecSim does.
            utility = self._expected_utility(float(scores[choice]))
            # RecSim's interest update: a step toward the video's features, added with
            # probability (interests + 1)/2 . features, subtracted otherwise.
            features = self.topics[clusters[choice]]
            alpha = config.alpha_y_intercept - config.alpha_y_intercept / config.alpha_x_intercept * np.abs(
                self.interests
            )
            update = alpha * features * (features - self.interests)
            toward = rng.random() < float(np.dot((self.interests + 1.0) / 2.0, features))
            self.interests = np.clip(self.interests + (update if toward else -update), -1.0, 1.0)
            received = config.user_quality_factor * utility + config.document_quality_factor * quality
            self.time_budget += -watch_time + config.user_update_alpha * watch_time * received
        else:
            self.time_budget -= config.step_penalty
        self.steps += 1

        self.last_clicks, self.last_watch_time = clicks, watch_time
        self.last_quality, self.last_cluster = self.quality[slate], clusters
        terminated = self.time_budget <= 0
        truncated = not terminated and config.max_steps is not None and self.steps >= config.max_steps
        self.done = terminated or truncated
        if config.resample_documents:
            self._draw_documents()
        return StepResult(watch_time, clicks, terminated, truncated)
