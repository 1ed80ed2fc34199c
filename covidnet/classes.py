"""The three classes, their order in every model head, and how they are shown to people."""

CLASSES: tuple[str, ...] = ("covid", "normal", "pneumonia")

DISPLAY_NAMES: dict[str, str] = {
    "covid": "COVID-19",
    "normal": "Normal",
    "pneumonia": "Pneumonia",
}


def display_name(label: str) -> str:
    """The human-readable name of a class label, e.g. ``"covid"`` → ``"COVID-19"``."""
    return DISPLAY_NAMES[label]
