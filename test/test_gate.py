"""The safety gate's rules (pure Python, injected clock)."""
from dataclasses import fields

import pytest

from leanood_ros.gate import (DESCRIPTIONS, GateSettings, OPEN, SafetyGate, STALE, UNSAFE,
                              ZERO)

GO = (0.5, 0.0, 0.0, 0.0, 0.0, 0.3)


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def make(**settings):
    clock, seen = Clock(), []
    gate = SafetyGate(GateSettings(**settings), clock,
                      on_transition=lambda *t: seen.append(t[:2]))
    return gate, clock, seen


def test_closed_until_the_first_true_then_passes_commands():
    gate, clock, seen = make()
    assert gate.state == STALE and gate.on_command(GO) == ZERO and gate.tick() == ZERO
    assert gate.on_is_safe(True) is None
    assert gate.state == OPEN and gate.on_command(GO) == GO and gate.tick() is None
    assert seen == [(STALE, OPEN)]
    assert gate.counts == {'passed': 1, 'limited': 1, 'stop_ticks': 1, 'transitions': 1}


def test_unsafe_stops_at_once_and_on_the_timer():
    gate, clock, seen = make()
    gate.on_is_safe(True)
    gate.on_command(GO)
    assert gate.on_is_safe(False) == ZERO        # published at once, not at the next command
    assert gate.state == UNSAFE and 'false' in gate.reason
    assert gate.on_command(GO) == ZERO and gate.tick() == ZERO
    assert gate.on_is_safe(False) is None        # no repeat burst per flag while closed
    gate.on_is_safe(True)
    assert gate.on_command(GO) == GO
    assert seen == [(STALE, OPEN), (OPEN, UNSAFE), (UNSAFE, OPEN)]


def test_a_silent_monitor_closes_the_gate_after_heartbeat_timeout():
    gate, clock, seen = make(heartbeat_timeout=0.5)
    gate.on_is_safe(True)
    clock.t += 0.5
    assert gate.on_command(GO) == GO                 # exactly at the timeout: still fresh
    clock.t += 0.01
    assert gate.tick() == ZERO and gate.state == STALE
    assert 'heartbeat_timeout' in gate.reason
    assert seen[-1] == (OPEN, STALE)


@pytest.mark.parametrize('action,scale,expected', [
    ('stop', 0.7, ZERO),
    ('scale', 0.2, (0.1, 0.0, 0.0, 0.0, 0.0, 0.06)),
    ('rotate_only', 0.0, (0.0, 0.0, 0.0, 0.0, 0.0, 0.3)),
])
def test_unsafe_actions(action, scale, expected):
    gate, clock, _ = make(unsafe_action=action, unsafe_scale=scale, command_timeout=0.5)
    gate.on_is_safe(False)
    assert gate.on_command(GO) == pytest.approx(expected)
    clock.t += 0.4
    assert gate.tick() == pytest.approx(expected)   # the limited last command, while fresh
    clock.t += 0.2
    assert gate.tick() == ZERO                      # the controller went quiet: zero


@pytest.mark.parametrize('kwargs,message', [
    ({'heartbeat_timeout': 0.0}, 'heartbeat_timeout'), ({'unsafe_scale': 1.5}, 'unsafe_scale'),
    ({'unsafe_action': 'coast'}, 'unsafe_action'), ({'stop_rate': float('nan')}, 'stop_rate'),
    ({'command_timeout': -1.0}, 'command_timeout'),
])
def test_invalid_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SafetyGate(GateSettings(**kwargs))


def test_every_setting_is_described():
    assert set(DESCRIPTIONS) == {f.name for f in fields(GateSettings)}
