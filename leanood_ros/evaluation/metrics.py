"""Detection metrics (scikit-learn for the ROC) and the temporal metrics of the decision layer."""
from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

from ..decision import DecisionConfig, DecisionEngine


def auroc(id_scores, ood_scores) -> float:
    y = np.r_[np.zeros(len(id_scores)), np.ones(len(ood_scores))]
    return float(roc_auc_score(y, np.r_[id_scores, ood_scores]))


def fpr_at_tpr(id_scores, ood_scores, tpr_level: float = 0.95) -> float:
    """False-positive rate on ID frames at the threshold that flags `tpr_level` of OOD frames."""
    y = np.r_[np.zeros(len(id_scores)), np.ones(len(ood_scores))]
    fpr, tpr, _ = roc_curve(y, np.r_[id_scores, ood_scores])
    return float(fpr[np.searchsorted(tpr, tpr_level, side='left')])


def frame_metrics(id_scores, ood_scores) -> dict:
    return {'auroc': auroc(id_scores, ood_scores), 'fpr95': fpr_at_tpr(id_scores, ood_scores),
            'n_id': int(len(id_scores)), 'n_ood': int(len(ood_scores))}


def run_sequence(scores, calibration, config: DecisionConfig) -> tuple:
    """Feed one recording's scores through a fresh decision engine: (is_safe, fused) per frame."""
    eng = DecisionEngine(calibration, config)
    out = [eng.update(float(s)) for s in scores]
    return np.array([d.is_safe for d in out]), np.array([d.fused for d in out])


def sequence_metrics(scores, is_ood, calibration, config: DecisionConfig) -> dict:
    """Return the detection delay (frames after the first OOD frame) and false alarms before it."""
    safe, fused = run_sequence(scores, calibration, config)
    return alarm_metrics(safe, is_ood), fused


def alarm_metrics(safe, is_ood) -> dict:
    """Compute the temporal metrics of one recording from its per-frame verdicts and OOD labels."""
    safe, is_ood = np.asarray(safe, bool), np.asarray(is_ood, bool)
    onset = int(np.argmax(is_ood)) if np.any(is_ood) else None
    before = safe if onset is None else safe[:onset]
    # an alarm episode = a switch from safe to unsafe (the very first frame counts if unsafe)
    episodes = int(np.sum(np.diff(np.r_[1, before.astype(int)]) == -1))
    result = {'frames': int(len(safe)), 'false_alarm_episodes': episodes,
              'false_alarm_frames': int(np.sum(~before)), 'onset': onset}
    if onset is not None:
        hits = np.flatnonzero(~safe[onset:])
        result['delay'] = int(hits[0]) if hits.size else None
        result['detected'] = bool(hits.size)
        result['flagged_fraction_after_onset'] = float(np.mean(~safe[onset:]))
    return result


class ColourStatsReference:
    """The trivial reference every report includes: Mahalanobis distance on colour statistics.

    A Ledoit-Wolf Mahalanobis distance on the frame's per-channel colour mean and standard
    deviation (six numbers), fitted on ID frames.  Follows pytorch-ood's Detector API: fit on ID
    data, predict = higher is more OOD.
    """

    name = 'colour_stats_reference'

    @staticmethod
    def features(images: np.ndarray, chunk: int = 256) -> np.ndarray:
        from ..detectors import colour_stats
        return np.concatenate([colour_stats(images[i:i + chunk])
                               for i in range(0, len(images), chunk)])

    def fit(self, images: np.ndarray) -> 'ColourStatsReference':
        from ..heads import GaussianHead
        self.head = GaussianHead('colour_stats').fit({'colour_stats': self.features(images)})
        return self

    def predict(self, images: np.ndarray) -> np.ndarray:
        return self.head.score({'colour_stats': self.features(images)})
