"""The shipped parameter files start the node with the values they say (real node processes)."""
from pathlib import Path
import shutil

import pytest
from rcl_interfaces.srv import GetParameters
import yaml

from ros_harness import Listener, REPO, RosProcess

pytestmark = pytest.mark.integration
CONFIG = REPO / 'config'


def yaml_params(path):
    data = yaml.safe_load(Path(path).read_text())
    return data['/**/ood_monitor']['ros__parameters']


@pytest.fixture
def models_dir(tmp_path, tiny_bundle):
    """Make a models/ folder whose vae_lean is the tiny test bundle."""
    shutil.copytree(tiny_bundle, tmp_path / 'models' / 'vae_lean')
    return tmp_path / 'models'


def get_params(lis, names, proc):
    cli = lis.node.create_client(GetParameters, '/ood_monitor/get_parameters')
    assert cli.wait_for_service(timeout_sec=30), proc.output()
    fut = cli.call_async(GetParameters.Request(names=names))
    assert lis.wait_for(fut.done, 10)
    vals = fut.result().values
    return {n: getattr(v, {1: 'bool_value', 2: 'integer_value', 3: 'double_value',
                           4: 'string_value'}[v.type]) for n, v in zip(names, vals)}


@pytest.mark.parametrize('profile', ['jetson_cpu.yaml'])
def test_vae_config_with_cpu_profile(models_dir, domain_id, tmp_path, profile):
    files = [CONFIG / 'vae.yaml', CONFIG / profile]
    expected = {**yaml_params(files[0]), **yaml_params(files[1])}
    args = [a for f in files for a in ('--params-file', str(f))]
    proc = RosProcess.node('leanood_ros.nodes.ood_monitor', args, domain_id,
                           tmp_path / 'node.log', LEANOOD_MODELS=str(models_dir))
    lis = Listener(domain_id)
    try:
        got = get_params(lis, list(expected), proc)
        assert got == expected
    finally:
        lis.close()
        assert proc.stop() == 0, proc.output()


def test_gpu_profile_refuses_to_fall_back_silently(models_dir, domain_id, tmp_path):
    import onnxruntime as ort
    if 'CUDAExecutionProvider' in ort.get_available_providers():
        pytest.skip('a GPU provider is installed here')
    args = ['--params-file', str(CONFIG / 'vae.yaml'), '--params-file',
            str(CONFIG / 'jetson_gpu.yaml')]
    proc = RosProcess.node('leanood_ros.nodes.ood_monitor', args, domain_id,
                           tmp_path / 'node.log', LEANOOD_MODELS=str(models_dir))
    assert proc.wait(30) == 2
    assert 'require_gpu is set' in proc.output()


def test_fastdds_profile_is_valid_xml_with_a_large_shm_segment():
    import xml.etree.ElementTree as ET
    root = ET.parse(CONFIG / 'fastdds_large_frames.xml').getroot()
    ns = {'d': 'http://www.eprosima.com'}
    seg = root.find('.//d:transport_descriptor/d:segment_size', ns)
    assert int(seg.text) >= 640 * 480 * 3 * 4
    assert root.find('.//d:useBuiltinTransports', ns).text == 'false'


def test_monitor_profile_is_the_large_frames_profile_with_a_segment_for_what_it_sends():
    """fastdds_monitor.xml differs in its segment and its writers (synchronous but one).

    The segment holds the largest monitor output; the forwarded split tensor and the overlay
    are sent asynchronously.
    """
    import json
    import xml.etree.ElementTree as ET
    import numpy as np
    from leanood_ros import overlay, parameters
    from leanood_ros.image_conversion import DecodedImage
    ns = {'d': 'http://www.eprosima.com'}

    def parts(name):
        root = ET.parse(CONFIG / name).getroot()
        seg = root.find('.//d:transport_descriptor/d:segment_size', ns)
        size = int(seg.text)
        seg.text = ''
        profiles = root.find('d:profiles', ns)
        modes = {}
        for pub in profiles.findall('d:publisher', ns):
            mode = pub.find('.//d:publishMode/d:kind', ns)
            modes[pub.get('profile_name')] = mode.text
            if pub.get('is_default_profile') == 'true':
                mode.text = ''
            else:   # a topic's own writer profile: compared by its mode alone
                profiles.remove(pub)
        for el in root.iter():   # names may differ, structure may not
            if el.tag.endswith('transport_id'):
                el.text = 'x'
            el.attrib.pop('profile_name', None)
            el.tail = (el.tail or '').strip()   # indentation is no structure
        return size, ET.tostring(root), modes

    large, large_xml, large_modes = parts('fastdds_large_frames.xml')
    small, small_xml, small_modes = parts('fastdds_monitor.xml')
    assert small_xml == large_xml
    assert small < large
    assert large_modes == {'leanood_writers': 'ASYNCHRONOUS'}
    # verdicts out at once (benchmarks/publish_mode); big outputs for another host off-thread
    assert small_modes == {'leanood_writers': 'SYNCHRONOUS', '/ood/features': 'ASYNCHRONOUS',
                           '/ood/overlay': 'ASYNCHRONOUS'}
    default_width = parameters.BY_NAME['overlay_width'].default
    frame = DecodedImage(np.zeros((480, 640, 3), np.uint8), 'rgb')
    biggest = overlay.render(frame, True, 1.0, 2.0, 'in distribution', [1.0], default_width).nbytes
    for manifest in (REPO / 'models').glob('*/bundle.json'):
        forward = json.loads(manifest.read_text()).get('forward') or {}
        biggest = max(biggest, int(forward.get('bytes', 0)))
    assert 0 < biggest < small // 2   # room for the CDR header and one more in flight
