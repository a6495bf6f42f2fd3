"""`leanood bench big_frames`: big JPEG frames, the node at 1080p/4K and its memory, in one run.

    leanood bench big_frames --out benchmarks/big_frames [--seconds 10]

Decode: decode + preprocessing per frame of the rain sample upscaled to each size, raw rgb8,
JPEG at full size and JPEG at the reduced scale `Preprocessing.min_decode_size` allows, in
interleaved rounds.  Score drift: how far a reduced decode moves the scores of vae_lean and
earlin_lite0 with their shipped (linear) and with area resizing, per scale: the data the 8x
margin was chosen from.  Node: `bench node` over DDS at each size, raw and JPEG.  Memory: what the
ONNX Runtime CPU arena and memory patterns cost per bundle (RSS and inference time side by
side, each in a process of its own) and what the node's imports cost.
"""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
import subprocess
import sys
import time

import cv2
import numpy as np

from .bench import _env, _pct, bench_node, lost, machine, publish, REPO

SIZES = ((640, 480), (1280, 720), (1920, 1080), (3840, 2160))
SCALES = (2, 4, 8)
JPEG_QUALITY = 90


def _sample_bgr(count: int) -> list:
    from ..data.recordings import open_recording
    from ..image_conversion import to_rgb
    from ..nodes.camera_replay import sample_recording
    with open_recording(sample_recording()) as rec:
        frames = [to_rgb(f.image)[..., ::-1] for f in rec]
    return [frames[i] for i in np.linspace(0, len(frames) - 1, count).astype(int)]


def _jpeg(bgr, size) -> bytes:
    big = cv2.resize(bgr, size, interpolation=cv2.INTER_CUBIC)
    return cv2.imencode('.jpg', big, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])[1].tobytes()


def bench_decode(rounds: int = 5, per_round: int = 10) -> list:
    """Per size: ms per frame for raw, full JPEG and reduced JPEG decode + preprocessing.

    64x64 linear is vae_lean's preprocessing as shipped (no reduced decode), 224x224 area
    vae_baseline's.
    """
    from ..image_conversion import decode_compressed, decode_raw
    from ..preprocess import Preprocessing
    bgr = _sample_bgr(1)[0]
    rows = []
    for width, height in SIZES:
        big = cv2.resize(bgr, (width, height), interpolation=cv2.INTER_CUBIC)
        raw, jpeg = np.ascontiguousarray(big[..., ::-1]).tobytes(), _jpeg(bgr, (width, height))
        for side, interp in ((64, 'linear'), (64, 'area'), (224, 'area')):
            pre = Preprocessing(side, side, interpolation=interp)
            ways = {
                'raw': lambda: pre(decode_raw('rgb8', height, width, width * 3, False, raw)),
                'jpeg_full': lambda: pre(decode_compressed('jpeg', jpeg)),
                'jpeg_reduced': lambda: pre(decode_compressed('jpeg', jpeg,
                                                              pre.min_decode_size))}
            times = {k: [] for k in ways}
            for _ in range(rounds):
                for name, way in ways.items():
                    for _ in range(per_round):
                        t = time.perf_counter()
                        way()
                        times[name].append((time.perf_counter() - t) * 1e3)
            reduced = decode_compressed('jpeg', jpeg, pre.min_decode_size)
            row = {'size': f'{width}x{height}', 'input': f'{side}x{side} {interp}',
                   'jpeg_bytes': len(jpeg), 'reduced_to': f'{reduced.width}x{reduced.height}'}
            row.update({f'{k}_p50_ms': _pct(v, 50) for k, v in times.items()})
            row['full_over_reduced'] = row['jpeg_full_p50_ms'] / row['jpeg_reduced_p50_ms']
            rows.append(row)
    return rows


def bench_score_drift(models=('vae_lean', 'earlin_lite0'), frames: int = 12) -> list:
    """Relative score change of a reduced decode vs the full decode, per bundle and scale.

    The 'full vs 640x480' rows compare the full decode of the upscaled JPEG with the original
    (uncompressed) 640x480 frame: how much the score depends on the camera's resolution at all.
    """
    from ..bundle import load_bundle
    from ..detectors import build_detector
    from ..image_conversion import decode_compressed, from_array
    from ..preprocess import REDUCED_DECODE_MARGIN
    flags = {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
             8: cv2.IMREAD_REDUCED_COLOR_8}
    sample = _sample_bgr(frames)
    rows = []
    for model in models:
        bundle = load_bundle(REPO / 'models' / model)
        for interp in ('linear', 'area'):
            pre = dataclasses.replace(bundle.preprocessing, interpolation=interp)
            det = build_detector(dataclasses.replace(bundle, preprocessing=pre))
            native = [det.score(from_array(f, 'bgr')) for f in sample]
            for size in SIZES[2:]:
                jpegs = [_jpeg(f, size) for f in sample]
                full = [det.score(decode_compressed('jpeg', j)) for j in jpegs]
                diffs = [abs(s - n) / abs(n) for s, n in zip(full, native)]
                rows.append({'model': model, 'interpolation': interp,
                             'size': f'{size[0]}x{size[1]}', 'scale': 'full vs 640x480',
                             'margin': size[1] / pre.height, 'used_by_node': False,
                             'max_rel_diff': float(max(diffs)),
                             'median_rel_diff': float(np.median(diffs))})
                for scale in SCALES:
                    if size[1] // scale < pre.height:
                        continue
                    diffs = [abs(det.score(from_array(cv2.imdecode(np.frombuffer(j, np.uint8),
                                                                   flags[scale]), 'bgr')) - s)
                             / abs(s) for j, s in zip(jpegs, full)]
                    rows.append({
                        'model': model, 'interpolation': interp, 'size': f'{size[0]}x{size[1]}',
                        'scale': f'1/{scale}', 'margin': size[1] // scale / pre.height,
                        'used_by_node': interp == 'area' and (
                            size[1] // scale >= REDUCED_DECODE_MARGIN * pre.height),
                        'max_rel_diff': float(max(diffs)),
                        'median_rel_diff': float(np.median(diffs))})
    return rows


_ORT_CODE = """
import sys, time
import numpy as np
import onnxruntime as ort
from leanood_ros.bundle import load_bundle
def rss():
    return next(int(l.split()[1]) for l in open('/proc/self/status')
                if l.startswith('VmRSS')) / 1024
graph = next(iter(load_bundle(sys.argv[1]).graphs.values()))
before = rss()
opts = ort.SessionOptions()
opts.intra_op_num_threads, opts.inter_op_num_threads = 1, 1
opts.enable_cpu_mem_arena, opts.enable_mem_pattern = sys.argv[2] == '1', sys.argv[3] == '1'
s = ort.InferenceSession(graph.read(), sess_options=opts, providers=['CPUExecutionProvider'])
inp = s.get_inputs()[0]
x = np.random.default_rng(0).random([d if isinstance(d, int) else 1 for d in inp.shape],
                                    dtype=np.float32)
ts = []
for i in range(320):
    t = time.perf_counter()
    s.run(None, {inp.name: x})
    ts.append(time.perf_counter() - t)
print(rss() - before, np.median(ts[20:]) * 1e3)
"""


def bench_ort_memory(models=('vae_lean', 'earlin_lite0', 'vae_baseline')) -> list:
    """Session RSS and inference p50 with the CPU arena / memory patterns on and off."""
    rows = []
    for model in models:
        for arena, pattern in ((1, 1), (0, 1), (1, 0), (0, 0)):
            out = subprocess.run([sys.executable, '-c', _ORT_CODE, str(REPO / 'models' / model),
                                  str(arena), str(pattern)], cwd=REPO, capture_output=True,
                                 text=True, env=_env(1))
            try:
                grown, ms = (float(x) for x in out.stdout.split()[-2:])
            except ValueError:
                grown = ms = float('nan')
            rows.append({'model': model, 'cpu_mem_arena': bool(arena),
                         'mem_pattern': bool(pattern), 'session_rss_mb': grown,
                         'inference_p50_ms': ms})
    return rows


_IMPORT_STEPS = ('numpy', 'rclpy.node', 'sensor_msgs.msg', 'cv2', 'onnxruntime',
                 'leanood_ros.nodes.ood_monitor')


def bench_imports(top: int = 10) -> dict:
    """`python -X importtime` of the node module (top direct imports) and RSS per import step."""
    out = subprocess.run([sys.executable, '-X', 'importtime', '-c',
                          'import leanood_ros.nodes.ood_monitor'], cwd=REPO, capture_output=True,
                         text=True, env=_env(1))
    direct = []
    for line in out.stderr.splitlines():
        parts = line.split('|')
        if len(parts) == 3 and parts[2].startswith('   ') and parts[2][3] != ' ':
            direct.append((parts[2].strip(), int(parts[1]) / 1e3))
    code = ('import importlib\nr = []\nfor m in %r:\n    importlib.import_module(m)\n'
            '    r.append(next(int(l.split()[1]) for l in open("/proc/self/status")'
            ' if l.startswith("VmRSS")) / 1024)\nprint(*r)' % (_IMPORT_STEPS,))
    steps = subprocess.run([sys.executable, '-c', code], cwd=REPO, capture_output=True,
                           text=True, env=_env(1)).stdout.split()
    return {'top_direct_imports_ms': sorted(direct, key=lambda d: -d[1])[:top],
            'rss_after_import_mb': dict(zip(_IMPORT_STEPS, map(float, steps)))}


def bench_nodes(seconds: float) -> list:
    """vae_lean over DDS at 30 Hz: raw and JPEG at each size (one node run per input)."""
    runs = [((640, 480), False), ((1920, 1080), False), ((640, 480), True),
            ((1920, 1080), True), ((3840, 2160), True)]
    return [bench_node('vae_lean', (30,), seconds, size, compressed) for size, compressed in runs]


def markdown(r: dict) -> str:
    m = r['machine']
    lines = ['# Big frames, reduced JPEG decode and node memory', '',
             f"Machine: {m['cpu']} ({m['cores']} cores, {m['machine']}), Python {m['python']}, "
             f"onnxruntime {m['onnxruntime']}; {m['date']}.  Regenerate with "
             '`leanood bench big_frames --out benchmarks/big_frames`.', '',
             f'## Decode + preprocessing per frame (rain sample upscaled, JPEG q{JPEG_QUALITY})',
             '', '64x64 linear is vae_lean as shipped: linear resizing never decodes reduced.', '',
             '| frame | model input | JPEG KB | raw rgb8 ms | JPEG full ms | JPEG reduced ms '
             '(decoded to) | full / reduced |', '|---|---|---|---|---|---|---|']
    for d in r['decode']:
        lines.append(f"| {d['size']} | {d['input']} | {d['jpeg_bytes'] / 1e3:.0f} | "
                     f"{d['raw_p50_ms']:.2f} | {d['jpeg_full_p50_ms']:.2f} | "
                     f"{d['jpeg_reduced_p50_ms']:.2f} ({d['reduced_to']}) | "
                     f"{d['full_over_reduced']:.1f}x |")
    lines += ['', '## Score change of a reduced decode vs the full decode (12 frames)', '',
              'margin: reduced frame height / model input height; used_by_node: what '
              '`Preprocessing.min_decode_size` (area only, margin >= 8) picks; '
              "'full vs 640x480': the full decode against the original 640x480 frame.", '',
              '| model | resizing | frame | scale | margin | max rel. diff | median | '
              'used_by_node |', '|---|---|---|---|---|---|---|---|']
    for d in r['score_drift']:
        lines.append(f"| {d['model']} | {d['interpolation']} | {d['size']} | {d['scale']} | "
                     f"{d['margin']:.1f} | {d['max_rel_diff']:.4f} | "
                     f"{d['median_rel_diff']:.4f} | {'yes' if d['used_by_node'] else ''} |")
    lines += ['', '## Node over DDS (vae_lean, 30 Hz, node pinned to one core)', '',
              '| input | sent / lost / judged / skipped | node overhead p50 / p99 ms | '
              'inference p50 |'
              ' transport p50 | end-to-end p50 / p99 | RSS idle / under load MB |',
              '|---|---|---|---|---|---|---|']
    for n in r['node']:
        for row in n['rows']:
            lines.append(
                f"| {n['input']} | {row['sent']} / {lost(row)} / {row['judged']} / "
                f"{row['skipped']} | "
                f"{row['node_overhead_p50_ms']:.2f} / {row['node_overhead_p99_ms']:.2f} | "
                f"{row['inference_p50_ms']:.2f} | {row['transport_p50_ms']:.2f} | "
                f"{row['e2e_p50_ms']:.2f} / {row['e2e_p99_ms']:.2f} | "
                f"{n['idle_rss_mb']:.0f} / {row['node_rss_mb']:.0f} |")
    lines += ['', '## ONNX Runtime session memory (one thread, CPU)', '',
              '| model | CPU arena | memory pattern | session RSS MB | inference p50 ms |',
              '|---|---|---|---|---|']
    for d in r['ort_memory']:
        lines.append(f"| {d['model']} | {d['cpu_mem_arena']} | {d['mem_pattern']} | "
                     f"{d['session_rss_mb']:.1f} | {d['inference_p50_ms']:.3f} |")
    imp = r['imports']
    lines += ['', '## Imports of the node module', '',
              'RSS after each import step (MB): ' + ', '.join(
                  f'{k} {v:.0f}' for k, v in imp['rss_after_import_mb'].items()), '',
              'Slowest direct imports (`python -X importtime`, cumulative ms): ' + ', '.join(
                  f'{k} {v:.0f}' for k, v in imp['top_direct_imports_ms'])]
    return '\n'.join(lines) + '\n'


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog='leanood bench big_frames',
                                 description=__doc__.splitlines()[0])
    ap.add_argument('--seconds', type=float, default=10.0, help='per node row')
    ap.add_argument('--out', type=Path, help='folder for results.json and README.md')
    a = ap.parse_args(argv)
    results = {'machine': machine(), 'decode': bench_decode(),
               'score_drift': bench_score_drift(), 'ort_memory': bench_ort_memory(),
               'imports': bench_imports(), 'node': bench_nodes(a.seconds)}
    text = markdown(results)
    publish(results, text, a.out)
    return 0


if __name__ == '__main__':
    sys.exit(main())
