"""--fit/--calib/--id/--ood and --dataset: the one way every tool takes recordings."""
import argparse
import json
import shutil

import cv2
import numpy as np
import pytest

from leanood_ros.data.bag_writer import BagWriter
from leanood_ros.data.recordings import RecordingError
from leanood_ros.evaluation.recording_sets import (add_recording_args, expand, recording_sets,
                                                   resolve_dataset)


def frame(i):
    return np.full((24, 32, 3), (i * 20, 90, 180), np.uint8)


def make_bag(path, n=3):
    with BagWriter(path) as w:
        for i in range(n):
            w.write(frame(i), 10**9 + i * 10**8, 'in_distribution')
    return path


def make_folder(path, n=3):
    path.mkdir(parents=True)
    for i in range(n):
        cv2.imwrite(str(path / f'{i:03d}.png'), frame(i))
    return path


def make_video(path, n=3):
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'MJPG'), 10, (32, 24))
    for i in range(n):
        vw.write(frame(i))
    vw.release()
    return path


def parser(**kw):
    ap = argparse.ArgumentParser(prog='tool')
    add_recording_args(ap, **kw)
    ap.add_argument('--split', default='test')
    return ap


def test_each_kind_and_a_parent_folder_expanded_sorted(tmp_path):
    bag = make_bag(tmp_path / 'bag')
    folder = make_folder(tmp_path / 'images')
    video = make_video(tmp_path / 'clip.avi')
    parent = tmp_path / 'site'
    make_bag(parent / 'b_bag')
    make_folder(parent / 'a_images')
    make_video(parent / 'c.avi')
    (parent / 'notes.txt').write_text('not a recording, ignored inside a parent folder')
    (parent / 'c.avi.labels.csv').write_text('frame,ood\n0,0\n')
    mcap = next(bag.glob('*.mcap'))
    ap = parser()
    a = ap.parse_args(['--fit', str(bag), str(folder), '--calib', str(video), str(mcap),
                       '--id', str(parent)])
    sets = recording_sets(a, ap)
    assert sets['fit'] == [bag, folder]
    assert sets['calib'] == [video, mcap]
    assert sets['id'] == [parent / 'a_images', parent / 'b_bag', parent / 'c.avi']
    assert sets['ood'] == []


@pytest.mark.parametrize('setup,message', [
    (lambda p: p / 'missing', r'--ood .*missing: no such file or folder'),
    (lambda p: (p / 'empty').mkdir() or p / 'empty',
     r'--ood .*empty: no recordings in this folder'),
    (lambda p: (p / 'x.txt').write_text('hi') and p / 'x.txt', r'--ood .*x\.txt: not a recording'),
    (lambda p: (p / 'x.avi').write_bytes(b'junk') and p / 'x.avi', r'--ood .*x\.avi: OpenCV'),
    (lambda p: (p / 'x.mcap').write_bytes(b'junk') and p / 'x.mcap',
     r'--ood .*cannot read rosbag2'),
])
def test_bad_paths_are_one_line_errors(tmp_path, setup, message):
    with pytest.raises(RecordingError, match=message) as info:
        expand([setup(tmp_path)], 'ood')
    assert '\n' not in str(info.value)


def test_parser_error_exits_2_naming_the_argument(tmp_path, capsys):
    ap = parser()
    a = ap.parse_args(['--calib', str(tmp_path / 'nope')])
    with pytest.raises(SystemExit) as info:
        recording_sets(a, ap)
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith('tool: error: --calib') and 'no such file or folder' in err


def write_dataset(root):
    entries = {
        'train/a': ('train', 'id', None), 'calib/c': ('calib', 'id', None),
        'val/v': ('val', 'id', None), 'val/v_newmap': ('val', 'id_newmap', None),
        'val/rain__v': ('val', 'id', 'rain'), 'test/t': ('test', 'id', None),
        'test/t_newmap': ('test', 'id_newmap', None), 'test/fog__t': ('test', 'id', 'fog'),
        'test/domainrand__t': ('test', 'domainrand', 'domainrand'),
    }
    index = {}
    for rel, (split, role, shift) in entries.items():
        make_bag(root / rel)
        index[rel] = {'split': split, 'role': role, 'shift': shift, 'map': 'm', 'frames': 3,
                      'onset': None if shift is None else 1}
    (root / 'index.json').write_text(json.dumps(index))


def test_dataset_roles_and_explicit_lists_win(tmp_path):
    root = tmp_path / 'bags'
    write_dataset(root)
    sets = resolve_dataset(root, 'test')
    assert sets['fit'] == [root / 'train/a']
    assert sets['calib'] == [root / 'calib/c', root / 'val/v_newmap']
    assert sets['id'] == [root / 'test/t', root / 'test/t_newmap']
    assert sets['ood'] == [root / 'test/domainrand__t', root / 'test/fog__t']
    own = make_folder(tmp_path / 'mine')
    ap = parser()
    sets = recording_sets(ap.parse_args(['--dataset', str(root), '--id', str(own)]), ap)
    assert sets['id'] == [own] and sets['fit'] == [root / 'train/a']
    assert recording_sets(ap.parse_args(['--dataset', str(root), '--split', 'val']), ap)['ood'] \
        == [root / 'val/rain__v']


def test_dataset_without_index_is_an_error(tmp_path, capsys):
    ap = parser()
    with pytest.raises(SystemExit):
        recording_sets(ap.parse_args(['--dataset', str(tmp_path)]), ap)
    assert 'no index.json' in capsys.readouterr().err


def test_dataset_split_and_recordings_are_checked(tmp_path):
    root = tmp_path / 'bags'
    write_dataset(root)
    with pytest.raises(RecordingError,
                       match=r"no split 'tset' \(splits: calib, test, train, val\)"):
        resolve_dataset(root, 'tset')
    shutil.rmtree(root / 'val/v')
    with pytest.raises(RecordingError, match=r'lists 1 recordings that are not there \(val/v,'):
        resolve_dataset(root, 'test')


def test_labels_must_fit_the_role(tmp_path):
    normal = make_bag(tmp_path / 'normal')
    shifted = tmp_path / 'shifted'
    with BagWriter(shifted) as w:
        for i, label in enumerate(['in_distribution', 'rain', 'rain']):
            w.write(frame(i), 10**9 + i * 10**8, label)
    unlabelled = make_folder(tmp_path / 'unlabelled')
    assert expand([normal, unlabelled], 'calib') == [normal, unlabelled]
    assert expand([shifted, unlabelled], 'ood') == [shifted, unlabelled]
    with pytest.raises(RecordingError,
                       match=r'--fit .*shifted: 2 frames are labelled OOD \(rain\)'):
        expand([shifted], 'fit')
    with pytest.raises(RecordingError, match=r'--ood .*normal: every labelled frame is in_distri'):
        expand([normal], 'ood')
