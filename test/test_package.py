"""Package hygiene: one version, docs in sync with code, runtime free of torch and training."""
import ast
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET

import leanood_ros
from leanood_ros.parameters import markdown_table
from ros_harness import REPO, ros_env

RUNTIME_DIRS = ('', 'nodes')   # the node's import closure lives here
# third-party module -> package.xml key that provides it
RUNTIME_DEPS = {'numpy': 'python3-numpy', 'cv2': 'python3-opencv',
                'onnxruntime': 'python3-onnxruntime-pip', 'rclpy': 'rclpy',
                'std_msgs': 'std_msgs', 'sensor_msgs': 'sensor_msgs',
                'diagnostic_msgs': 'diagnostic_msgs', 'geometry_msgs': 'geometry_msgs',
                'rcl_interfaces': 'rcl_interfaces',
                'ament_index_python': 'ament_index_python'}


def test_one_version_everywhere():
    xml_version = ET.parse(REPO / 'package.xml').getroot().find('version').text
    assert leanood_ros.__version__ == xml_version
    out = subprocess.run([sys.executable, 'setup.py', '--version'], cwd=REPO, capture_output=True,
                         text=True, env=ros_env(0))
    assert out.stdout.strip().splitlines()[-1] == xml_version


def test_readme_starts_with_the_two_commands_and_ci_runs_the_test_one():
    lines = (REPO / 'README.md').read_text().splitlines()
    block = lines[lines.index('```bash') + 1:lines.index('```bash') + 3]
    assert block[0].startswith('scripts/demo.sh') and block[1].startswith('scripts/test.sh')
    assert 'scripts/test.sh' in (REPO / '.ci' / 'run').read_text()


def test_readme_parameter_table_is_current():
    assert markdown_table() in (REPO / 'README.md').read_text(), \
        'regenerate with python -m leanood_ros.parameters'


def _imports(path):
    """Return the module-level imports.

    Imports inside functions are the optional, lazy ones: torch for the torch backend,
    albumentations for live shift injection.
    """
    tree = ast.parse(path.read_text())
    for node in tree.body:
        if isinstance(node, ast.Import):
            yield from (a.name.split('.')[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            yield node.module.split('.')[0]


def test_runtime_modules_import_only_declared_dependencies():
    declared = {e.text for e in ET.parse(REPO / 'package.xml').getroot().iter('exec_depend')}
    std = set(sys.stdlib_module_names)
    for d in RUNTIME_DIRS:
        for f in sorted((REPO / 'leanood_ros' / d).glob('*.py')):
            if f.name in ('demo.py', 'cli.py'):
                continue   # tools, not the node
            for mod in _imports(f):
                if mod in std or mod == 'leanood_ros':
                    continue
                assert mod in RUNTIME_DEPS, f'{f.name} imports undeclared {mod}'
                assert RUNTIME_DEPS[mod] in declared, f'{RUNTIME_DEPS[mod]} not in package.xml'


def test_onnx_path_never_imports_torch(tiny_bundle):
    code = textwrap.dedent(f"""
        import sys
        import numpy as np
        from leanood_ros.nodes import ood_monitor, camera_replay, collaborative_inference
        from leanood_ros.bundle import load_bundle
        from leanood_ros.detectors import build_detector
        from leanood_ros.image_conversion import from_array
        det = build_detector(load_bundle({str(tiny_bundle)!r}))
        det.infer(from_array(np.zeros((48, 64, 3), np.uint8)))
        bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision',
                     'sklearn', 'albumentations') or m.startswith('leanood_ros.training'))
        print('IMPORTED', bad)
    """)
    out = subprocess.run([sys.executable, '-c', code], cwd=REPO, capture_output=True, text=True,
                         env=ros_env(0))
    assert out.returncode == 0, out.stderr
    assert 'IMPORTED []' in out.stdout, out.stdout
