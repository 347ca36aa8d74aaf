"""Hypothesis profiles for the config tests: `ci` (the default) is deterministic.

``HYPOTHESIS_PROFILE=explore`` (as `nox -s fuzz` sets it) draws random seeds and more
examples, and keeps failing examples in .hypothesis/ to replay them.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_QUIET = [HealthCheck.too_slow, HealthCheck.filter_too_much]

settings.register_profile(
    "ci",
    derandomize=True,
    print_blob=True,
    deadline=None,
    database=None,
    suppress_health_check=_QUIET,
)
settings.register_profile(
    "explore",
    derandomize=False,
    print_blob=True,
    deadline=None,
    max_examples=1000,
    suppress_health_check=_QUIET,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
