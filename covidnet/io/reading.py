"""Reading scans: any supported file → one canonical 8-bit greyscale image.

``read_scan`` is the only way CovidNet opens a scan, for training, evaluation, the CLI and the app.
It returns the display image (the one the heatmap is drawn on, and the one preprocessing resizes),
so a heatmap resized back to the display image lines up exactly with the anatomy.

Longer than our usual ~250 lines on purpose: picture files and DICOM share the size checks, the
greyscale conversion and the display downscaling, and every way a file can fail is turned into one
``ScanError`` here, at the only boundary where untrusted bytes come in.
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pydicom
from PIL import Image, ImageOps, UnidentifiedImageError
from pydicom.pixels import apply_modality_lut, apply_voi_lut

from covidnet.errors import ScanError
from covidnet.notices import ScanWarning, WarningCode

ScanSource = str | os.PathLike | bytes | BinaryIO

SUPPORTED_FORMATS = "PNG, JPEG, BMP, TIFF, GIF, WebP or DICOM"
PIL_FORMATS = ("PNG", "JPEG", "BMP", "TIFF", "GIF", "WEBP")  # JPEG includes multi-picture (MPO)
SCAN_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".webp", ".dcm", ".dicom")
MIN_SIDE = 64  # pixels; a smaller image holds too little anatomy to classify
MAX_PIXELS = 8192 * 8192  # refused from the header, before any decoding
MAX_FILE_BYTES = 200 * 2**20  # the app's upload limit; a chest radiograph DICOM is rarely > 50 MB
DISPLAY_MAX_SIDE = 1024  # larger scans are downscaled once, on reading

# DICOM attributes that matter for reading a radiograph. Patient data never leaves this module.
DICOM_READING_TAGS = (
    "Modality",
    "ViewPosition",
    "BodyPartExamined",
    "PhotometricInterpretation",
    "BitsStored",
    "Rows",
    "Columns",
    "NumberOfFrames",
)


@dataclass(frozen=True)
class Scan:
    """A decoded scan, ready for preprocessing and display."""

    image: Image.Image  # mode "L", at most DISPLAY_MAX_SIDE on its longer side
    name: str
    format: str  # "PNG", "JPEG", …, "DICOM"
    original_size: tuple[int, int]  # (width, height) as stored in the file
    colour: Image.Image | None = None  # the RGB picture when the file held colour channels
    dicom_tags: dict[str, str] = field(default_factory=dict)
    warnings: tuple[ScanWarning, ...] = ()


def read_scan(source: ScanSource, *, name: str | None = None) -> Scan:
    """Read a scan from a path, bytes or a binary file object (e.g. a Streamlit upload).

    Raises ``ScanError`` with a message a person can act on for anything that is not a readable
    image or DICOM file of a sensible size.
    """
    data, name = _read_bytes(source, name)
    if not data:
        raise ScanError(f"{name!r} is empty (0 bytes).")
    if len(data) > MAX_FILE_BYTES:
        raise ScanError(
            f"{name!r} is {len(data) / 2**20:.0f} MB; CovidNet reads files up to {MAX_FILE_BYTES // 2**20} MB."
        )
    if data[128:132] == b"DICM":
        return _read_dicom(data, name)
    if name.lower().endswith((".dcm", ".dicom")):  # DICOM without a preamble, or a misnamed picture
        try:
            return _read_dicom(data, name)
        except ScanError as dicom_error:
            try:
                return _read_picture(data, name)
            except ScanError:
                raise dicom_error from None
    return _read_picture(data, name)


def _read_bytes(source: ScanSource, name: str | None) -> tuple[bytes, str]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), name or "upload"
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        try:
            with path.open("rb") as f:
                data = f.read(MAX_FILE_BYTES + 1)
        except OSError as e:
            raise ScanError(f"Cannot open {str(path)!r}: {e.strerror or e}.") from None
        return data, name or str(path)
    data = source.read(MAX_FILE_BYTES + 1)
    return data, name or getattr(source, "name", None) or "upload"


def _not_readable(name: str, data: bytes) -> ScanError:
    head = data[:512].lstrip()
    kinds = {
        b"%PDF": "a PDF document",
        b"PK\x03\x04": "a ZIP archive",
        b"<svg": "an SVG drawing",
        b"<?xml": "an XML or SVG file",
        b"<!doctype html": "a web page (HTML)",
        b"<html": "a web page (HTML)",
    }
    kind = next((k for magic, k in kinds.items() if head.lower().startswith(magic.lower())), None)
    if kind is None and b"\x00" not in head and head:
        try:
            head.decode("utf-8")
            kind = "a text file"
        except UnicodeDecodeError:
            pass
    looks = f" It looks like {kind}." if kind else ""
    return ScanError(
        f"{name!r} is not an image or DICOM file CovidNet can read.{looks} "
        f"Please upload a chest X-ray as {SUPPORTED_FORMATS}."
    )


def _damaged(name: str, reason: object) -> ScanError:
    return ScanError(
        f"{name!r} could not be decoded: the file seems damaged or truncated ({reason}). Please export the image again."
    )


def _check_size(name: str, width: int, height: int) -> None:
    if width * height > MAX_PIXELS:
        raise ScanError(
            f"{name!r} is {width}×{height} pixels, larger than CovidNet reads "
            f"({MAX_PIXELS / 1e6:.0f} megapixels). Please downscale it."
        )
    if min(width, height) < MIN_SIDE:
        raise ScanError(
            f"{name!r} is only {width}×{height} pixels; CovidNet needs at least {MIN_SIDE} pixels on each side."
        )


def _read_picture(data: bytes, name: str) -> Scan:
    # Parsers of damaged files raise many exception types (OSError, SyntaxError, ValueError,
    # struct.error, …); at this boundary every one of them means "cannot decode this file".
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data), formats=PIL_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ScanError(
            f"{name!r} declares an enormous image (a decompression bomb?); CovidNet reads up to "
            f"{MAX_PIXELS / 1e6:.0f} megapixels."
        ) from None
    except UnidentifiedImageError:
        raise _not_readable(name, data) from None
    except Exception as e:  # noqa: BLE001 - see above
        raise _damaged(name, e) from None

    original_size, file_format = im.size, im.format or "image"
    _check_size(name, *original_size)
    notes: list[ScanWarning] = []
    frames = getattr(im, "n_frames", 1)
    if frames > 1:
        notes.append(_first_frame_note(name, frames))
    try:
        if im.format == "JPEG":
            im.draft(im.mode, (DISPLAY_MAX_SIDE, DISPLAY_MAX_SIDE))  # decode big JPEGs at 1/2…1/8
        im.load()
        im = ImageOps.exif_transpose(im)
        grey, colour = _to_grey(im)
    except ScanError:
        raise
    except Exception as e:  # noqa: BLE001 - see above
        raise _damaged(name, e) from None
    return Scan(
        image=_fit_display(grey),
        name=name,
        format=file_format,
        original_size=original_size,
        colour=_fit_display(colour) if colour is not None else None,
        warnings=tuple(notes),
    )


def _first_frame_note(name: str, frames: int) -> ScanWarning:
    return ScanWarning(
        WarningCode.FIRST_FRAME, f"{name!r} holds {frames} frames; CovidNet analysed the first one.", {"frames": frames}
    )


def _to_grey(im: Image.Image) -> tuple[Image.Image, Image.Image | None]:
    """8-bit greyscale, plus the RGB picture when the image had colour channels."""
    if im.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        return _to_uint8(np.asarray(im, dtype=np.float64)), None
    if im.mode == "1":
        return im.convert("L"), None
    if im.mode in ("P", "PA"):
        im = im.convert("RGBA")
    # Transparent areas become black, the background of a radiograph.
    if im.mode in ("LA", "La"):
        im = Image.composite(im.getchannel("L"), Image.new("L", im.size), im.getchannel("A"))
    elif im.mode in ("RGBA", "RGBa"):
        im = Image.alpha_composite(Image.new("RGBA", im.size, (0, 0, 0, 255)), im.convert("RGBA"))
    if im.mode == "L":
        return im, None
    rgb = im.convert("RGB")
    return rgb.convert("L"), rgb


def _stretch(pixels: np.ndarray) -> np.ndarray:
    """Stretch any numeric range to 0…255 (16-bit, float and rescaled DICOM data)."""
    pixels = np.nan_to_num(pixels.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    low, high = float(pixels.min()), float(pixels.max())
    scaled = (pixels - low) / (high - low) * 255.0 if high > low else np.zeros_like(pixels)
    return np.round(scaled).astype(np.uint8)


def _to_uint8(pixels: np.ndarray) -> Image.Image:
    return Image.fromarray(_stretch(pixels))


def _fit_display(im: Image.Image) -> Image.Image:
    if max(im.size) > DISPLAY_MAX_SIDE:
        im = im.copy()
        im.thumbnail((DISPLAY_MAX_SIDE, DISPLAY_MAX_SIDE), Image.Resampling.LANCZOS)
    return im


def _read_dicom(data: bytes, name: str) -> Scan:
    # pydicom raises many exception types for bytes that are not (valid) DICOM; all mean "unreadable".
    syntax = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(io.BytesIO(data), force=True)
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        if syntax is None and "SOPClassUID" not in ds:
            raise _not_readable(name, data)
        if not any(key in ds for key in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
            raise ScanError(f"{name!r} is a DICOM file without an image (it has no pixel data).")
        tags = {tag: str(ds[tag].value) for tag in DICOM_READING_TAGS if tag in ds}
        _check_size(name, int(ds.Columns), int(ds.Rows))
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        grey, colour = _dicom_image(ds, ds.pixel_array[0] if frames > 1 else ds.pixel_array)
    except ScanError:
        raise
    except Exception as e:  # noqa: BLE001 - see above; missing decoders raise RuntimeError too
        if syntax is not None and syntax.is_compressed:
            raise ScanError(
                f"{name!r} is a DICOM compressed as {syntax.name}, which CovidNet cannot decode. "
                "Please export it as uncompressed DICOM, PNG or JPEG."
            ) from None
        raise _damaged(name, e) from None

    notes = [_first_frame_note(name, frames)] if frames > 1 else []
    _check_size(name, *grey.size)
    return Scan(
        image=_fit_display(grey),
        name=name,
        format="DICOM",
        original_size=grey.size,
        colour=_fit_display(colour) if colour is not None else None,
        dicom_tags=tags,
        warnings=tuple(notes),
    )


def _dicom_image(ds: pydicom.Dataset, pixels: np.ndarray) -> tuple[Image.Image, Image.Image | None]:
    """One frame's stored values → display greyscale (modality LUT, VOI window, MONOCHROME1)."""
    if int(ds.get("SamplesPerPixel", 1)) > 1:
        rgb = pixels if pixels.dtype == np.uint8 else _stretch(pixels)
        colour = Image.fromarray(np.ascontiguousarray(rgb[..., :3]))
        return colour.convert("L"), colour
    grey = _to_uint8(np.asarray(apply_voi_lut(apply_modality_lut(pixels, ds), ds)))
    if ds.get("PhotometricInterpretation") == "MONOCHROME1":
        grey = ImageOps.invert(grey)  # MONOCHROME1 stores bright bone as low values
    return grey, None
