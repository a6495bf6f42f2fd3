"""`leanood bench cameras`: what each extra camera costs one ood_monitor (`image_topics`).

    leanood bench cameras --counts 1,2,3 --out benchmarks/cameras

For each camera count, one monitor (pinned to CPU 0) judges that many 640x480 rgb8 streams at
30 Hz each (bench cameras on the other CPU, all started together).  Reported side by side: the
node's RSS at rest, while and after streaming, frames judged per camera, and the RSS added
per extra camera against one camera.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
import subprocess
import sys
import time

from .bench import _count, counted, machine, NodeRun, publish


def run(model: str, count: int, rate: float, seconds: float, size=(640, 480)) -> dict:
    names = [f'cam{k}' for k in range(count)]
    topics = [f'{n}/image_raw' for n in names]
    extra = [f"image_topics:=[{', '.join(topics)}]"] if count > 1 else []
    node = NodeRun(model, extra)
    try:
        rest = node.rss_mb()
        cams = [subprocess.Popen(NodeRun.camera_command(f'{rate}:{seconds}', size=size,
                                                        topic=t if count > 1 else 'image'),
                                 env=node.env, stdout=subprocess.PIPE, text=True)
                for t in topics]
        peak = rest
        while any(c.poll() is None for c in cams):
            peak = max(peak, node.rss_mb())
            time.sleep(0.25)
        sent = [json.loads(c.stdout.read().strip().splitlines()[-1])['sent'] for c in cams]
        time.sleep(1.5)   # the last verdicts and one more /diagnostics
        streaming = node.rss_mb()
        judged = _per_camera(node, names if count > 1 else [''], 'frames_judged')
        lost = _per_camera(node, names if count > 1 else [''], 'frames_lost')
    finally:
        rc = node.close()
    return {'cameras': count, 'rate_hz': rate, 'seconds': seconds, 'sent': sent,
            'judged': judged, 'lost': lost,
            'rss_rest_mb': round(rest, 1), 'rss_streaming_mb': round(streaming, 1),
            'rss_peak_mb': round(peak, 1), 'exit_code': rc}


def _per_camera(node, names, key: str) -> list:
    """Return counter `key` of each camera's newest /diagnostics status (nan: not counted)."""
    latest = {}
    for _, kv in node.diag:
        latest[kv.get('camera', '')] = _count(kv, key)
    return [latest.get(n, 0) for n in names]


def markdown(results: dict) -> str:
    rows = results['runs']
    base = rows[0]
    lines = ['# Several cameras in one ood_monitor', '',
             f"{results['model']}, 640x480 rgb8 at {base['rate_hz']:g} Hz per camera for "
             f"{base['seconds']:g} s, one shared inference session (`image_topics`).  Produced "
             'by `leanood bench cameras`.', '',
             '| cameras | RSS at rest (MB) | RSS streaming (MB) | peak (MB) | added vs 1 camera '
             '(MB, streaming) | per extra camera (MB) | judged / sent (lost) per camera |',
             '|---|---|---|---|---|---|---|']
    for r in rows:
        added = r['rss_streaming_mb'] - base['rss_streaming_mb']
        per = added / (r['cameras'] - 1) if r['cameras'] > 1 else 0.0
        lost = r.get('lost', [None] * len(r['sent']))
        judged = ', '.join(f'{j}/{s} ({counted(n)})'
                           for j, s, n in zip(r['judged'], r['sent'], lost))
        lines.append(f"| {r['cameras']} | {r['rss_rest_mb']:.1f} | {r['rss_streaming_mb']:.1f} | "
                     f"{r['rss_peak_mb']:.1f} | {added:+.1f} | {per:.1f} | {judged} |")
    lines += ['', f"Machine: {json.dumps(results['machine'])}"]
    return '\n'.join(lines) + '\n'


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog='leanood bench cameras', description=__doc__.splitlines()[0])
    ap.add_argument('--model', default='vae_lean')
    ap.add_argument('--counts', default='1,2,3')
    ap.add_argument('--rate', type=float, default=30.0)
    ap.add_argument('--seconds', type=float, default=10.0)
    ap.add_argument('--out', type=Path, help='folder for results.json and README.md')
    a = ap.parse_args(argv)
    counts = [int(c) for c in a.counts.split(',')]
    if counts[0] != 1:
        ap.error('--counts must start with 1 (the reference)')
    results = {'model': a.model, 'machine': machine(),
               'runs': [run(a.model, n, a.rate, a.seconds) for n in counts]}
    publish(results, markdown(results), a.out)
    return 0


if __name__ == '__main__':
    sys.exit(main())
