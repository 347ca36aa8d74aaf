"""matrix.yaml: the data model (harness/config/domain.py) and its entry point, `load`.

Every problem in the file is a `MatrixError` whose text is one line,
``<file>:<line>: <key.path>: <problem>``. The file is validated by the pydantic models of
harness/config/schema.py (line numbers from PyYAML's node tree, harness/config/source.py),
then by the cross-reference rules of harness/config/checks.py.
"""

from __future__ import annotations

from harness.config.domain import (
    AXES,
    CHECKPOINT_FORMATS,
    DEFAULT_AXES,
    DEFAULT_GOLDEN_TOLERANCE,
    DEVICE_MAPS,
    DTYPES,
    EMBEDDED,
    MODES,
    PRESETS,
    PROFILES_REQUIRED,
    SOURCES,
    Axes,
    Cell,
    CISettings,
    CompareSettings,
    Matrix,
    MatrixError,
    Model,
    Profile,
    Rule,
    Scenario,
    Settings,
    Stack,
    one_line,
)
from harness.config.loader import load
from harness.metrics import FAIL_ON_CHOICES

__all__ = [
    "AXES",
    "CHECKPOINT_FORMATS",
    "DEFAULT_AXES",
    "DEFAULT_GOLDEN_TOLERANCE",
    "DEVICE_MAPS",
    "DTYPES",
    "EMBEDDED",
    "FAIL_ON_CHOICES",
    "MODES",
    "PRESETS",
    "PROFILES_REQUIRED",
    "SOURCES",
    "Axes",
    "CISettings",
    "Cell",
    "CompareSettings",
    "Matrix",
    "MatrixError",
    "Model",
    "Profile",
    "Rule",
    "Scenario",
    "Settings",
    "Stack",
    "load",
    "one_line",
]
