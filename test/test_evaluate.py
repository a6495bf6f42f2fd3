"""`leanood evaluate` end to end on small labelled recordings (tiny bundle, synthetic frames)."""
import json

import numpy as np
import pytest

from bundle_factory import id_frame, ood_frame
from leanood_ros.data.bag_writer import BagWriter
from leanood_ros.evaluation import evaluate
from leanood_ros.evaluation.metrics import fpr_at_tpr, sequence_metrics
from leanood_ros.decision import DecisionConfig


def write(path, kinds, seed):
    rng = np.random.default_rng(seed)
    with BagWriter(path, compressed=False) as w:
        for i, k in enumerate(kinds):
            img = id_frame(rng) if k == 'id' else ood_frame(rng)
            w.write(img, 10**9 + i * 66_666_667, 'in_distribution' if k == 'id' else 'magenta')
    return path


@pytest.fixture
def recordings(tmp_path, monkeypatch):
    import leanood_ros.evaluation.frames as frames
    monkeypatch.setattr(frames, 'CACHE', tmp_path / 'cache')   # keep the user's cache clean
    return {'fit': [write(tmp_path / 'fit', ['id'] * 60, 1)],
            'calib': [write(tmp_path / 'calib', ['id'] * 40, 2)],
            'id': [write(tmp_path / 'id', ['id'] * 40, 3)],
            'ood': [write(tmp_path / 'shift', ['id'] * 20 + ['ood'] * 20, 4)]}


def test_evaluate_reports_detector_and_reference(recordings, tiny_bundle, tmp_path, capsys):
    out = tmp_path / 'r.json'
    args = ['--model', str(tiny_bundle), '--json', str(out)]
    for k in ('fit', 'calib', 'id', 'ood'):
        args += [f'--{k}', *map(str, recordings[k])]
    assert evaluate.main(args) == 0
    text = capsys.readouterr().out
    assert 'tiny_test_vae' in text and 'colour_stats_reference' in text
    res = {r['name']: r for r in json.loads(out.read_text())['results']}
    det = res['tiny_test_vae']['per_set']['magenta']
    assert det['auroc'] == 1.0 and det['fpr95'] == 0.0
    assert det['detected'] == 1 and det['delay_mean'] <= 5
    assert det['n_ood'] == 20 and det['n_id'] == 40
    assert res['tiny_test_vae']['id_false_alarm_episodes'] == 0
    assert res['colour_stats_reference']['per_set']['magenta']['auroc'] > 0.9


def test_metrics_match_hand_computed_values():
    assert fpr_at_tpr([0, 1, 2, 3], [2.5, 4, 5, 6]) == 0.25
    m, _ = sequence_metrics(np.r_[np.zeros(10), np.full(10, 9.0)],
                            np.r_[np.zeros(10, bool), np.ones(10, bool)],
                            np.linspace(-1, 1, 100), DecisionConfig(fusion='none'))
    assert m['onset'] == 10 and m['delay'] == 0 and m['false_alarm_episodes'] == 0
