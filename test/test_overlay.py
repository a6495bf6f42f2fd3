"""The `ood/overlay` image: rendering (pure) and the node publishing it over DDS only if asked."""
import signal
import time

import numpy as np
import pytest
from sensor_msgs.msg import Image

from bundle_factory import id_frame, ood_frame
from leanood_ros import overlay
from leanood_ros.image_conversion import from_array
from ros_harness import Listener, RosProcess

FRAME = from_array(np.full((120, 160, 3), 90, np.uint8), 'rgb')


@pytest.mark.parametrize('is_safe,colour', [(True, overlay.SAFE_RGB), (False, overlay.UNSAFE_RGB)])
def test_render_border_text_and_history(is_safe, colour):
    img = overlay.render(FRAME, is_safe, 12.5, 10.0, 'in distribution', [1.0, 5.0, 12.5, 30.0],
                         width=320)
    assert img.shape == (240 + overlay.STRIP, 320, 3) and img.dtype == np.uint8
    for edge in (img[0], img[-1], img[:, 0], img[:, -1]):
        assert (edge == colour).all()
    assert (img[100:200, 100:200] == 90).all()                  # the frame itself, scaled
    strip = img[240:, overlay.BORDER:-overlay.BORDER]
    assert (strip == 255).any()                                 # the history line


def test_render_copes_with_nan_scores_and_mono_frames():
    mono = from_array(np.zeros((30, 40), np.uint8), 'mono')
    img = overlay.render(mono, False, float('nan'), float('inf'), 'x' * 500, [float('nan')], 64)
    assert img.shape == (48 + overlay.STRIP, 64, 3)


def border_colour(msg):
    img = np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.width, 3)
    return tuple(int(c) for c in img[2, msg.width // 2])


@pytest.mark.integration
def test_node_publishes_overlay_only_when_enabled(tiny_bundle, domain_id, tmp_path):
    lis = Listener(domain_id)
    lis.subscribe(Image, 'ood/overlay', depth=100)
    cam = lis.node.create_publisher(Image, 'image', 10)
    off = RosProcess.node('leanood_ros.nodes.ood_monitor', ['-p', f'model:={tiny_bundle}'],
                          domain_id, tmp_path / 'off.log')
    try:
        assert lis.wait_for(lambda: cam.get_subscription_count() > 0, 30), off.output()
        assert not lis.node.get_publishers_info_by_topic('/ood/overlay')   # zero cost when off
    finally:
        assert off.stop(signal.SIGTERM) == 0
    on = RosProcess.node('leanood_ros.nodes.ood_monitor',
                         ['-p', f'model:={tiny_bundle}', '-p', 'overlay_rate:=5.0',
                          '-p', 'fusion:=none', '-p', 'recovery_frames:=0'],
                         domain_id, tmp_path / 'on.log')
    rng = np.random.default_rng(0)
    try:
        assert lis.wait_for(lambda: cam.get_subscription_count() > 0 and
                            lis.node.get_publishers_info_by_topic('/ood/overlay'), 30), \
            on.output()
        time.sleep(0.5)
        for kind in ('id', 'ood'):
            t0 = time.monotonic()
            end = t0 + 1.5
            while time.monotonic() < end:
                px = id_frame(rng) if kind == 'id' else ood_frame(rng)
                msg = Image(height=120, width=160, encoding='rgb8', step=480)
                msg.data = px.tobytes()
                msg.header.stamp = lis.node.get_clock().now().to_msg()
                cam.publish(msg)
                time.sleep(0.05)
            got = [m for t, m in lis.get('ood/overlay') if t > t0 + 0.3]
            assert 3 <= len(got) <= 1.5 * 5 + 2, len(got)      # throttled to overlay_rate
            assert (got[-1].width, got[-1].height) == (320, 240 + overlay.STRIP)
            assert border_colour(got[-1]) == (overlay.SAFE_RGB if kind == 'id' else
                                              overlay.UNSAFE_RGB)
    finally:
        assert on.stop(signal.SIGTERM) == 0, on.output()
        lis.close()
