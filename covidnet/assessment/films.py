"""The films a report evaluated, one by one: who they are (sha256, label, data source, patient) and each backbone's
calibrated probabilities of them. The "uncertain" threshold is chosen from these rows
(``covidnet.assessment.unseen_calibration``), so a report carries them rather than only its summaries."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from covidnet.assessment.report_schema import checked
from covidnet.classes import CLASSES
from covidnet.data.records import Record
from covidnet.errors import CovidNetError
from covidnet.inference.results import average_probabilities

DIGITS = 5  # probabilities are stored to this many decimals: far below any threshold step


@dataclass(frozen=True)
class Films:
    """The evaluated films in order, and each model's calibrated probabilities (one row per film, ``classes`` order)."""

    sha256: list[str]
    labels: list[str]
    origins: list[str]  # the data source of each film (``Record.origin``)
    patients: list[str]  # the patient id, or the film's sha256 where the source gives none
    probabilities: dict[str, list[list[float]]]
    classes: tuple[str, ...] = CLASSES

    @classmethod
    def of(cls, records: Sequence[Record], probabilities: dict[str, np.ndarray]) -> Films:
        """The rows of ``records`` with each backbone's calibrated ``probabilities`` (films × classes)."""
        return cls(
            sha256=[r.sha256 for r in records],
            labels=[r.label for r in records],
            origins=[r.origin for r in records],
            patients=[r.patient_id or r.sha256 for r in records],
            probabilities={name: np.round(p, DIGITS).tolist() for name, p in probabilities.items()},
        )

    def of_model(self, name: str) -> np.ndarray:
        """One model's probabilities (films × classes); ``"ensemble"`` is the mean of every backbone's."""
        if name == "ensemble":
            return average_probabilities(np.array(list(self.probabilities.values())))
        return np.array(self.probabilities[name])

    def label_indices(self) -> np.ndarray:
        """Each film's true class as an index into ``classes``."""
        return np.array([self.classes.index(label) for label in self.labels])

    @classmethod
    def from_dict(cls, record: Any, where: str) -> Films:
        values = checked(cls, record, where)
        return cls(**{**values, "classes": tuple(values.get("classes", CLASSES))})

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "classes": list(self.classes)}


def joined(members: Mapping[str, tuple[Films, str]]) -> Films:
    """The same films measured in separate reports as one ``Films``: ``members`` maps each member's name to a
    report's films and the model there whose probabilities it takes. Rows follow the first member's film order;
    the ``"ensemble"`` of the result is the members' mean."""
    first = next(iter(members.values()))[0]
    rows = {}
    for name, (films, model) in members.items():
        if sorted(films.sha256) != sorted(first.sha256):
            raise CovidNetError(f"{name}'s films are not the same films as the others': they cannot be joined.")
        row_of = {sha: i for i, sha in enumerate(films.sha256)}
        rows[name] = films.of_model(model)[[row_of[sha] for sha in first.sha256]].tolist()
    return Films(first.sha256, first.labels, first.origins, first.patients, rows, first.classes)
