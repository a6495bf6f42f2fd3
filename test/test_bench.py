"""The benchmark tool itself works (tiny bundle, few iterations).

Real numbers live in benchmarks/.
"""
import shutil

import pytest

from leanood_ros.evaluation import bench


def test_detector_bench_side_by_side_with_ratios(tiny_bundle, tmp_path):
    shutil.copytree(tiny_bundle, tmp_path / 'vae_baseline')
    rows = bench.bench_detectors([str(tmp_path / 'vae_baseline'), str(tiny_bundle)],
                                 threads=(1,), rounds=1, per_round=5)
    assert len(rows) == 2
    for r in rows:
        assert r['latency_p50_ms'] > r['inference_p50_ms'] > 0
        assert r['peak_rss_mb'] > 20 and r['macs'] > 0
        assert r['speedup_vs_baseline'] == pytest.approx(
            rows[0]['latency_p50_ms'] / r['latency_p50_ms'])
    text = bench.markdown({'machine': bench.machine(), 'detectors': rows})
    assert '| vae_baseline | 1 | CPUExecutionProvider' in text


def test_runtimes_bench_scores_one_release_against_another(tmp_path):
    from leanood_ros.evaluation import bench_runtimes
    # the installed release twice (a folder that only points at it): equal scores, both rows
    folder = tmp_path / 'same'
    folder.mkdir()
    rows = bench_runtimes.bench_sessions(['', str(folder)], models=('vae_lean',))
    assert [r['folder'] for r in rows] == ['', str(folder)]
    for r in rows:
        assert r['max_rel_score_diff'] == 0.0 and r['frames'] > 10
        assert r['import_mb'] > 1 and r['inference_p50_ms'] > 0
    with pytest.raises(SystemExit):   # a folder without onnxruntime is refused, with the fix
        bench_runtimes.main(['--onnxruntime', str(folder)])


def test_recorded_runtimes_table_is_what_its_results_render():
    import json
    from pathlib import Path
    from leanood_ros.evaluation.bench_runtimes import markdown
    out = Path(__file__).resolve().parents[1] / 'benchmarks' / 'runtimes'
    assert markdown(json.loads((out / 'results.json').read_text())) == \
        (out / 'README.md').read_text()


@pytest.mark.integration
def test_cadence_bench_judges_every_frame_it_feeds_and_probes_the_machine(domain_id, tmp_path):
    import json
    import subprocess
    import sys
    from ros_harness import ros_env
    out = tmp_path / 'cadence'
    proc = subprocess.run([sys.executable, '-m', 'leanood_ros.cli', 'bench', 'cadence',
                           '--frames', '12', '--rounds', '1', '--out', str(out)],
                          env=ros_env(domain_id), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    r = json.loads((out / 'results.json').read_text())
    assert set(r['feeds']) == {'back to back', '240 Hz', '30 Hz'}
    for name, runs in r['feeds'].items():   # the node judged each frame it was handed
        assert [(x['fed'], x['judged']) for x in runs] == [(12, 12)], name
        assert 0 < runs[0]['overhead_p50_ms'] <= runs[0]['overhead_p90_ms'] < 1000
    assert [p['gap_ms'] for p in r['probe']] == pytest.approx([0.0, 1000 / 240, 1000 / 30])
    assert all(p['asleep_p50_us'] > 0 and p['busy_p50_us'] > 0 for p in r['probe'])
    assert '| back to back | 12 / 12 |' in (out / 'README.md').read_text()


def test_recorded_cadence_table_is_what_its_results_render():
    import json
    from pathlib import Path
    from leanood_ros.evaluation.bench_cadence import markdown
    out = Path(__file__).resolve().parents[1] / 'benchmarks' / 'cadence'
    assert markdown(json.loads((out / 'results.json').read_text())) == \
        (out / 'README.md').read_text()
