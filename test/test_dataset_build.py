"""`leanood dataset build` for an explicit plan (the "new camera" benchmark's layout)."""
import json

import cv2
import numpy as np

from leanood_ros.data import duckietown_dataset
from leanood_ros.data.recordings import IN_DISTRIBUTION, open_recording
from leanood_ros.evaluation.recording_sets import resolve_dataset


def render(raw, name, n, value):
    d = raw / name
    d.mkdir(parents=True)
    for i in range(n):
        img = np.full((24, 32, 3), value, np.uint8)
        img[:, i % 32] = 255   # a moving column: frames differ
        cv2.imwrite(str(d / f'frame_{i:06d}.png'), img)
    (d / 'meta.json').write_text(json.dumps({'fps': 15}))


def test_explicit_plan_writes_labelled_bags_and_an_index(tmp_path):
    raw, out = tmp_path / 'raw', tmp_path / 'bags'
    seqs = [
        {'name': 'm_normal_0', 'map': 'm', 'frames': 6, 'seed': 1, 'split': 'train', 'role': 'id',
         'use': 'fit'},
        {'name': 'm_normal_1', 'map': 'm', 'frames': 6, 'seed': 2, 'split': 'test', 'role': 'id',
         'use': 'judge'},
        {'name': 'm_fog', 'map': 'm', 'frames': 6, 'seed': 3, 'split': 'test', 'role': 'ood',
         'use': 'judge', 'shift': 'fog', 'onset': 2},
        {'name': 'm_dr_lead', 'map': 'm', 'frames': 3, 'seed': 4, 'split': 'none',
         'role': 'lead_in'},
        {'name': 'm_domainrand', 'map': 'm', 'frames': 6, 'seed': 4, 'domain_rand': True,
         'split': 'test', 'role': 'ood', 'use': 'judge', 'shift': 'domainrand', 'onset': 3,
         'lead_in': 'm_dr_lead'},
    ]
    for s, value in zip(seqs, (60, 70, 80, 90, 200)):
        render(raw, s['name'], s['frames'], value)
    plan = tmp_path / 'plan.json'
    plan.write_text(json.dumps({'kind': 'explicit', 'jpeg_quality': 80,
                                'defaults': {'width': 32, 'height': 24}, 'sequences': seqs}))
    assert duckietown_dataset.main(['build', '--raw', str(raw), '--out', str(out),
                                    '--plan', str(plan)]) == 0
    index = json.loads((out / 'index.json').read_text())
    assert sorted(index) == ['m_domainrand', 'm_fog', 'm_normal_0', 'm_normal_1']
    assert index['m_fog'] == {'split': 'test', 'role': 'ood', 'shift': 'fog', 'map': 'm',
                              'place': 'm', 'use': 'judge', 'seed': 3, 'frames': 6, 'onset': 2,
                              'camera': {'width': 32, 'height': 24, 'jpeg_quality': 80}}
    with open_recording(out / 'm_fog') as rec:
        assert [f.label for f in rec] == [IN_DISTRIBUTION] * 2 + ['fog'] * 4
    with open_recording(out / 'm_domainrand') as rec:
        frames = list(rec)
    assert [f.label for f in frames] == [IN_DISTRIBUTION] * 3 + ['domainrand'] * 3
    # lead-in from the plain render, the rest from the randomised one (from the onset on)
    means = [float(f.image.pixels.mean()) for f in frames]
    assert max(means[:3]) < 120 < min(means[3:])
    sets = resolve_dataset(out, 'test')
    assert sets['fit'] == [out / 'm_normal_0'] and sets['id'] == [out / 'm_normal_1']
    assert sets['ood'] == [out / 'm_domainrand', out / 'm_fog']
