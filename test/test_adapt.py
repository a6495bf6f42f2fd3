"""`leanood adapt`: a bundle learns a new place from its normal recordings.

It does so without forgetting the old one, and refuses input that cannot make a trustworthy
bundle.
"""
import json

import cv2
import numpy as np
import pytest

from bundle_factory import id_frame, make_tiny_bundle, ood_frame
from leanood_ros import cli
from leanood_ros.bundle import load_bundle
from leanood_ros.detectors import build_detector
from leanood_ros.heads import WhitenedKnnHead
from leanood_ros.image_conversion import from_array
from leanood_ros.training.adapt import adapt_bundle, AdaptError


def new_place_frame(rng):
    """Make a frame normal for the new robot (a greenish floor), unlike anything fitted on."""
    img = id_frame(rng).astype(np.int16) + np.array([-60, 70, -50])
    return np.clip(img, 0, 255).astype(np.uint8)


def folder(path, frames, labels=None):
    path.mkdir(parents=True)
    for i, im in enumerate(frames):
        cv2.imwrite(str(path / f'{i:04d}.png'), cv2.cvtColor(im, cv2.COLOR_RGB2BGR))
    if labels is not None:
        rows = ['frame,ood,shift'] + [f'{i:04d}.png,{int(o)},{"tint" if o else ""}'
                                      for i, o in enumerate(labels)]
        (path / 'labels.csv').write_text('\n'.join(rows) + '\n')
    return path


@pytest.fixture(scope='module')
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp('site')
    bundle = make_tiny_bundle(root / 'bundle', n_calibration=400, head=WhitenedKnnHead('mu'))
    rng = np.random.default_rng(11)
    rec = {f'normal_{k}': folder(root / f'normal_{k}', [new_place_frame(rng) for _ in range(110)])
           for k in range(5)}
    shift = [new_place_frame(rng) for _ in range(20)] + [ood_frame(rng) for _ in range(20)]
    rec['shifted'] = folder(root / 'shifted', shift, [False] * 20 + [True] * 20)
    return root, bundle, rec


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    import leanood_ros.evaluation.frames as frames
    monkeypatch.setattr(frames, 'CACHE', tmp_path / 'cache')


def p_values(det, bundle, frames):
    cal = bundle.calibration_scores
    s = np.array([det.score(from_array(f)) for f in frames])
    return (1 + (cal[None] >= s[:, None]).sum(1)) / (cal.size + 1)


def test_adapt_learns_the_new_place_and_keeps_the_old(site, tmp_path):
    root, src, rec = site
    rng = np.random.default_rng(99)
    new_probe = [new_place_frame(rng) for _ in range(20)]
    old_probe = [id_frame(rng) for _ in range(20)]
    before = load_bundle(src)
    det0 = build_detector(before)
    assert np.mean(p_values(det0, before, new_probe) <= 0.01) > 0.7      # a false alarm today
    s = adapt_bundle(src, tmp_path / 'mysite', [rec['normal_0'], rec['normal_1']],
                     [rec['normal_2'], rec['normal_3']], [rec['normal_4']], log=lambda m: None)
    after = load_bundle(tmp_path / 'mysite')
    det = build_detector(after)
    det.self_test()
    assert after.name == 'mysite' and s['bank_before'] == len(before.head.bank)
    assert 0 < s['bank_added'] <= 220 and len(after.head.bank) == s['bank_after']
    assert after.manifest['provenance']['adapted']['from_bundle'] == before.name
    assert after.calibration_scores.size == 220
    assert np.mean(p_values(det, after, new_probe) <= 0.01) < 0.1        # at home now
    # the old place is still known: its frames score as they did (the prior bank is kept)
    old_before = np.array([det0.score(from_array(f)) for f in old_probe])
    old_after = np.array([det.score(from_array(f)) for f in old_probe])
    np.testing.assert_allclose(old_after, old_before, rtol=1e-9)
    # and a real shift is still flagged
    assert np.all(p_values(det, after, [ood_frame(rng) for _ in range(5)]) <= 0.01)


def test_without_calib_the_fit_recordings_are_split_by_recording(site, tmp_path):
    _, src, rec = site
    log = []
    s = adapt_bundle(src, tmp_path / 'b', [rec[f'normal_{k}'] for k in range(4)], log=log.append)
    assert s['calib_recordings'] == [str(rec['normal_1']), str(rec['normal_3'])]
    assert s['fit_frames'] == 220 and 'no --calib' in log[0]
    # no --id: tuned on the calibration recordings, each without itself, at the wider margin
    d = load_bundle(tmp_path / 'b').manifest['decision']
    assert d['p_tail'] == 'exponential' and 'without itself' in d['tuning']['method']
    assert d['fusion'] != 'cusum' or d['tuning']['margin'] == 2.0


@pytest.mark.parametrize('case,message', [
    ('few', 'at least 200 normal frames'),
    ('overlap', 'given as both --fit and --calib'),
    ('ood_in_fit', 'labelled out of distribution'),
    ('few_calib', 'needs at least 100'),
    ('one_recording', 'at least 2 recordings'),
])
def test_guard_rails(site, tmp_path, case, message):
    _, src, rec = site
    args = {
        'few': ([rec['normal_0']], [rec['normal_1']]),
        'overlap': ([rec['normal_0'], rec['normal_1']], [rec['normal_1']]),
        'ood_in_fit': ([rec['normal_0'], rec['shifted']], [rec['normal_2']]),
        'few_calib': ([rec['normal_0'], rec['normal_1']], [rec['shifted']]),
        'one_recording': ([rec['normal_0']], []),
    }[case]
    if case == 'few_calib':   # 20 normal frames only: take the normal part of the recording
        args = (args[0], [folder(tmp_path / 'short', [new_place_frame(np.random.default_rng(1))
                                                      for _ in range(50)])])
    with pytest.raises(AdaptError, match=message):
        adapt_bundle(src, tmp_path / 'out', *args, log=lambda m: None)
    assert not (tmp_path / 'out').exists()


def test_an_existing_out_is_never_deleted_unless_a_bundle_and_forced(site, tmp_path):
    _, src, rec = site
    mine = tmp_path / 'mine'
    mine.mkdir()
    (mine / 'notes.txt').write_text('keep me')
    fit, cal = [rec['normal_0'], rec['normal_1']], [rec['normal_2']]
    for force in (False, True):
        with pytest.raises(Exception, match='not a bundle'):
            adapt_bundle(src, mine, fit, cal, log=lambda m: None, force=force)
    assert (mine / 'notes.txt').read_text() == 'keep me'
    adapt_bundle(src, tmp_path / 'b', fit, cal, log=lambda m: None)
    with pytest.raises(AdaptError, match='--force'):
        adapt_bundle(src, tmp_path / 'b', fit, cal, log=lambda m: None)
    adapt_bundle(src, tmp_path / 'b', fit, cal, log=lambda m: None, force=True)


def test_cli_prints_the_before_after_table(site, tmp_path, capsys):
    _, src, rec = site
    rc = cli.main(['adapt', '--model', str(src), '--out', str(tmp_path / 'cli'),
                   '--fit', str(rec['normal_0']), str(rec['normal_1']),
                   '--calib', str(rec['normal_2']), str(rec['normal_3']),
                   '--id', str(rec['normal_4']), '--ood', str(rec['shifted'])])
    out = capsys.readouterr().out
    assert rc == 0
    table = [line for line in out.splitlines() if line.startswith('| before') or
             line.startswith('| after')]
    assert len(table) == 2
    before_fa, after_fa = (int(r.split('|')[-2].split('/')[0]) for r in table)
    assert before_fa == 1 and after_fa == 0          # the normal sequence stops alarming
    assert json.loads(out[:out.index('\n}') + 2])['out'] == str(tmp_path / 'cli')
    assert cli.main(['adapt', '--model', str(src), '--out', str(tmp_path / 'cli'),
                     '--fit', str(rec['normal_0']), str(rec['normal_1'])]) == 2
    assert '--force' in capsys.readouterr().err


def test_benign_camera_variants_are_mild_varied_and_reproducible():
    from leanood_ros.data.benign import BenignCamera
    rgb = id_frame(np.random.default_rng(3), 480, 640)
    a = [BenignCamera(5)(rgb) for _ in range(1)] + [BenignCamera(5)(rgb)]
    np.testing.assert_array_equal(a[0], a[1])                     # same seed, same camera
    cam = BenignCamera(6)
    outs = [cam(rgb) for _ in range(12)]
    assert len({o.shape for o in outs}) >= 3                       # several resolutions
    for o in outs:                                                 # still the same scene
        assert np.abs(o.reshape(-1, 3).mean(0) - rgb.reshape(-1, 3).mean(0)).max() < 25


def test_adapt_with_benign_variants_fits_and_calibrates_on_them(site, tmp_path):
    _, src, rec = site
    s = adapt_bundle(src, tmp_path / 'b', [rec['normal_0'], rec['normal_1']],
                     [rec['normal_2']], benign=1, log=lambda m: None)
    assert s['fit_frames'] == 440 and s['calibration_frames'] == 220
    assert 'benign' in load_bundle(tmp_path / 'b').manifest['calibration']['source']


def test_refit_can_replace_the_head_type(site, tmp_path):
    from leanood_ros.training.refit import refit
    _, src, rec = site
    refit(src, tmp_path / 'maha', [rec['normal_0'], rec['normal_1']], [rec['normal_2']],
          [rec['normal_3']], head='mahalanobis')
    b = load_bundle(tmp_path / 'maha')
    assert b.head.type == 'mahalanobis' and b.head.input == 'mu'
    assert b.manifest['detector']['head']['type'] == 'mahalanobis'
    build_detector(b).self_test()
