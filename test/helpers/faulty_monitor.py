"""`ood_monitor` with faults injected into its judging path, for test_reliability_node.

    python test/helpers/faulty_monitor.py --ros-args -p model:=...

A raw frame whose data starts with b'RAISE' makes decoding raise RuntimeError (an exception no
decoder is supposed to raise), b'HANG' makes it block for 1.5 s (a stuck judging thread), b'DIE'
raises a BaseException that the judging path does not catch, so the thread ends; a frame with
frame_id 'fail_publish' makes publishing its verdict raise.  Everything else is the real node.
"""
import sys
import time

from leanood_ros.nodes import ood_monitor


class InjectedThreadDeath(BaseException):
    pass


def decode_raw(encoding, height, width, step, is_bigendian, data):
    head = bytes(data[:5])
    if head.startswith(b'RAISE'):
        raise RuntimeError('injected fault in decoding')
    if head.startswith(b'HANG'):
        time.sleep(1.5)
    if head.startswith(b'DIE'):
        raise InjectedThreadDeath('injected: the judging thread ends')
    return real_decode_raw(encoding, height, width, step, is_bigendian, data)


def publish_verdict(self, camera, header, *args):
    if header.frame_id == 'fail_publish':
        raise RuntimeError('injected fault in publishing')
    return real_publish_verdict(self, camera, header, *args)


real_decode_raw, ood_monitor.decode_raw = ood_monitor.decode_raw, decode_raw
real_publish_verdict = ood_monitor.MonitorShell._publish_verdict
ood_monitor.MonitorShell._publish_verdict = publish_verdict

if __name__ == '__main__':
    sys.exit(ood_monitor.main())
