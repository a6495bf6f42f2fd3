"""The monitor's writers synchronous (as shipped) vs asynchronous (benchmarks/publish_mode).

    .venv/bin/python tools/experiments/publish_mode.py --out benchmarks/publish_mode [--rounds 4]

`bench node` (vae_lean, 640x480 rgb8 at 30 and 240 Hz, node pinned to one core,
RMW_FASTRTPS_USE_QOS_FROM_XML=1) with config/fastdds_monitor.xml as shipped and with a copy
whose default writer profile is ASYNCHRONOUS (the profile before), alternating which goes
first; medians over the rounds.  The bench observer subscribes to ood/is_safe (latched,
reliable) as a controller does: that subscription is what makes asynchronous publishes stall.
"""
import argparse
import os
from pathlib import Path
import sys
import tempfile

import numpy as np

from leanood_ros.evaluation.bench import bench_node, machine, MONITOR_PROFILE, publish

KEYS = ('node_overhead_p50_ms', 'node_overhead_p99_ms', 'e2e_p50_ms', 'e2e_p99_ms',
        'transport_p50_ms', 'node_rss_mb')


def asynchronous_copy(folder: Path) -> Path:
    text = MONITOR_PROFILE.read_text()
    default = text.index('is_default_profile="true"', text.index('<publisher'))
    start = text.index('<kind>SYNCHRONOUS</kind>', default)
    path = folder / 'fastdds_monitor_async.xml'
    path.write_text(text[:start] + '<kind>ASYNCHRONOUS</kind>' +
                    text[start + len('<kind>SYNCHRONOUS</kind>'):])
    return path


def markdown(r: dict) -> str:
    m = r['machine']
    lines = ["# The monitor's writers: synchronous (shipped) vs asynchronous", '',
             f"{m['cpu']} ({m['cores']} cores), Python {m['python']}, onnxruntime "
             f"{m['onnxruntime']}, {m['date']}.  Regenerate with `.venv/bin/python "
             'tools/experiments/publish_mode.py --out benchmarks/publish_mode`.  `bench node`, '
             'vae_lean, 640x480 rgb8, node pinned to one core, RMW_FASTRTPS_USE_QOS_FROM_XML=1, '
             f"config/fastdds_monitor.xml as shipped vs its writers asynchronous; {r['rounds']} "
             'alternating rounds of 8 s per rate, medians over the rounds (min-max in brackets).',
             '', '| rate | writers | judged / sent | node overhead p50 / p99 ms | end-to-end '
             'p50 / p99 ms | transport p50 ms | RSS MB |', '|---|---|---|---|---|---|---|']
    for rate in r['rates']:
        for mode in ('synchronous', 'asynchronous'):
            rows = [x for x in r['rows'] if x['rate_hz'] == rate and x['writers'] == mode]

            def cell(key):
                v = [x[key] for x in rows]
                return f'{np.median(v):.2f} [{min(v):.2f}-{max(v):.2f}]'
            lines.append(
                f"| {rate} Hz | {mode} | {sum(x['judged'] for x in rows)} / "
                f"{sum(x['sent'] for x in rows)} | {cell('node_overhead_p50_ms')} / "
                f"{cell('node_overhead_p99_ms')} | {cell('e2e_p50_ms')} / {cell('e2e_p99_ms')} | "
                f"{cell('transport_p50_ms')} | "
                f"{np.median([x['node_rss_mb'] for x in rows]):.1f} |")
    return '\n'.join(lines) + '\n'


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--rounds', type=int, default=4)
    ap.add_argument('--rates', default='30,240')
    ap.add_argument('--out', type=Path)
    a = ap.parse_args(argv)
    rates = tuple(int(x) for x in a.rates.split(','))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        profiles = {'synchronous': MONITOR_PROFILE, 'asynchronous': asynchronous_copy(Path(tmp))}
        for r in range(a.rounds):
            for mode in list(profiles)[::1 if r % 2 == 0 else -1]:
                os.environ['LEANOOD_BENCH_MONITOR_PROFILE'] = str(profiles[mode])
                for row in bench_node('vae_lean', rates, 8.0)['rows']:
                    rows.append({'round': r, 'writers': mode, **{k: row[k] for k in KEYS},
                                 'rate_hz': row['rate_hz'], 'sent': row['sent'],
                                 'judged': row['judged']})
                    print(rows[-1], flush=True)
    results = {'machine': machine(), 'rounds': a.rounds, 'rates': rates, 'rows': rows}
    publish(results, markdown(results), a.out)
    return 0


if __name__ == '__main__':
    sys.exit(main())
