"""leanood_ros: a lean out-of-distribution safety monitor for robots that steer by camera."""


def _version() -> str:
    """Read the version from package.xml, its one source (setup.py reads it too)."""
    from pathlib import Path
    import re
    checkout = Path(__file__).resolve().parent.parent / 'package.xml'
    if checkout.is_file():   # a source checkout (also an editable install)
        return re.search(r'<version>([^<]+)</version>', checkout.read_text()).group(1)
    from importlib.metadata import version   # installed: setup.py copied it into the metadata
    return version('leanood_ros')


__version__ = _version()
