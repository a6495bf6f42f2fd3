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
