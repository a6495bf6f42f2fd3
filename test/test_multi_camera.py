"""Integration: two camera processes -> one ood_monitor (`image_topics`) -> this test, over DDS."""
from diagnostic_msgs.msg import DiagnosticArray
import pytest
from std_msgs.msg import Bool

from ros_harness import Listener, RosProcess

pytestmark = pytest.mark.integration
CAMERA = ['test/helpers/synthetic_camera.py']
TOPICS = ('ood/is_safe', 'ood/front/is_safe', 'ood/rear/is_safe')


def last(lis, topic):
    msgs = lis.get(topic)
    return msgs[-1][1].data if msgs else None


def statuses(lis) -> dict:
    """Return the newest /diagnostics of the monitor: {status name: message}."""
    msgs = lis.get('/diagnostics')
    return {s.name: s.message for s in msgs[-1][1].status} if msgs else {}


def test_each_camera_is_judged_on_its_own_and_the_combined_flag_tells_the_worst(
        tiny_bundle, domain_id, tmp_path):
    lis = Listener(domain_id)
    for topic in TOPICS:
        lis.subscribe(Bool, topic, latched=True, depth=1000)
    lis.subscribe(DiagnosticArray, '/diagnostics', depth=100)
    mon = RosProcess.node('leanood_ros.nodes.ood_monitor', [
        '-p', f'model:={tiny_bundle}', '-p', 'image_topics:=[front/image_raw, rear/image_raw]'],
        domain_id, tmp_path / 'monitor.log')
    # front: normal for 10 s, then its process ends (stale); rear, started once the front is
    # judged safe (so that its 2 s before the shift overlap the front's normal frames)
    front = RosProcess([*CAMERA, '--topic', 'front/image_raw', '--scenario', 'id:200'],
                       domain_id, tmp_path / 'front.log')
    rear = None
    try:
        def logs():
            return ''.join(p.output() for p in (mon, front, rear) if p is not None)
        assert lis.wait_for(lambda: last(lis, 'ood/front/is_safe'), 30), logs()
        assert last(lis, 'ood/is_safe') is False    # the rear camera has not sent a frame yet
        rear = RosProcess([*CAMERA, '--topic', 'rear/image_raw', '--scenario', 'id:40,ood:400'],
                          domain_id, tmp_path / 'rear.log')
        # both cameras normal: every flag true
        assert lis.wait_for(lambda: all(last(lis, t) for t in TOPICS), 30), logs()
        # the rear camera's shift: its flag and the combined one false, the front's still true
        assert lis.wait_for(lambda: last(lis, 'ood/rear/is_safe') is False
                            and last(lis, 'ood/is_safe') is False
                            and last(lis, 'ood/front/is_safe') is True, 20), logs()
        assert lis.wait_for(lambda: statuses(lis).get('ood_monitor: OOD monitor', '')
                            .startswith('rear: out of distribution'), 5), statuses(lis)
        combined = statuses(lis)['ood_monitor: OOD monitor']
        assert 'front' not in combined, combined
        # the front camera stops: stale on its own, named in the combined reason
        assert front.wait(30) == 0, front.output()
        assert lis.wait_for(lambda: last(lis, 'ood/front/is_safe') is False, 3), logs()
        assert lis.wait_for(lambda: 'front: stale input' in statuses(lis).get(
            'ood_monitor: OOD monitor', ''), 5), statuses(lis)
        assert 'stale input' in statuses(lis)['ood_monitor: OOD monitor (front)']
    finally:
        lis.close()
        if rear is not None:
            rear.proc.kill()   # a test helper, still playing its shift
        front.stop()
        code = mon.stop()
    assert code == 0, mon.output()


@pytest.mark.parametrize('extra,message', [
    (['image_topics:=[a/image, b/image]', 'camera_names:=[x]'], '1 names for 2 image_topics'),
    (['image_topics:=[image, image/compressed]'], 'cannot name the camera'),
    (['image_topics:=[a/image, b/image]', 'overlay_rate:=5.0'], 'need one camera'),
])
def test_bad_camera_lists_refuse_to_start(tiny_bundle, domain_id, tmp_path, extra, message):
    mon = RosProcess.node('leanood_ros.nodes.ood_monitor', [
        '-p', f'model:={tiny_bundle}', *[a for kv in extra for a in ('-p', kv)]],
        domain_id, tmp_path / 'monitor.log')
    assert mon.wait(60) == 2, mon.output()
    assert message in mon.output() and 'Traceback' not in mon.output(), mon.output()
