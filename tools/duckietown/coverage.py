#!/usr/bin/env python3
"""How much of each map's lane network the rendered routes of a split drive over.

A detector fitted on ID routes only knows the views those routes saw: a lane curve no training
route drives (a corner past a parked truck, say) looks new at test time although it is in
distribution.  This reports, per map, the share of valid lane curves (and of lane length) that
the split's routes visit, and lists the curves they miss, so routes can be added until the
training maps are covered.  It reads poses only (meta.json), never images or labels.

    xvfb-run -a .venv-sim/bin/python tools/duckietown/coverage.py [--split train] [--json F]
"""
from __future__ import annotations

import argparse
from collections import defaultdict
import contextlib
import io
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def visited_curves(raw_root: str, plan: dict, split: str) -> dict:
    """Map -> {curve index: frames on it} over the split's non-domain-randomised routes."""
    out: dict = defaultdict(lambda: defaultdict(int))
    for s in plan['sequences']:
        if s['split'] != split:
            continue
        meta = os.path.join(raw_root, s['name'], 'meta.json')
        if not os.path.isfile(meta):
            raise SystemExit(f'{meta}: not rendered (run render_all.sh first)')
        with open(meta) as f:
            for fr in json.load(f)['frames']:
                out[s['map']][int(fr['curve'])] += 1
    return out


def lane_curves(map_name: str):
    """(lengths, tiles, valid) of every lane curve of a map, from the simulator itself."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        from gym_duckietown.simulator import Simulator
    from render import LaneGraph
    env = Simulator(map_name=map_name, camera_width=64, camera_height=48, seed=0)
    env.reset()
    g = LaneGraph(env)
    n = len(g.cps)
    return ([g.length(k) for k in range(n)], [list(g.tile[k]) for k in range(n)],
            [g.curve_valid(k) for k in range(n)])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--plan', default=os.path.join(HERE, 'plan.json'))
    ap.add_argument('--split', default='train')
    ap.add_argument('--json', help='write the full report here')
    a = ap.parse_args(argv)
    with open(a.plan) as f:
        plan = json.load(f)
    raw = os.path.join(os.path.dirname(os.path.dirname(HERE)), plan['out_root'])
    seen = visited_curves(raw, plan, a.split)
    report = {}
    for map_name in sorted(seen):
        lengths, tiles, valid = lane_curves(map_name)
        ks = [k for k in range(len(lengths)) if valid[k]]
        hit = [k for k in ks if seen[map_name].get(k)]
        missed = [k for k in ks if not seen[map_name].get(k)]
        report[map_name] = {
            'valid_curves': len(ks), 'visited_curves': len(hit),
            'curve_share': len(hit) / len(ks),
            'length_share': sum(lengths[k] for k in hit) / sum(lengths[k] for k in ks),
            'missed': [{'curve': k, 'tile': tiles[k], 'length_m': round(lengths[k], 3)}
                       for k in missed]}
        r = report[map_name]
        print(f"{map_name}: {r['visited_curves']}/{r['valid_curves']} lane curves "
              f"({100 * r['curve_share']:.0f} %, {100 * r['length_share']:.0f} % of lane length) "
              f'driven by the {a.split} routes; missed tiles: '
              f"{sorted({tuple(m['tile']) for m in r['missed']})}")
    if a.json:
        with open(a.json, 'w') as f:
            json.dump({'split': a.split, 'maps': report}, f, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
