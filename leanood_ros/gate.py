"""The safety gate's decision: pass velocity commands only while the camera is trusted.

Pure Python (no rclpy), clock injected, so every rule is unit-tested without a ROS graph; the
`safety_gate` node only moves messages.  The gate is *open* while the latest `ood/is_safe` is
true and younger than `heartbeat_timeout`; otherwise it is closed (`unsafe`, or `stale` when the
monitor went quiet or never spoke) and commands are limited by `unsafe_action`.
"""
from __future__ import annotations

from dataclasses import dataclass
import math
import time

OPEN, UNSAFE, STALE = 'open', 'unsafe', 'stale'
UNSAFE_ACTIONS = ('stop', 'scale', 'rotate_only')
ZERO = (0.0,) * 6   # linear x, y, z, angular x, y, z


@dataclass(frozen=True)
class GateSettings:
    heartbeat_timeout: float = 0.5
    unsafe_action: str = 'stop'
    unsafe_scale: float = 0.0
    command_timeout: float = 0.5
    stop_rate: float = 20.0
    stamped: bool = False

    def problems(self) -> list:
        """Every invalid value, each as '<name> ...' (empty when all are valid)."""
        out = []
        for name, low, high in (('heartbeat_timeout', 0.01, 60.0), ('unsafe_scale', 0.0, 1.0),
                                ('command_timeout', 0.01, 60.0), ('stop_rate', 1.0, 1000.0)):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and low <= v <= high):
                out.append(f'{name} must be in [{low:g}, {high:g}], got {v!r}')
        if self.unsafe_action not in UNSAFE_ACTIONS:
            out.append(f'unsafe_action must be one of {UNSAFE_ACTIONS}, got '
                       f'{self.unsafe_action!r}')
        return out


DESCRIPTIONS = {
    'heartbeat_timeout': 'Seconds without an `ood/is_safe` message after which the gate closes '
                         '(stale); the monitor republishes at `heartbeat_rate` (10 Hz).',
    'unsafe_action': 'What a closed gate lets through: stop (zero velocity), scale (every '
                     'component times unsafe_scale) or rotate_only (angular z only).',
    'unsafe_scale': 'Factor of unsafe_action=scale.',
    'command_timeout': 'A closed gate repeats the limited last command on its timer only while '
                       'that command is younger than this, else it sends zero.',
    'stop_rate': 'Rate (Hz) at which a closed gate publishes on its own, so the base is stopped '
                 'even when the controller goes quiet.',
    'stamped': 'geometry_msgs/TwistStamped on both topics instead of Twist.',
}


class SafetyGate:
    """Call `on_is_safe` for every flag, `on_command` for every command and `tick` on a timer.

    `on_transition(old, new, reason)` is called once per change of state (for the log and the
    state topic); the gate starts closed (`stale`: nothing heard yet).
    """

    def __init__(self, settings: GateSettings, clock=time.monotonic, on_transition=None):
        problems = settings.problems()
        if problems:
            raise ValueError('; '.join(problems))
        self.settings = settings
        self._clock = clock
        self._on_transition = on_transition or (lambda *_: None)
        self._safe = None            # latest flag and its receipt time
        self._safe_at = None
        self._last_cmd = None        # latest command and its receipt time
        self._cmd_at = None
        self.state, self.reason = None, ''
        self.counts = {'passed': 0, 'limited': 0, 'stop_ticks': 0, 'transitions': 0}
        self.evaluate()

    def evaluate(self) -> str:
        now = self._clock()
        if self._safe_at is None:
            state, reason = STALE, 'no ood/is_safe received yet'
        elif now - self._safe_at > self.settings.heartbeat_timeout:
            state, reason = STALE, (f'no ood/is_safe for {now - self._safe_at:.2f} s '
                                    f'(> heartbeat_timeout {self.settings.heartbeat_timeout:g} s)')
        elif not self._safe:
            state, reason = UNSAFE, 'ood/is_safe is false'
        else:
            state, reason = OPEN, 'ood/is_safe is true'
        if state != self.state:
            old, self.state = self.state, state
            if old is not None:
                self.counts['transitions'] += 1
                self._on_transition(old, state, reason)
        self.reason = reason
        return state

    def on_is_safe(self, is_safe: bool):
        """Record a flag; return the command to publish at once when it closes the gate.

        The base stops now, not at the next controller command; None when nothing is due.
        """
        was_open = self.state == OPEN
        self._safe, self._safe_at = bool(is_safe), self._clock()
        if self.evaluate() != OPEN and was_open:
            return self._held_command()
        return None

    def on_command(self, command: tuple) -> tuple:
        """Return the command to send to the base for an incoming controller command."""
        self._last_cmd, self._cmd_at = tuple(float(c) for c in command), self._clock()
        if self.evaluate() == OPEN:
            self.counts['passed'] += 1
            return self._last_cmd
        self.counts['limited'] += 1
        return self._limit(self._last_cmd)

    def tick(self):
        """Return the command to publish on the gate's timer: while closed; None while open."""
        if self.evaluate() == OPEN:
            return None
        self.counts['stop_ticks'] += 1
        return self._held_command()

    def _held_command(self) -> tuple:
        fresh = (self._cmd_at is not None and
                 self._clock() - self._cmd_at <= self.settings.command_timeout)
        return self._limit(self._last_cmd) if fresh else ZERO

    def _limit(self, command: tuple) -> tuple:
        action = self.settings.unsafe_action
        if action == 'scale':
            return tuple(c * self.settings.unsafe_scale for c in command)
        if action == 'rotate_only':
            return (0.0,) * 5 + (command[5],)
        return ZERO
