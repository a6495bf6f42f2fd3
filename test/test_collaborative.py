"""Integration: camera_replay -> ood_monitor (EARLIN edge) -> collaborative_inference (cloud).

Real processes over DDS, with the shipped earlin_lite0 bundle and the shipped sample recording.
"""
from pathlib import Path

from diagnostic_msgs.msg import DiagnosticArray
import pytest
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from bundle_factory import edit_manifest, replace_file
from ros_harness import Listener, RosProcess

REPO = Path(__file__).resolve().parent.parent
SHIPPED = REPO / 'models' / 'earlin_lite0'
pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not (SHIPPED / 'bundle.json').is_file(),
                                 reason='earlin_lite0 not built')]


def stamp(h):
    return (h.stamp.sec, h.stamp.nanosec)


def test_only_in_distribution_frames_are_forwarded_and_predictions_come_back(domain_id,
                                                                             tmp_path):
    lis = Listener(domain_id)
    # this listener also takes the camera images, so the replay (waiting for 2 subscribers)
    # starts only once it is connected and no label is missed
    for t, topic in ((Image, 'image'), (Image, 'ood/features'),
                     (DiagnosticArray, 'ood/prediction'),
                     (Header, 'camera_replay/label'), (DiagnosticArray, 'ood/status'),
                     (DiagnosticArray, '/diagnostics')):
        lis.subscribe(t, topic, depth=1000)
    cloud = RosProcess.node('leanood_ros.nodes.collaborative_inference',
                            ['-p', f'model:={SHIPPED}'], domain_id, tmp_path / 'cloud.log')
    edge = RosProcess.node('leanood_ros.nodes.ood_monitor',
                           ['-p', f'model:={SHIPPED}', '-p', 'forward_features:=true',
                            '-p', 'detector:=earlin'], domain_id, tmp_path / 'edge.log')
    try:
        # start the camera only once the listener sees both nodes' endpoints, so no status,
        # forwarded tensor or prediction is published before anyone can hear it
        assert lis.wait_for(lambda: lis.node.count_publishers('ood/status') >= 1
                            and lis.node.count_publishers('ood/prediction') >= 1
                            and lis.node.count_subscribers('ood/features') >= 2, 60), \
            edge.output() + cloud.output()
        replay = RosProcess.node('leanood_ros.nodes.camera_replay',
                                 ['-p', 'recording:=sample', '-p', 'wait_for_subscribers:=2',
                                  '-p', 'rate:=10.0'], domain_id, tmp_path / 'replay.log')
        assert replay.wait(120) == 0, replay.output() + edge.output()
        labels = {stamp(m): m.frame_id for _, m in lis.get('camera_replay/label')}
        n_id = sum(v == 'in_distribution' for v in labels.values())
        assert lis.wait_for(lambda: len(lis.get('ood/prediction')) >= 0.8 * n_id, 10), \
            (n_id, len(lis.get('ood/prediction')), len(lis.get('ood/features')),
             len(lis.get('ood/status')), cloud.output())
        forwarded = [stamp(m.header) for _, m in lis.get('ood/features')]
        predicted = [stamp(m.header) for _, m in lis.get('ood/prediction')]
        kinds = [labels[s] for s in forwarded]
        assert kinds and set(kinds) == {'in_distribution'}, kinds   # no rain frame forwarded
        # exactly the frames judged ID on their own while the state was safe are forwarded
        judged = {}
        for _, m in lis.get('ood/status'):
            kv = {v.key: v.value for v in m.status[0].values}
            judged[stamp(m.header)] = kv['is_safe'] == 'True' and kv['frame_ood'] == 'False'
        assert sorted(forwarded) == sorted(s for s, ok in judged.items() if ok)
        assert len(forwarded) >= 0.8 * n_id                          # most ID frames are
        assert sorted(predicted) == sorted(forwarded)                # stamped predictions back
        pred = lis.get('ood/prediction')[0][1].status[0]
        values = {kv.key: kv.value for kv in pred.values}
        assert 0.0 < float(values['confidence']) <= 1.0 and int(values['class_id']) < 1000
        feat = lis.get('ood/features')[0][1]
        assert feat.encoding.startswith('16FC') and feat.header.frame_id == 'camera'

        def edge_diag():
            for _, m in reversed(lis.get('/diagnostics')):
                kv = {v.key: v.value for v in m.status[0].values}
                if 'frames_withheld' in kv:
                    return kv
            return {}

        def accounted():   # every judged frame is counted as forwarded or withheld
            d = edge_diag()
            fwd, held = int(d.get('frames_forwarded', -1)), int(d.get('frames_withheld', -1))
            return fwd == len(forwarded) and fwd + held == len(judged)
        assert lis.wait_for(accounted, 5), (edge_diag(), len(forwarded), len(judged))
        d = edge_diag()
        assert len(judged) >= 0.9 * len(labels)                      # (a few may be skipped)
        assert int(d['frames_withheld']) >= sum(labels[s] == 'rain' for s in judged)
        assert int(d['bytes_saved']) == int(d['frames_withheld']) * len(feat.data)
    finally:
        lis.close()
        assert edge.stop() == 0, edge.output()
        assert cloud.stop() == 0, cloud.output()


def failing_cloud_bundle(directory: Path) -> Path:
    """earlin_lite0 whose cloud graph fails at run time for tensors whose maximum is negative.

    ConstantOfShape([1, max(x)]): a real onnxruntime error ("shape size must be >= 0") for
    some inputs and a normal (1, n) output for others - no mock anywhere.
    """
    import json
    import shutil
    from onnx import helper as h, TensorProto as T
    shutil.copytree(SHIPPED, directory)
    shape = json.loads((directory / 'bundle.json').read_text())['forward']['shape']
    nodes = [h.make_node('ReduceMax', ['split'], ['m'], keepdims=0),
             h.make_node('Cast', ['m'], ['n'], to=T.INT64),
             h.make_node('Reshape', ['n', 'one'], ['n1']),
             h.make_node('Concat', ['one', 'n1'], ['shape'], axis=0),
             h.make_node('ConstantOfShape', ['shape'], ['probabilities'],
                         value=h.make_tensor('v', T.FLOAT, [1], [0.25]))]
    graph = h.make_graph(nodes, 'failing_cloud',
                         [h.make_tensor_value_info('split', T.FLOAT, shape)],
                         [h.make_tensor_value_info('probabilities', T.FLOAT, [1, None])],
                         initializer=[h.make_tensor('one', T.INT64, [1], [1])])
    model = h.make_model(graph, opset_imports=[h.make_opsetid('', 13)], ir_version=8)
    replace_file(directory, 'cloud.onnx', model.SerializeToString(),
                 lambda m: m['graphs']['cloud'])
    return directory


def test_a_failing_cloud_inference_is_counted_reported_and_survived(domain_id, tmp_path):
    import numpy as np
    from leanood_ros.nodes.ros_common import forwarded_tensor_message
    bundle = failing_cloud_bundle(tmp_path / 'failing')
    shape = (1, 16, 112, 112)
    lis = Listener(domain_id)
    lis.subscribe(DiagnosticArray, 'ood/prediction', depth=100)
    lis.subscribe(DiagnosticArray, '/diagnostics', depth=100)
    pub = lis.node.create_publisher(Image, 'ood/features', 10)
    cloud = RosProcess.node('leanood_ros.nodes.collaborative_inference',
                            ['-p', f'model:={bundle}'], domain_id, tmp_path / 'cloud.log')

    def cloud_diag():
        for _, m in reversed(lis.get('/diagnostics')):
            kv = {v.key: v.value for v in m.status[0].values}
            if 'inference_errors' in kv:
                return m.status[0], kv
        return None, {}
    try:
        assert lis.wait_for(lambda: pub.get_subscription_count() >= 1, 60), cloud.output()
        good = []
        for value in [3.0, -2.0, -5.0, -1.0, 4.0]:   # 3 bad tensors among good ones
            header = Header(frame_id='camera', stamp=lis.node.get_clock().now().to_msg())
            if value > 0:
                good.append(stamp(header))
            pub.publish(forwarded_tensor_message(header, np.full(shape, value), 'float16'))
        assert lis.wait_for(lambda: cloud_diag()[1].get('inference_errors') == '3'
                            and cloud_diag()[1].get('tensors_received') == '2', 20), \
            (cloud_diag(), cloud.output())
        status, _ = cloud_diag()
        assert status.level == status.ERROR and 'ConstantOfShape' in status.message, status
        # the node lives on: both good tensors were answered, with their own stamps
        assert sorted(stamp(m.header) for _, m in lis.get('ood/prediction')) == sorted(good)
        assert cloud.proc.poll() is None
        # a report period without new errors is OK again
        assert lis.wait_for(lambda: cloud_diag()[0].level == status.OK, 5), cloud_diag()
    finally:
        lis.close()
        assert cloud.stop() == 0, cloud.output()


@pytest.mark.parametrize('shape,message', [([1, 8, 112, 112], 'does not fit the cloud graph'),
                                           ('16x112x112', 'forward.shape')])
def test_a_forward_shape_the_cloud_graph_cannot_take_refuses_to_start(domain_id, tmp_path,
                                                                      shape, message):
    import shutil
    bundle = tmp_path / 'b'
    shutil.copytree(SHIPPED, bundle)
    edit_manifest(bundle, lambda m: m['forward'].update(shape=shape))
    cloud = RosProcess.node('leanood_ros.nodes.collaborative_inference',
                            ['-p', f'model:={bundle}'], domain_id, tmp_path / 'cloud.log')
    assert cloud.wait(60) == 2, cloud.output()
    out = cloud.output()
    assert message in out and 'Traceback' not in out, out
