"""Detector-agnostic decisions: conformal p-values, per-frame test, temporal fusion, hysteresis.

- p-value of a score s against n ID calibration scores: (1 + #{cal >= s}) / (n + 1); under the ID
  hypothesis it is (super-)uniform, so `p <= alpha` flags at most a fraction alpha of ID frames.
  Beyond the largest calibration score it stops at 1/(n + 1): a frame just past the calibration
  range and one a hundred times past it are the same evidence.  `p_tail='exponential'` lets it
  fall on instead, p = exp(-(s - max) / sigma) / (n + 1), sigma the mean excess of the top 5 %
  of calibration scores over the next one (an exponential peaks-over-threshold fit): unchanged
  inside the calibration range, so the per-frame false-alarm rate is too, while a clear shift
  is strong evidence at once instead of after several frames.
- Temporal fusion (optional):
  * 'cusum': an inductive conformal martingale over a sliding window of the last `window` p-values,
    with the simple-mixture betting function b(p) = integral_0^1 e p^(e-1) de, feeding a CUSUM on
    its logarithm: S_t = max(0, S_{t-1} + log M_t - drift); alarm while S_t > threshold.  With
    a `score_threshold`, frames at or below it bring no evidence (they enter as p = 1).
  * 'vote': alarm while at least k of the last n frames were flagged.
  * 'none': the per-frame test alone.
- Hysteresis: after an alarm the verdict returns to safe only after `recovery_frames` consecutive
  frames without alarm.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, fields
import math

import numpy as np

FUSION_MODES = ('none', 'vote', 'cusum')
P_TAILS = ('conformal', 'exponential')
TAIL_FRACTION = 0.05   # of calibration scores fitting the exponential tail (at least 5)
MIN_P = 1e-100         # keeps the betting function finite for any score


class ConformalPValues:
    def __init__(self, calibration_scores):
        cal = np.sort(np.asarray(calibration_scores, dtype=np.float64))
        if cal.ndim != 1 or cal.size == 0 or not np.all(np.isfinite(cal)):
            raise ValueError('calibration scores must be a non-empty finite 1-D array')
        self.cal = cal
        self.n = cal.size
        k = min(self.n - 1, max(5, math.ceil(TAIL_FRACTION * self.n)))
        excess = cal[self.n - k:] - cal[self.n - k - 1] if k > 0 else np.zeros(1)
        # a degenerate tail (all equal) gets a tiny scale: anything beyond is a clear shift
        self.tail_scale = max(float(np.mean(excess)), 1e-12 * max(1.0, abs(float(cal[-1]))))

    def __call__(self, score: float, tail: str = 'conformal') -> float:
        if tail == 'exponential' and score > self.cal[-1]:
            return max(MIN_P, math.exp(-(score - self.cal[-1]) / self.tail_scale) / (self.n + 1))
        at_or_above = self.n - int(np.searchsorted(self.cal, score, side='left'))
        return (1 + at_or_above) / (self.n + 1)

    @property
    def min_alpha(self) -> float:
        """Return the smallest alpha at which any frame can be flagged."""
        return 1.0 / (self.n + 1)

    def threshold(self, alpha: float) -> float:
        """Score above which p <= alpha (inf when alpha is below the attainable minimum)."""
        m = math.floor(alpha * (self.n + 1) + 1e-9) - 1  # allowed calibration scores >= s
        if m < 0:
            return math.inf
        if m >= self.n:
            return -math.inf
        return float(self.cal[self.n - m - 1])


def mixture_betting(p: float) -> float:
    """b(p) = integral_0^1 e p^(e-1) de = (ln p - 1 + 1/p) / (ln p)^2, with b(1) = 1/2."""
    lp = math.log(p)
    if abs(lp) < 1e-6:
        return 0.5
    return (lp - 1.0 + 1.0 / p) / (lp * lp)


@dataclass
class DecisionConfig:
    alpha: float = 0.01
    score_threshold: float = 0.0       # > 0: flag frames whose score exceeds it, ignoring alpha
    fusion: str = 'cusum'
    vote_k: int = 3
    vote_n: int = 5
    cusum_window: int = 8
    cusum_drift: float = 1.0
    cusum_threshold: float = 12.0
    recovery_frames: int = 10
    p_tail: str = 'conformal'

    def validate(self) -> list:
        p = []
        if not 0.0 < self.alpha < 1.0:
            p.append(f'alpha must be in (0, 1), got {self.alpha}')
        if self.score_threshold < 0 or not math.isfinite(self.score_threshold):
            p.append('score_threshold must be >= 0 (0 = use alpha)')
        if self.fusion not in FUSION_MODES:
            p.append(f'fusion must be one of {FUSION_MODES}, got {self.fusion!r}')
        if not 1 <= self.vote_k <= self.vote_n:
            p.append(f'vote_k must be in 1..vote_n ({self.vote_n}), got {self.vote_k}')
        if not 1 <= self.cusum_window <= 1000:
            p.append('cusum_window must be in 1..1000')
        if self.cusum_drift < 0 or self.cusum_threshold <= 0:
            p.append('cusum_drift must be >= 0 and cusum_threshold > 0')
        if self.recovery_frames < 0:
            p.append('recovery_frames must be >= 0')
        if self.p_tail not in P_TAILS:
            p.append(f'p_tail must be one of {P_TAILS}, got {self.p_tail!r}')
        return p

    def replace(self, **changes) -> 'DecisionConfig':
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d.update(changes)
        return DecisionConfig(**d)


@dataclass
class Decision:
    score: float
    p_value: float
    threshold: float
    frame_ood: bool        # the per-frame test
    alarm: bool            # after temporal fusion
    fused: float           # the fusion statistic (CUSUM S, vote count, or 0/1)
    is_safe: bool          # after hysteresis
    reason: str


class DecisionEngine:
    """Stateful: feed one score per judged frame, get a Decision."""

    def __init__(self, calibration_scores, config: DecisionConfig | None = None):
        self.pvalues = ConformalPValues(calibration_scores)
        self.config = config or DecisionConfig()
        self._check(self.config)
        self.reset()

    def _check(self, config: DecisionConfig) -> None:
        problems = config.validate()
        if problems:
            raise ValueError('; '.join(problems))

    def reconfigure(self, config: DecisionConfig) -> None:
        """Apply new settings live; fusion history is kept unless its shape changed."""
        self._check(config)
        old, self.config = self.config, config
        if (old.fusion, old.vote_n, old.cusum_window) != (config.fusion, config.vote_n,
                                                          config.cusum_window):
            self.reset(keep_alarm=True)

    def reset(self, keep_alarm: bool = False) -> None:
        c = self.config
        self._votes = deque(maxlen=c.vote_n)
        self._log_bets = deque(maxlen=c.cusum_window)
        self._cusum = 0.0
        if not keep_alarm:
            self._unsafe = False
            self._clear_run = 0

    @property
    def threshold(self) -> float:
        c = self.config
        return c.score_threshold if c.score_threshold > 0 else self.pvalues.threshold(c.alpha)

    def update(self, score: float) -> Decision:
        c = self.config
        p = self.pvalues(score, c.p_tail)
        thr = self.threshold
        frame_ood = score > thr
        if c.fusion == 'none':
            alarm, fused = frame_ood, float(frame_ood)
        elif c.fusion == 'vote':
            self._votes.append(frame_ood)
            fused = float(sum(self._votes))
            alarm = fused >= c.vote_k
        else:
            # score_threshold replaces alpha here too: frames below it are no evidence of a shift
            evidence = p if c.score_threshold <= 0 or frame_ood else 1.0
            self._log_bets.append(math.log(mixture_betting(evidence)))
            # Cap S so that recovery after a long shift takes bounded time.
            self._cusum = min(max(0.0, self._cusum + sum(self._log_bets) - c.cusum_drift),
                              2.0 * c.cusum_threshold)
            fused = self._cusum
            alarm = fused > c.cusum_threshold
        if alarm:
            self._unsafe, self._clear_run = True, 0
            how = 'per-frame test' if c.fusion == 'none' else f'{c.fusion} alarm, {fused:.3g}'
            reason = (f'out of distribution ({how}): score {score:.4g} vs threshold '
                      f'{thr:.4g}, p={p:.3g}')
        elif self._unsafe:
            self._clear_run += 1
            if self._clear_run >= c.recovery_frames:
                self._unsafe = False
                reason = 'in distribution (recovered)'
            else:
                reason = f'recovering ({self._clear_run}/{c.recovery_frames} clear frames)'
        else:
            reason = 'in distribution'
        return Decision(score, p, thr, frame_ood, alarm, fused, not self._unsafe, reason)
