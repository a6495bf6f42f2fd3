"""The README's main job: the shipped sample through ood_monitor with the shipped vae_lean."""
import pytest

from leanood_ros import demo

pytestmark = pytest.mark.integration


def test_demo_flags_the_rain_shortly_after_it_starts(capsys, domain_id):
    summary = demo.run('vae_lean', 'sample', domain=domain_id)
    assert summary['judged'] == summary['frames'] == 75
    assert summary['shift'] == 'rain' and summary['shift_frame'] == 40
    assert summary['delay_frames'] is not None and summary['delay_frames'] <= 3
    assert summary['false_alarms_in_distribution'] == 0
    assert 'flagged unsafe at frame' in capsys.readouterr().out
