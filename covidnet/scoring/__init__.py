"""Scoring whole archives: batched local scoring (``score``), output files with resume, and a Ray engine."""

from covidnet.scoring.pipeline import score

__all__ = ["score"]
