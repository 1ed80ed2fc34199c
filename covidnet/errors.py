"""The exceptions CovidNet raises: one family, each with a message a person can act on."""


class CovidNetError(Exception):
    """Base class of every error CovidNet raises on purpose."""


class ScanError(CovidNetError):
    """A file that cannot be read as a chest X-ray image (wrong type, damaged, too large or small)."""


class UnknownBackboneError(CovidNetError, KeyError):
    """A backbone name that is not in the registry."""

    def __str__(self) -> str:  # KeyError would wrap the message in quotes
        return str(self.args[0]) if self.args else ""


class UnknownCamMethodError(CovidNetError, KeyError):
    """A Grad-CAM method name that CovidNet does not offer."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class CheckpointError(CovidNetError):
    """Trained weights that are missing, tampered with or inconsistent with their metadata."""


class TrainingSetupError(CovidNetError, ValueError):
    """A training setting that cannot be used: an unknown option value, a source that matches no scan, or data
    that leaves no image to train or validate on."""
