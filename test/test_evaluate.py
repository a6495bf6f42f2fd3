"""`leanood evaluate` end to end on small labelled recordings (tiny bundle, synthetic frames)."""
import json

import numpy as np
import pytest

from bundle_factory import id_frame, ood_frame
from leanood_ros.bundle import load_bundle
from leanood_ros.data.bag_writer import BagWriter
from leanood_ros.decision import ConformalPValues, DecisionConfig
from leanood_ros.evaluation import evaluate
from leanood_ros.evaluation.metrics import fpr_at_tpr, sequence_metrics


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


def _args(recordings, **extra):
    args = []
    for k in ('fit', 'calib', 'id', 'ood'):
        if recordings.get(k):
            args += [f'--{k}', *map(str, recordings[k])]
    for k, v in extra.items():
        args += [f'--{k}', *([str(v)] if v is not True else [])]
    return args


def test_json_holds_every_frame_and_timelines_show_each_sequence(recordings, tiny_bundle,
                                                                 tmp_path):
    out, plots = tmp_path / 'r.json', tmp_path / 'plots'
    assert evaluate.main(['--model', str(tiny_bundle)]
                         + _args(recordings, json=out, timeline=plots,
                                 roc=tmp_path / 'roc.png')) == 0
    det = next(r for r in json.loads(out.read_text())['results'] if r['name'] == 'tiny_test_vae')
    seq = det['per_set']['magenta']['per_sequence']['shift']
    assert len(seq['score']) == len(seq['alarm']) == len(seq['ood']) == 40
    assert seq['ood'] == [0] * 20 + [1] * 20
    assert seq['alarm'][20 + seq['delay']] == 1 and not any(seq['alarm'][:20])
    calibration = load_bundle(tiny_bundle).calibration_scores
    assert det['frame_threshold'] == ConformalPValues(calibration).threshold(
        det['decision']['alpha'])
    assert np.mean(np.array(seq['score'][20:]) > det['frame_threshold']) > 0.5
    assert sorted(p.name for p in plots.iterdir()) == ['id.png', 'shift.png']
    assert (tmp_path / 'roc.png').stat().st_size > 1000


def test_without_fit_the_reference_is_skipped_with_a_note(recordings, tiny_bundle, capsys):
    recordings = dict(recordings, fit=[], calib=[])
    assert evaluate.main(['--model', str(tiny_bundle)] + _args(recordings)) == 0
    cap = capsys.readouterr()
    assert 'colour-statistics reference is not scored' in cap.err
    assert 'tiny_test_vae' in cap.out and 'colour_stats_reference' not in cap.out


def _folder(path, kinds, seed):
    import cv2
    rng = np.random.default_rng(seed)
    path.mkdir()
    for i, k in enumerate(kinds):
        cv2.imwrite(str(path / f'{i:03d}.png'), id_frame(rng) if k == 'id' else ood_frame(rng))
    (path / 'labels.csv').write_text('frame,ood\n' + ''.join(
        f'{i:03d}.png,{int(k == "ood")}\n' for i, k in enumerate(kinds)))
    return path


def test_labels_without_shift_names_group_by_recording(recordings, tiny_bundle, tmp_path, capsys):
    shifted = tmp_path / 'my_shifts'
    shifted.mkdir()
    for n, name in enumerate(('tunnel', 'wet_lens')):
        _folder(shifted / name, ['id'] * 10 + ['ood'] * 15, 10 + n)
    out = tmp_path / 'r.json'
    assert evaluate.main(['--model', str(tiny_bundle), '--no-reference', '--json', str(out),
                          '--id', *map(str, recordings['id']), '--ood', str(shifted)]) == 0
    per_set = json.loads(out.read_text())['results'][0]['per_set']
    assert sorted(per_set) == ['tunnel', 'wet_lens']
    assert all(m['n_ood'] == 15 and m['sequences'] == 1 for m in per_set.values())


def test_every_argument_is_checked_before_scoring(recordings, tiny_bundle, tmp_path, monkeypatch,
                                                  capsys):
    def must_not_score(*a, **k):
        raise AssertionError('scored before the arguments were checked')
    monkeypatch.setattr(evaluate, 'evaluate_scorer', must_not_score)
    (tmp_path / 'empty').mkdir()
    mislabelled = recordings['ood'][0]
    cases = [
        (['--model', str(tiny_bundle), '--model', 'no_such_model'], {},
         '--model no_such_model: model bundle'),
        (['--model', str(tiny_bundle)], {'ood': [tmp_path / 'missing']},
         'missing: no such file or folder'),
        (['--model', str(tiny_bundle)], {'id': [tmp_path / 'empty']},
         'no recordings in this folder'),
        (['--model', str(tiny_bundle)], {'id': [mislabelled]}, 'frames are labelled OOD'),
        (['--model', str(tiny_bundle), '--alpha', '2'], {}, 'alpha must be in (0, 1)'),
        (['--model', str(tiny_bundle), '--json', str(tmp_path / 'nodir' / 'r.json')], {},
         'does not exist'),
    ]
    for extra, replace, message in cases:
        with pytest.raises(SystemExit) as info:
            evaluate.main(extra + _args(dict(recordings, **replace)))
        assert info.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith('leanood evaluate: error:') and message in err[-1], err
