"""The one place where report files are written (``write_report``, ``write_gate_report``,
``write_leave_one_out_report``, ``write_familiarity_report``) and read back (``read_report``, ``read_gate_report``,
``read_leave_one_out_report``, ``read_familiarity_report``),
checking their schema version (``covidnet.assessment.report_schema``)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from covidnet.assessment.evaluation_report import EvaluationReport
from covidnet.assessment.familiarity_report import FamiliarityReport
from covidnet.assessment.gate_report import GateReport
from covidnet.assessment.leave_one_out_report import LeaveOneOutReport
from covidnet.assessment.report_schema import (
    FAMILIARITY_REPORT,
    GATE_REPORT,
    LEAVE_ONE_OUT_REPORT,
    REPORT_NAMES,
    SCHEMA_VERSION,
    UNCERTAIN_REPORT,
    VERSIONLESS,
    ReportError,
)
from covidnet.assessment.uncertain_report import UncertainReport


def write_leave_one_out_report(report: LeaveOneOutReport, path: Path) -> None:
    """Write the leave-one-source-out report to ``path`` as indented JSON."""
    _write(report.to_dict(), path)


def read_leave_one_out_report(path: Path) -> LeaveOneOutReport:
    """The leave-one-source-out report at ``path``; ``ReportError`` if it cannot be read as one."""
    return _read(path, LeaveOneOutReport.from_dict)


def find_leave_one_out_report(folder: Path) -> LeaveOneOutReport | None:
    """The leave-one-source-out report in ``folder`` (``LEAVE_ONE_OUT_REPORT``), or None if there is none."""
    path = Path(folder) / f"{LEAVE_ONE_OUT_REPORT}.json"
    return read_leave_one_out_report(path) if path.exists() else None


def write_familiarity_report(report: FamiliarityReport, path: Path) -> None:
    """Write the familiarity report to ``path`` as indented JSON."""
    _write(report.to_dict(), path)


def read_familiarity_report(path: Path) -> FamiliarityReport:
    """The familiarity report at ``path``; ``ReportError`` if it cannot be read as one."""
    return _read(path, FamiliarityReport.from_dict)


def find_familiarity_report(folder: Path) -> FamiliarityReport | None:
    """The familiarity report in ``folder`` (``FAMILIARITY_REPORT``), or None if there is none."""
    path = Path(folder) / f"{FAMILIARITY_REPORT}.json"
    return read_familiarity_report(path) if path.exists() else None


def write_report(report: EvaluationReport, path: Path) -> None:
    """Write ``report`` to ``path`` as indented JSON (creating the folder)."""
    _write(report.to_dict(), path)


def read_report(path: Path) -> EvaluationReport:
    """The evaluation report at ``path``; ``ReportError`` if it cannot be read as one."""
    return _read(path, EvaluationReport.from_dict)


def read_reports(folder: Path) -> dict[str, EvaluationReport]:
    """The evaluation reports of ``REPORT_NAMES`` that exist in ``folder``, by name, in that order."""
    paths = {name: Path(folder) / f"{name}.json" for name in REPORT_NAMES.values()}
    return {name: read_report(path) for name, path in paths.items() if path.exists()}


def write_gate_report(report: GateReport, path: Path) -> None:
    """Write the gate report to ``path`` as indented JSON (creating the folder)."""
    _write(report.to_dict(), path)


def read_gate_report(path: Path) -> GateReport:
    """The gate report at ``path``; ``ReportError`` if it cannot be read as one."""
    return _read(path, GateReport.from_dict)


def find_gate_report(folder: Path) -> GateReport | None:
    """The gate report in ``folder`` (``GATE_REPORT``), or None if there is none."""
    path = Path(folder) / f"{GATE_REPORT}.json"
    return read_gate_report(path) if path.exists() else None


_NUMBER_LIST = re.compile(r"\[\s+((?:-?[\d.eE+-]+,\s+)*-?[\d.eE+-]+)\s+\]")  # an indented list of numbers only


def write_uncertain_report(report: UncertainReport, path: Path) -> None:
    """Write the "uncertain" report to ``path`` as indented JSON (creating the folder)."""
    _write(report.to_dict(), path)


def read_uncertain_report(path: Path) -> UncertainReport:
    """Read and validate the "uncertain" report at ``path``."""
    return _read(path, UncertainReport.from_dict)


def find_uncertain_report(folder: Path) -> UncertainReport | None:
    """The "uncertain" report in ``folder`` (``UNCERTAIN_REPORT``), or None if there is none."""
    path = Path(folder) / f"{UNCERTAIN_REPORT}.json"
    return read_uncertain_report(path) if path.exists() else None


def _write(record: dict[str, Any], path: Path) -> None:
    """Indented JSON, with each list of numbers on one line (a report's per-film probabilities stay readable)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = _NUMBER_LIST.sub(lambda m: "[" + " ".join(m.group(1).split()) + "]", json.dumps(record, indent=1))
    path.write_text(text + "\n")


def _read(path: Path, build):
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ReportError(f"Cannot read report {str(path)!r}: {e}.") from None
    if not isinstance(record, dict):
        raise ReportError(f"{str(path)!r} is not a report (expected a JSON object).")
    version = record.get("schema_version", VERSIONLESS)
    if version != SCHEMA_VERSION:
        raise ReportError(
            f"{str(path)!r} has report schema version {version}; this CovidNet reads version {SCHEMA_VERSION}."
        )
    try:
        return build({**record, "schema_version": version})
    except ReportError as e:
        raise ReportError(f"{str(path)!r} is not a valid report: {e}") from None
    except (TypeError, AttributeError, KeyError) as e:
        raise ReportError(f"{str(path)!r} is not a valid report: {e!r}.") from None
