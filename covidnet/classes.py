"""The task CovidNet's models are trained for: the classes, their order in every model head, how they are shown to
people, and which of them the measurements single out. A checkpoint's metadata carries its own copy (``task``);
no other module spells a class name."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass(frozen=True)
class Task:
    """The classes a model tells apart and the roles measurements give them."""

    classes: tuple[str, ...] = ("covid", "normal", "pneumonia")
    display_names: dict[str, str] = field(
        default_factory=lambda: {"covid": "COVID-19", "normal": "Normal", "pneumonia": "Pneumonia"}
    )
    of_interest: str = "covid"  # the class whose sensitivity and specificity every report leads with
    normal: str = "normal"  # the class that means "no finding"
    confusable: tuple[str, str] = ("covid", "pneumonia")  # the pair that is easily confused (of interest, other)

    @property
    def diseases(self) -> tuple[str, ...]:
        """Every class but the normal one."""
        return tuple(c for c in self.classes if c != self.normal)

    @property
    def other_disease(self) -> str:
        """The class the one of interest is easily confused with (e.g. pneumonia that is not COVID-19)."""
        return self.confusable[1]

    def display_name(self, label: str) -> str:
        """The human-readable name of a class label, e.g. ``"covid"`` → ``"COVID-19"``."""
        return self.display_names[label]

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Task:
        known = {f.name for f in fields(cls)}
        if not isinstance(record, dict) or set(record) - known:
            raise TypeError(f"unknown task fields {sorted(set(record) - known)}")
        values = dict(record)
        for name in ("classes", "confusable"):
            if name in values:
                values[name] = tuple(values[name])
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


TASK = Task()
CLASSES: tuple[str, ...] = TASK.classes


def display_name(label: str) -> str:
    """The human-readable name of a class label, e.g. ``"covid"`` → ``"COVID-19"``."""
    return TASK.display_name(label)
