"""Every offline tool takes recordings the same way (evaluation/recording_sets.py)."""
import json
import shutil

import cv2
import numpy as np
import pytest

from bundle_factory import id_frame
from leanood_ros import cli

TOOLS = [
    ['evaluate', '--model', 'vae_lean'],
    ['tune', '--model', 'vae_lean'],
    ['refit', '--model', 'vae_lean', '--out', 'OUT'],
    ['earlin', 'study', '--out', 'OUT'],
    ['earlin', 'export', '--out', 'OUT'],
    ['train-vae', '--out', 'OUT'],
    ['compress', '--teacher', 'T', '--out', 'OUT'],
    ['quantize', '--model', 'vae_lean', '--out', 'OUT'],
]


@pytest.mark.parametrize('tool', TOOLS, ids=lambda t: ' '.join(t[:2]))
def test_a_missing_recording_is_a_one_line_error_in_every_tool(tool, tmp_path, capsys):
    if tool[0] in ('earlin', 'train-vae', 'compress', 'quantize', 'refit'):
        pytest.importorskip('torch')
    role = '--id' if tool[0] == 'tune' else '--fit'
    argv = [str(tmp_path / a) if a in ('OUT', 'T') else a for a in tool]
    with pytest.raises(SystemExit) as info:
        cli.main(argv + [role, str(tmp_path / 'no_such_bag')])
    assert info.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert f'error: {role} {tmp_path / "no_such_bag"}: no such file or folder' in last


def _folders(parent, names, seed):
    rng = np.random.default_rng(seed)
    for name in names:
        (parent / name).mkdir(parents=True)
        for i in range(12):
            cv2.imwrite(str(parent / name / f'{i:03d}.png'), id_frame(rng))
    return parent


def test_tune_and_refit_take_folders_videos_and_parent_folders(tiny_bundle, tmp_path,
                                                               monkeypatch, capsys):
    pytest.importorskip('torch')
    import leanood_ros.evaluation.frames as frames
    monkeypatch.setattr(frames, 'CACHE', tmp_path / 'cache')
    bundle = tmp_path / 'bundle'
    shutil.copytree(tiny_bundle, bundle)
    ids = _folders(tmp_path / 'site_a', ['run1', 'run2'], 1)
    video = tmp_path / 'calib.avi'
    vw = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*'MJPG'), 15, (160, 120))
    rng = np.random.default_rng(2)
    for _ in range(110):      # alpha 0.01 needs at least 100 calibration frames
        vw.write(id_frame(rng))
    vw.release()
    assert cli.main(['tune', '--model', str(bundle), '--id', str(ids)]) == 0
    tuned = json.loads(capsys.readouterr().out)
    assert tuned['tuning']['id_sequences'] == 2
    out = tmp_path / 'refitted'
    assert cli.main(['refit', '--model', str(bundle), '--keep-head', '--calib', str(video),
                     '--id', str(ids / 'run1'), str(ids / 'run2'), '--out', str(out)]) == 0
    manifest = json.loads((out / 'bundle.json').read_text())
    assert manifest['calibration']['n'] == 110
    assert 'calib.avi' in manifest['calibration']['source']
