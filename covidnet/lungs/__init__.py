"""Lung segmentation: a small U-Net of our own, trained from scratch on ``../shared/data/lungs``.

    >>> from covidnet.lungs import segment_lungs
    >>> lungs = segment_lungs("scan.png")
    >>> lungs.mask.shape, lungs.box, lungs.quality, lungs.plausible

``segment`` (the API and its quality rule), ``model`` (the network and its mask conventions), ``checkpoint``
(``lungs.pt`` / ``lungs.json``, sha256-verified), ``data`` (the mask set and its grouped split) and ``train``.
"""

from covidnet.lungs.segment import LungMask, LungSegmenter, load_segmenter, segment_lungs

__all__ = ["LungMask", "LungSegmenter", "load_segmenter", "segment_lungs"]
