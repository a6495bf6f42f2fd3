import pytest

from leanood_ros.cameras import camera_names, combine


def test_cameras_are_named_after_their_topics():
    assert camera_names(['/front/image_raw', 'robot/rear_cam/image/compressed', 'left']) == \
        ['front', 'robot_rear_cam', 'left']
    assert camera_names(['a/image', 'b/image'], ['x', 'y']) == ['x', 'y']


@pytest.mark.parametrize('topics,names,message', [
    (['image'], [], 'cannot name the camera'),
    (['a/image', 'a/image_raw'], [], "['a'] repeat"),
    (['a/image', 'b/image'], ['x'], '1 names for 2'),
    (['a/image'], ['1st'], 'must be a letter'),
    (['a-b/image'], [], 'must be a letter'),
])
def test_bad_camera_lists_are_refused_with_the_reason(topics, names, message):
    with pytest.raises(ValueError, match=message.replace('[', r'\[').replace(']', r'\]')):
        camera_names(topics, names)


def test_combined_verdict_is_safe_only_while_every_camera_is():
    assert combine({'front': (True, 'in distribution'), 'rear': (True, 'in distribution')}) == \
        (True, 'all 2 cameras in distribution')
    ok, reason = combine({'front': (True, 'in distribution'), 'rear': (False, 'stale input'),
                          'left': (False, 'frozen camera')})
    assert not ok and reason == 'rear: stale input; left: frozen camera'
    assert combine({}) == (False, 'no camera')
