"""The managed (lifecycle) monitor, driven through its lifecycle services.

From this test's process, with frames and verdicts over DDS.
"""
import shutil
import signal
import time

from diagnostic_msgs.msg import DiagnosticArray
from lifecycle_msgs.msg import State, Transition
from lifecycle_msgs.srv import ChangeState, GetState
import numpy as np
import pytest
from sensor_msgs.msg import Image
from std_msgs.msg import Bool

from bundle_factory import id_frame
from ros_harness import Listener, NEEDS_EVENTS_EXECUTOR, REPO, RosProcess

pytestmark = pytest.mark.integration
MANAGED = 'leanood_ros.nodes.managed_ood_monitor'


@pytest.fixture
def listener(domain_id):
    lis = Listener(domain_id)
    lis.subscribe(Bool, 'ood/is_safe', latched=True, depth=1000)
    lis.subscribe(DiagnosticArray, 'ood/status', depth=1000)
    lis.subscribe(DiagnosticArray, '/diagnostics', depth=1000)
    yield lis
    lis.close()


class Lifecycle:
    def __init__(self, lis, mon):
        self.lis, self.mon = lis, mon
        self.change = lis.node.create_client(ChangeState, '/ood_monitor/change_state')
        self.get = lis.node.create_client(GetState, '/ood_monitor/get_state')
        assert self.change.wait_for_service(timeout_sec=30), mon.output()

    def _call(self, cli, req):
        fut = cli.call_async(req)
        assert self.lis.wait_for(fut.done, 30), self.mon.output()
        return fut.result()

    def state(self):
        return self._call(self.get, GetState.Request()).current_state.id

    def transition(self, transition_id):
        return self._call(self.change, ChangeState.Request(
            transition=Transition(id=transition_id))).success


def send_frames(lis, cam, seconds, rng):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        msg = Image(height=120, width=160, encoding='rgb8', step=480)
        msg.data = id_frame(rng).tobytes()
        msg.header.stamp = lis.node.get_clock().now().to_msg()
        cam.publish(msg)
        time.sleep(0.05)


def topic_endpoints(lis, topic):
    return (len(lis.node.get_publishers_info_by_topic(topic)),
            len(lis.node.get_subscriptions_info_by_topic(topic)))


def last_reason(lis):
    msgs = lis.get('/diagnostics')
    return msgs[-1][1].status[0].message if msgs else None


# README "QoS trade-off": the big-frame set-up goes into the monitor's environment only
PROFILE = REPO / 'config' / 'fastdds_large_frames.xml'
MONITOR_BIG_FRAMES = {'FASTDDS_DEFAULT_PROFILES_FILE': str(PROFILE),
                      'RMW_FASTRTPS_USE_QOS_FROM_XML': '1'}


@pytest.mark.parametrize('env,executor', [
    pytest.param({}, 'single_threaded', id='stock'),
    pytest.param(MONITOR_BIG_FRAMES, 'single_threaded', id='big-frame set-up'),
    pytest.param({}, 'events', id='events executor', marks=NEEDS_EVENTS_EXECUTOR)])
def test_transitions_from_another_process(tiny_bundle, domain_id, tmp_path, listener, env,
                                          executor):
    mon = RosProcess.node(MANAGED, ['-p', f'model:={tiny_bundle}', '-p', 'autostart:=false',
                                    '-p', f'executor:={executor}'],
                          domain_id, tmp_path / 'managed.log', **env)
    lis, rng = listener, np.random.default_rng(0)
    cam = lis.node.create_publisher(Image, 'image', 10)
    try:
        lc = Lifecycle(lis, mon)
        assert lc.state() == State.PRIMARY_STATE_UNCONFIGURED
        assert topic_endpoints(lis, '/ood/is_safe')[0] == 0      # nothing loaded yet
        # configure: bundle loaded and warmed up, publishers up, unsafe because inactive
        assert lc.transition(Transition.TRANSITION_CONFIGURE)
        assert lc.state() == State.PRIMARY_STATE_INACTIVE
        assert lis.wait_for(lambda: lis.get('ood/is_safe'), 10)
        assert lis.get('ood/is_safe')[-1][1].data is False
        assert lis.wait_for(lambda: last_reason(lis) == 'inactive', 5)
        assert topic_endpoints(lis, '/image')[1] == 0             # not subscribed while inactive
        # activate: subscribes and judges
        assert lc.transition(Transition.TRANSITION_ACTIVATE)
        assert lis.wait_for(lambda: cam.get_subscription_count() > 0, 10)
        send_frames(lis, cam, 1.0, rng)
        assert lis.wait_for(lambda: lis.get('ood/is_safe')[-1][1].data is True, 5)
        # deactivate: unsafe with reason "inactive", stops judging, unsubscribes
        assert lc.transition(Transition.TRANSITION_DEACTIVATE)
        assert lis.get('ood/is_safe')[-1][1].data is False
        assert lis.wait_for(lambda: last_reason(lis) == 'inactive', 5)
        assert lis.wait_for(lambda: cam.get_subscription_count() == 0, 5)
        judged = len(lis.get('ood/status'))
        send_frames(lis, cam, 0.5, rng)
        time.sleep(0.3)
        assert len(lis.get('ood/status')) == judged
        assert not lis.get('ood/is_safe')[-1][1].data
        # activate again: judging resumes, from "waiting for the first frame"
        assert lc.transition(Transition.TRANSITION_ACTIVATE)
        assert lis.wait_for(lambda: cam.get_subscription_count() > 0, 10)
        send_frames(lis, cam, 1.0, rng)
        assert lis.wait_for(lambda: len(lis.get('ood/status')) > judged, 5)
        assert lis.wait_for(lambda: lis.get('ood/is_safe')[-1][1].data is True, 5)
        # deactivate + cleanup: everything released
        assert lc.transition(Transition.TRANSITION_DEACTIVATE)
        assert lc.transition(Transition.TRANSITION_CLEANUP)
        assert lc.state() == State.PRIMARY_STATE_UNCONFIGURED
        assert lis.wait_for(lambda: topic_endpoints(lis, '/ood/is_safe')[0] == 0, 5)
        assert lis.get('ood/is_safe')[-1][1].data is False
        # configure again after cleanup works; then shutdown
        assert lc.transition(Transition.TRANSITION_CONFIGURE)
        assert lc.transition(Transition.TRANSITION_INACTIVE_SHUTDOWN)
        assert lc.state() == State.PRIMARY_STATE_FINALIZED
        assert lis.wait_for(lambda: topic_endpoints(lis, '/ood/is_safe')[0] == 0, 5)
    finally:
        assert mon.stop(signal.SIGTERM) == 0, mon.output()


def test_autostart_judges_at_once(tiny_bundle, domain_id, tmp_path, listener):
    mon = RosProcess.node(MANAGED, ['-p', f'model:={tiny_bundle}'], domain_id,
                          tmp_path / 'managed.log')
    cam = listener.node.create_publisher(Image, 'image', 10)
    try:
        assert Lifecycle(listener, mon).state() == State.PRIMARY_STATE_ACTIVE
        assert listener.wait_for(lambda: cam.get_subscription_count() > 0, 10)
        send_frames(listener, cam, 1.0, np.random.default_rng(1))
        assert listener.wait_for(lambda: listener.get('ood/is_safe')[-1][1].data is True, 5)
    finally:
        assert mon.stop(signal.SIGINT) == 0, mon.output()
    assert listener.wait_for(lambda: listener.get('ood/is_safe')[-1][1].data is False, 2)


def test_a_bad_bundle_fails_configure_or_start_up(tiny_bundle, domain_id, tmp_path, listener):
    bundle = tmp_path / 'bundle'
    shutil.copytree(tiny_bundle, bundle)
    data = bytearray((bundle / 'encoder.onnx').read_bytes())
    data[len(data) // 2] ^= 0xFF
    (bundle / 'encoder.onnx').write_bytes(bytes(data))
    auto = RosProcess.node(MANAGED, ['-p', f'model:={bundle}'], domain_id, tmp_path / 'auto.log')
    assert auto.wait(30) == 2
    assert 'cannot start' in auto.output() and 'sha256' in auto.output()
    auto.stop()
    mon = RosProcess.node(MANAGED, ['-p', f'model:={bundle}', '-p', 'autostart:=false'],
                          domain_id, tmp_path / 'managed.log')
    try:
        lc = Lifecycle(listener, mon)
        assert not lc.transition(Transition.TRANSITION_CONFIGURE)
        assert lc.state() == State.PRIMARY_STATE_UNCONFIGURED and mon.proc.poll() is None
        assert 'cannot configure' in mon.output()
    finally:
        assert mon.stop() == 0, mon.output()
