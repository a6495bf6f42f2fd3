"""leanood_ros: a lean out-of-distribution safety monitor for robots that steer by camera."""
__version__ = '0.1.0'
