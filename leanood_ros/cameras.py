"""Several cameras in one monitor: their names, and the one verdict the controller listens to.

One inference session judges every camera's frames; each camera keeps its own decision state
and fail-safe rules (a `MonitorCore` each), so a frozen rear camera is unsafe on its own.  The
combined verdict is safe only while every camera is: `ood/is_safe` tells the controller the
worst, `ood/<camera>/is_safe` tells it which.
"""
from __future__ import annotations

import re

# trailing topic segments that name the stream, not the camera
STREAM_SEGMENTS = {'image', 'image_raw', 'image_rect', 'image_color', 'image_rect_color',
                   'compressed'}
_TOKEN = re.compile(r'^[A-Za-z][A-Za-z0-9_]*$')


def camera_names(topics, names=()) -> list:
    """Name each camera topic: `names` if given, else the topic without its stream segments.

    '/front/image_raw' -> 'front', 'robot/rear_cam/image/compressed' -> 'robot_rear_cam'.
    Raises ValueError naming the topic when a name is missing, invalid or repeated.
    """
    topics, names = list(topics), list(names)
    if names and len(names) != len(topics):
        raise ValueError(f'camera_names has {len(names)} names for {len(topics)} image_topics')
    if not names:
        for topic in topics:
            parts = [p for p in topic.strip('/').split('/') if p]
            while parts and parts[-1] in STREAM_SEGMENTS:
                parts.pop()
            if not parts:
                raise ValueError(f'cannot name the camera of topic {topic!r} (only stream '
                                 'segments): set camera_names')
            names.append('_'.join(parts))
    for topic, name in zip(topics, names):
        if not _TOKEN.match(name):
            raise ValueError(f'camera name {name!r} (topic {topic!r}) must be a letter followed '
                             'by letters, digits or _')
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f'camera names must differ, {repeated} repeat: set camera_names')
    return names


def combine(states: dict) -> tuple:
    """One verdict from {camera: (is_safe, reason)}: safe only if every camera is.

    The reason names every unsafe camera with its own reason.
    """
    if not states:
        return False, 'no camera'
    unsafe = [f'{name}: {reason}' for name, (ok, reason) in states.items() if not ok]
    if unsafe:
        return False, '; '.join(unsafe)
    return True, f'all {len(states)} cameras in distribution'
