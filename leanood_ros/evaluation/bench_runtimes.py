"""`leanood bench runtimes`: onnxruntime releases side by side: memory, speed, scores, the node.

    pip install --no-deps --target /tmp/ort-1.20.1 onnxruntime==1.20.1
    leanood bench runtimes --onnxruntime /tmp/ort-1.20.1 --out benchmarks/runtimes

The installed onnxruntime and each `--onnxruntime` folder (another release installed with
`pip install --target`, put first on the path of the processes that use it), in one run.  Per
shipped bundle, each in a process of its own: the RSS that importing onnxruntime and then the
session (self-test and 300 frames) add, inference p50, and the sample recording's scores against
those of the installed release (a release must stay inside the bundle's self-test tolerance: the
node refuses the bundle otherwise).  Then the node (vae_lean, 640x480 rgb8 at 30 Hz, pinned to one
core) with each release, alternating: RSS idle and streaming, overhead, inference.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
import subprocess
import sys

import numpy as np

from .bench import _env, _pct, bench_node, counted, machine, publish, REPO
MODELS = ('vae_lean', 'vae_student64_fp32', 'vae_baseline', 'earlin_lite0')

# cv2 and the package are imported before the first reading, as the node has them: what is
# measured is onnxruntime's share alone
_SESSION_CODE = """
import json, sys
import cv2, numpy as np
from leanood_ros import backends
from leanood_ros.bundle import load_bundle
from leanood_ros.detectors import build_detector
from leanood_ros.evaluation.bench import sample_frames
def rss():
    return next(int(l.split()[1]) for l in open('/proc/self/status')
                if l.startswith('VmRSS')) / 1024
frames = sample_frames()
before = rss()
import onnxruntime
imported = rss()
det = build_detector(load_bundle(sys.argv[1]))
det.self_test()
scores = [det.score(f) for f in frames]
ms = [det.infer(frames[i % len(frames)]).inference_ms for i in range(300)]
print(json.dumps({'version': onnxruntime.__version__, 'import_mb': imported - before,
                  'session_mb': rss() - imported, 'inference_p50_ms': float(np.median(ms[20:])),
                  'scores': scores}))
"""


def bench_sessions(runtimes, models=MODELS) -> list:
    """One process per runtime and bundle: RSS, inference p50 and scores."""
    rows = []
    for model in models:
        for folder in runtimes:
            bundle = str(REPO / 'models' / model)
            out = subprocess.run([sys.executable, '-c', _SESSION_CODE, bundle], cwd=REPO,
                                 capture_output=True, text=True,
                                 env=_env(1, pythonpath=[folder] if folder else []))
            try:
                row = json.loads(out.stdout.strip().splitlines()[-1])
            except (ValueError, IndexError) as exc:
                raise RuntimeError(f'{model} with onnxruntime from {folder or "the environment"} '
                                   f'failed: {out.stderr[-2000:]}') from exc
            rows.append({'model': model, 'folder': folder, **row})
    for row in rows:   # scores against the installed release's
        ref = next(r for r in rows if r['model'] == row['model'] and not r['folder'])
        a, b = np.asarray(row['scores']), np.asarray(ref['scores'])
        row['max_rel_score_diff'] = float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-12)))
        row['frames'] = len(a)
    return rows


def bench_nodes(runtimes, seconds: float, rounds: int) -> list:
    """Run the node with each runtime, alternating which goes first."""
    per = {folder: [] for folder in runtimes}
    for r in range(rounds):
        for folder in runtimes[::1 if r % 2 == 0 else -1]:
            per[folder].append(bench_node('vae_lean', (30,), seconds,
                                          pythonpath=[folder] if folder else []))
    rows = []
    for folder, runs in per.items():
        row = [run['rows'][0] for run in runs]
        rows.append({'folder': folder, 'runs': runs,
                     'idle_rss_mb': _pct([run['idle_rss_mb'] for run in runs], 50),
                     'rss_mb': _pct([x['node_rss_mb'] for x in row], 50),
                     'overhead_p50_ms': _pct([x['node_overhead_p50_ms'] for x in row], 50),
                     'inference_p50_ms': _pct([x['inference_p50_ms'] for x in row], 50),
                     'sent': sum(x['sent'] for x in row), 'judged': sum(x['judged'] for x in row),
                     'lost': sum(x.get('lost_before_node', float('nan')) for x in row)})
    return rows


def markdown(r: dict) -> str:
    m = r['machine']
    version = {s['folder']: s['version'] for s in r['sessions']}
    lines = [
        '# onnxruntime releases side by side', '',
        f"{m['cpu']} ({m['cores']} cores), Python {m['python']}, {m['date']}.  Regenerate with "
        '`leanood bench runtimes ' + ' '.join(f'--onnxruntime {f}' for f in r['runtimes'] if f)
        + ' --out benchmarks/runtimes` (each folder a `pip install --no-deps --target FOLDER '
        'onnxruntime==VERSION`).  Installed: onnxruntime ' + version[''] + '.', '',
        '## Per bundle (one process each, after numpy, OpenCV and the package)', '',
        'import / session: the RSS that `import onnxruntime` and then the session (self-test, '
        f"{r['sessions'][0]['frames']} sample frames scored, 300 inferences) add; score diff: "
        'the largest relative difference from the installed release over those frames (the '
        "bundles' self-test tolerance is 0.02).", '',
        '| bundle | onnxruntime | import MB | session MB | import + session MB (x installed) '
        '| inference p50 ms (x installed) | max rel. score diff |',
        '|---|---|---|---|---|---|---|']

    def total(s):
        return s['import_mb'] + s['session_mb']
    for s in r['sessions']:
        ref = next(x for x in r['sessions'] if x['model'] == s['model'] and not x['folder'])
        lines.append(f"| {s['model']} | {s['version']} | {s['import_mb']:.1f} | "
                     f"{s['session_mb']:.1f} | {total(s):.1f} ({total(s) / total(ref):.2f}x) | "
                     f"{s['inference_p50_ms']:.3f} "
                     f"({s['inference_p50_ms'] / ref['inference_p50_ms']:.2f}x) | "
                     f"{s['max_rel_score_diff']:.1e} |")
    lines += ['', f"## The node (vae_lean, 640x480 rgb8 at 30 Hz, {r['rounds']} alternating "
              f"rounds of {r['seconds']:g} s, medians)", '',
              "RSS streaming: read 1.5 s after each round's last frame (as `bench node`), "
              'libraries read from disk (drop the page cache first: see benchmarks/hot_path/'
              'FINDINGS.md).', '',
              '| onnxruntime | sent / lost / judged | RSS idle MB | RSS streaming MB '
              '(x installed) | overhead p50 ms | inference p50 ms |', '|---|---|---|---|---|---|']
    ref = next(n for n in r['node'] if not n['folder'])
    for n in r['node']:
        lines.append(f"| {version[n['folder']]} | {n['sent']} / {counted(n['lost'])} / "
                     f"{n['judged']} | {n['idle_rss_mb']:.1f} | {n['rss_mb']:.1f} "
                     f"({n['rss_mb'] / ref['rss_mb']:.2f}x) | "
                     f"{n['overhead_p50_ms']:.2f} | {n['inference_p50_ms']:.3f} |")
    return '\n'.join(lines) + '\n'


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog='leanood bench runtimes',
                                 description=__doc__.splitlines()[0])
    ap.add_argument('--onnxruntime', action='append', default=[], metavar='FOLDER',
                    help='another onnxruntime release (pip install --target FOLDER); repeatable')
    ap.add_argument('--seconds', type=float, default=8.0, help='per node round')
    ap.add_argument('--rounds', type=int, default=3)
    ap.add_argument('--out', type=Path, help='folder for results.json and README.md')
    a = ap.parse_args(argv)
    for folder in a.onnxruntime:
        if not (Path(folder) / 'onnxruntime' / '__init__.py').is_file():
            ap.error(f'{folder} holds no onnxruntime (pip install --no-deps --target {folder} '
                     'onnxruntime==VERSION)')
    runtimes = [''] + [str(Path(f).resolve()) for f in a.onnxruntime]
    results = {'machine': machine(), 'runtimes': runtimes, 'seconds': a.seconds,
               'rounds': a.rounds, 'sessions': bench_sessions(runtimes),
               'node': bench_nodes(runtimes, a.seconds, a.rounds)}
    publish(results, markdown(results), a.out)
    return 0


if __name__ == '__main__':
    sys.exit(main())
