"""What every report file shares: its schema version, the report names, ``ReportError``, and the check that a
JSON object holds a record's keys.

Report files are JSON and carry a ``schema_version`` (``SCHEMA_VERSION``). A file without one predates the key
and has the version 1 shape, so it is read as version 1; any other version is refused with a ``ReportError``,
as is a missing key (keys no field names are ignored).
"""

from __future__ import annotations

from dataclasses import MISSING, fields
from typing import Any

from covidnet.errors import CovidNetError

SCHEMA_VERSION = 2  # 2: the occlusion checks use lung masks; heatmap-in-lungs per class
VERSIONLESS = 1  # the shape of the files written before reports carried a schema version
# Each evaluated split of the split file → the name of its report (``weights/reports/<name>.json``) and of its
# entry in a checkpoint's ``metrics``.
REPORT_NAMES = {"test": "internal_test", "external": "external", "val": "validation"}
GATE_REPORT = "gate"  # weights/reports/gate.json
LEAVE_ONE_OUT_REPORT = "leave_one_source_out"  # weights/reports/leave_one_source_out.json
UNCERTAIN_REPORT = "uncertain"  # weights/reports/uncertain.json: the "uncertain" thresholds on unseen sources
FAMILIARITY_REPORT = "familiarity"  # weights/reports/familiarity.json


class ReportError(CovidNetError):
    """A report file that is missing, damaged, of another schema version or not shaped like a report."""


def checked(cls: type, record: Any, where: str) -> dict[str, Any]:
    """The entries of ``record`` (a JSON object) that are fields of ``cls``, after checking that every field
    without a default is there."""
    if not isinstance(record, dict):
        raise ReportError(f"{where}: expected an object, found {type(record).__name__}.")
    known = {f.name for f in fields(cls)}
    required = {f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING}
    if missing := sorted(required - set(record)):
        raise ReportError(f"{where}: missing keys {', '.join(missing)}.")
    return {k: v for k, v in record.items() if k in known}
