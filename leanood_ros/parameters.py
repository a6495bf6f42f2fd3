"""The `ood_monitor` parameters: one table that the node declares, validates and documents.

Pure Python (no rclpy) so that validation is unit-tested without a ROS graph and the README's
parameter table is generated from the same source (`python -m leanood_ros.parameters`).
"""
from __future__ import annotations

from dataclasses import dataclass

from .backends import BACKENDS, DEVICES
from .bundle import FAMILIES
from .decision import DecisionConfig, FUSION_MODES, P_TAILS
from .monitor import MonitorSettings


@dataclass(frozen=True)
class ParamSpec:
    name: str
    default: object
    description: str
    read_only: bool = False
    range: tuple | None = None  # noqa: A003  read across modules; (min, max) inclusive (numbers)
    choices: tuple | None = None    # for strings

    @property
    def type(self) -> type:  # noqa: A003  read across modules (the node, the README table)
        return type(self.default)


P = ParamSpec
EXECUTORS = ('single_threaded', 'events')
SPECS = (
    # -- start-up (read-only) -------------------------------------------------------------------
    P('model', 'vae_lean', 'Model bundle: a variant name under models/ or a path to a bundle '
      'directory.', read_only=True),
    P('detector', '', 'Expected detector family; the node refuses a bundle of another family '
      "('' accepts any).", read_only=True, choices=('',) + FAMILIES),
    P('backend', 'onnxruntime', 'Inference backend.', read_only=True, choices=BACKENDS),
    P('device', 'cpu', 'cpu, or gpu (TensorRT, then CUDA, then CPU fallback).', read_only=True,
      choices=DEVICES),
    P('require_gpu', False, 'Refuse to start when device=gpu falls back to the CPU.',
      read_only=True),
    P('threads', 1, 'Intra-op threads of the inference backend.', read_only=True, range=(1, 64)),
    P('executor', 'single_threaded', "The node's rclpy executor: single_threaded (every ROS 2 "
      "release), or events: rclpy's C++ EventsExecutor (Kilted and later, experimental there), "
      'which takes frames sooner (end-to-end 0.89x, 6 % more frames judged at 240 Hz) but '
      'cannot count `frames_lost` (`leanood bench executors`).',
      read_only=True, choices=EXECUTORS),
    P('image_topics', [], 'Several cameras in one process: their image topics (Image, or '
      'CompressedImage with `compressed`). Each camera is judged on its own (verdicts on '
      '`ood/<camera>/is_safe`, `.../score`, `.../status`) by one shared inference session; '
      '`ood/is_safe` is safe only while every camera is. Empty: one camera on `image`.',
      read_only=True),
    P('camera_names', [], 'Names of the `image_topics` cameras (default: each topic without '
      'its trailing image/image_raw/compressed segments).', read_only=True),
    P('compressed', False, 'Subscribe to sensor_msgs/CompressedImage on `image/compressed` '
      'instead of sensor_msgs/Image on `image`.', read_only=True),
    P('qos_reliability', 'reliable', 'Image subscription reliability. reliable works with a '
      'stock Fast DDS at 640x480; best_effort needs the shipped Fast DDS profile for large '
      'frames.', read_only=True, choices=('reliable', 'best_effort')),
    P('qos_depth', 1, 'Image subscription queue depth (the node only judges the newest frame).',
      read_only=True, range=(1, 100)),
    P('heartbeat_rate', 10.0, 'Minimum rate (Hz) at which `ood/is_safe` is republished; treat '
      'silence as unsafe.', read_only=True, range=(0.5, 100.0)),
    P('diagnostics_rate', 1.0, 'Rate (Hz) of /diagnostics.', read_only=True, range=(0.1, 10.0)),
    P('watchdog_exit', False, 'When the watchdog finds the judging thread dead or stuck past '
      '`watchdog_timeout`, publish unsafe and exit with status 3 so that a supervisor (launch '
      '`respawn`, systemd `Restart=`) restarts the node; off: stay up and report unsafe.',
      read_only=True),
    P('overlay_rate', 0.0, 'If > 0, publish `ood/overlay` (sensor_msgs/Image rgb8) at most this '
      'often (Hz): the judged frame downscaled, a verdict-coloured border, score vs threshold, '
      'reason and score history. 0: no publisher, no cost.', read_only=True, range=(0.0, 30.0)),
    P('overlay_width', 320, 'Width (pixels) of the overlay image.', read_only=True,
      range=(64, 1920)),
    P('forward_features', False, 'Split models (EARLIN): publish the split tensor of '
      'in-distribution frames on `ood/features`.', read_only=True),
    # -- live-tunable ---------------------------------------------------------------------------
    P('alpha', 0.01, 'Per-frame false-alarm rate of the conformal test (p-value <= alpha is '
      'out of distribution).', range=(0.0001, 0.5)),
    P('score_threshold', 0.0, 'If > 0, flag frames whose score exceeds it instead of using '
      'alpha (with cusum: frames at or below it bring no evidence).', range=(0.0, 1.0e12)),
    P('fusion', 'cusum', 'Temporal fusion: none, vote (k of n) or cusum (conformal martingale '
      '+ CUSUM).', choices=FUSION_MODES),
    P('vote_k', 3, 'vote: frames out of distribution needed ...', range=(1, 1000)),
    P('vote_n', 5, '... among the last n frames.', range=(1, 1000)),
    P('cusum_window', 8, 'cusum: p-values in the martingale window.', range=(1, 1000)),
    P('cusum_drift', 1.0, 'cusum: drift subtracted per frame.', range=(0.0, 1000.0)),
    P('cusum_threshold', 12.0, 'cusum: alarm threshold on the CUSUM statistic.',
      range=(0.01, 10000.0)),
    P('p_tail', 'conformal', 'p-values beyond the largest calibration score: conformal (they '
      'stop at 1/(n+1)) or exponential (they keep falling, fitted to the top 5 % of calibration '
      'scores: a frame far past the calibration range is strong evidence at once; `leanood '
      'tune`/`adapt` choose it).', choices=P_TAILS),
    P('recovery_frames', 10, 'Consecutive frames without alarm before the flag returns to '
      'safe (hysteresis).', range=(0, 100000)),
    P('input_timeout', 1.0, 'Seconds without a valid frame before the flag turns unsafe '
      '("stale input").', range=(0.01, 3600.0)),
    P('deadline_ms', 100.0, 'Per-frame deadline from receipt to verdict; misses are counted '
      '(0 disables).', range=(0.0, 60000.0)),
    P('deadline_miss_unsafe', False, 'A frame that misses its deadline makes the verdict '
      'unsafe.'),
    P('max_stamp_age', 1.0, "Seconds a frame's header stamp may be behind (or ahead of) the "
      'ROS clock (sim time when `use_sim_time`) before the verdict turns unsafe; 0 disables. '
      'Replaying a bag with its recorded stamps needs `ros2 bag play --clock` and '
      '`use_sim_time`.', range=(0.0, 1.0e6)),
    P('frozen_frames', 5, 'This many frames in a row with identical data or stamp make the '
      'verdict unsafe ("frozen camera"); repeats never count as fresh input; 0 disables (a '
      'noise-free simulator rendering a static scene repeats frames).', range=(0, 100000)),
    P('watchdog_timeout', 2.0, 'Seconds the judging thread may spend on one frame before the '
      'watchdog turns the verdict unsafe (diagnostics ERROR).', range=(0.1, 3600.0)),
)
BY_NAME = {s.name: s for s in SPECS}
DECISION_KEYS = ('alpha', 'score_threshold', 'fusion', 'vote_k', 'vote_n', 'cusum_window',
                 'cusum_drift', 'cusum_threshold', 'recovery_frames', 'p_tail')
SETTINGS_KEYS = ('input_timeout', 'deadline_ms', 'deadline_miss_unsafe', 'max_stamp_age',
                 'frozen_frames', 'watchdog_timeout')


def check_value(name: str, value) -> str | None:
    """Return a message if `value` is not acceptable for parameter `name`, else None."""
    spec = BY_NAME.get(name)
    if spec is None:
        return None  # not ours (e.g. use_sim_time)
    expected = spec.type
    if expected is list:   # None: declared without a value (rclpy cannot type an empty list)
        items = () if value is None else value
        if not isinstance(items, (list, tuple)) or not all(isinstance(v, str) for v in items):
            return f'{name} must be a list of strings, got {value!r}'
        return None
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        return f'{name} must be a {expected.__name__}, got {value!r}'
    if spec.choices is not None and value not in spec.choices:
        return f'{name} must be one of {list(spec.choices)}, got {value!r}'
    if spec.range is not None and not spec.range[0] <= value <= spec.range[1]:
        return f'{name} must be in [{spec.range[0]}, {spec.range[1]}], got {value!r}'
    return None


def decision_config(values: dict) -> DecisionConfig:
    return DecisionConfig(**{k: values[k] for k in DECISION_KEYS})


def monitor_settings(values: dict) -> MonitorSettings:
    return MonitorSettings(**{k: values[k] for k in SETTINGS_KEYS})


def check_all(values: dict, min_alpha: float = 0.0) -> list:
    """Every problem with a full parameter set, single values and cross-checks alike."""
    problems = [m for m in (check_value(k, v) for k, v in values.items()) if m]
    if problems:
        return problems
    problems += decision_config(values).validate() + monitor_settings(values).validate()
    if values['alpha'] < min_alpha and values['score_threshold'] == 0:
        problems.append(f"alpha {values['alpha']} is below {min_alpha:.3g}, the smallest p-value "
                        f"this bundle's calibration set can give: no frame could ever be flagged")
    return problems


def defaults(bundle_decision: dict | None = None) -> dict:
    """Package defaults, overridden by the settings a bundle recommends in its `decision` key."""
    d = {s.name: s.default for s in SPECS}
    for k, v in (bundle_decision or {}).items():
        if k in DECISION_KEYS:
            d[k] = float(v) if BY_NAME[k].type is float else v
    return d


def markdown_table() -> str:
    rows = ['| parameter | type | default | range / choices | live | description |',
            '|---|---|---|---|---|---|']
    for s in SPECS:
        rng = (f'{s.range[0]} .. {s.range[1]}' if s.range else
               ', '.join(repr(c) for c in s.choices) if s.choices else '')
        kind = 'string[]' if s.type is list else s.type.__name__
        rows.append(f'| `{s.name}` | {kind} | `{s.default!r}` | {rng} | '
                    f'{"no" if s.read_only else "yes"} | {s.description} |')
    return '\n'.join(rows)


if __name__ == '__main__':
    print(markdown_table())
