import pytest

from leanood_ros import parameters as P


def test_defaults_are_valid():
    assert P.check_all(P.defaults()) == []


@pytest.mark.parametrize('name,value,message', [
    ('alpha', 0.7, 'alpha must be in'), ('alpha', 'x', 'must be a float'),
    ('threads', 0, 'threads must be in'), ('threads', True, 'must be a int'),
    ('fusion', 'often', 'fusion must be one of'), ('device', 'tpu', 'device must be one of'),
    ('qos_reliability', 'sometimes', 'must be one of'), ('input_timeout', 0.0, 'must be in'),
    ('detector', 'yolo', 'must be one of'), ('deadline_miss_unsafe', 1, 'must be a bool'),
    ('executor', 'fastest', 'executor must be one of'),
])
def test_single_values_are_checked(name, value, message):
    assert message in P.check_value(name, value)


def test_int_is_accepted_for_float_parameters():
    assert P.check_value('alpha', 0) is not None  # out of range, but not a type error
    assert 'must be a float' not in P.check_value('alpha', 0)
    assert P.check_value('cusum_drift', 2) is None


def test_cross_checks():
    v = P.defaults() | {'vote_k': 9, 'vote_n': 4}
    assert any('vote_k' in m for m in P.check_all(v))
    v = P.defaults() | {'alpha': 0.001}
    assert any('no frame could ever be flagged' in m for m in P.check_all(v, min_alpha=0.005))
    assert P.check_all(v | {'score_threshold': 3.0}, min_alpha=0.005) == []


def test_bundle_recommendations_override_defaults_only_for_decision_keys():
    d = P.defaults({'alpha': 0.002, 'cusum_threshold': 20, 'model': 'evil'})
    assert d['alpha'] == 0.002 and d['cusum_threshold'] == 20.0
    assert isinstance(d['cusum_threshold'], float) and d['model'] == 'vae_lean'


def test_markdown_table_lists_every_parameter():
    table = P.markdown_table()
    for s in P.SPECS:
        assert f'`{s.name}`' in table
