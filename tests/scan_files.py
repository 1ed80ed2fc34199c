"""Files the tests make: images in every mode, DICOMs written with pydicom, and odd or broken inputs."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import ExplicitVRLittleEndian, JPEGBaseline8Bit, SecondaryCaptureImageStorage, generate_uid

from covidnet.io.reading import read_scan

W, H = 160, 120


def ramp(dtype=np.uint8, high: float = 255, width: int = W, height: int = H) -> np.ndarray:
    """Dark on the left, bright on the right."""
    return np.tile(np.linspace(0, high, width), (height, 1)).astype(dtype)


def encode(im: Image.Image, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    im.save(buffer, fmt, **params)
    return buffer.getvalue()


def dicom(pixels: np.ndarray | None, *, photometric: str = "MONOCHROME2", preamble: bool = True, **tags) -> bytes:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.ViewPosition = "CR", "PA"
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = "Doe^Jane", "PID-12345", "19700101"
    if pixels is not None:
        ds.set_pixel_data(pixels, photometric_interpretation=photometric, bits_stored=12)
    for key, value in tags.items():
        setattr(ds, key, value)
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=preamble)
    return buffer.getvalue()


def compressed_dicom() -> bytes:
    """A DICOM whose pixel data claims JPEG Baseline but is not a JPEG."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = H, W, 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = encapsulate([b"\xff\xd8\xff\xe0 not really a jpeg \xff\xd9"])
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares a huge size (a decompression bomb)."""
    data = bytearray(encode(Image.new("L", (1, 1)), "PNG"))
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def noise() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (H, W), dtype=np.uint8)


def zip_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("scan.png", encode(Image.fromarray(ramp()), "PNG"))
    return buffer.getvalue()


def odd_inputs() -> list[tuple[str, bytes]]:
    """At least 30 odd, broken or hostile uploads, each named as a user might name it."""
    picture = Image.fromarray(ramp(width=320, height=320))
    exif = Image.Exif()
    exif[0x0112] = 6
    frames = [picture, Image.fromarray(255 - ramp(width=320, height=320))]
    no_preamble = dicom(ramp(np.uint16, 4095, 320, 320), preamble=False)
    return [
        ("empty.png", b""),
        ("notes.png", b"just some words, not an image\n"),
        ("page.jpg", b"<!DOCTYPE html><html><body>not an image</body></html>"),
        ("random.png", np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes()),
        ("truncated.png", encode(Image.fromarray(noise()), "PNG")[:3000]),
        ("truncated.jpg", encode(Image.fromarray(noise()), "JPEG")[:3000]),
        ("one_pixel.png", encode(Image.new("L", (1, 1)), "PNG")),
        ("small.png", encode(Image.new("L", (32, 32)), "PNG")),
        ("strip.png", encode(Image.new("L", (4000, 3)), "PNG")),
        ("smallest_allowed.png", encode(picture.resize((64, 64)), "PNG")),
        ("bomb.png", png_claiming(100_000, 100_000)),
        ("huge.jpg", encode(Image.new("L", (8192, 8192), 90), "JPEG", quality=50)),
        ("sixteen_bit.png", encode(Image.fromarray(ramp(np.uint16, 4095, 320, 320)), "PNG")),
        ("float.tif", encode(Image.fromarray(ramp(np.float32, 1.0, 320, 320)), "TIFF")),
        ("grey_alpha.png", encode(picture.convert("LA"), "PNG")),
        ("rgba.png", encode(picture.convert("RGBA"), "PNG")),
        ("cmyk.jpg", encode(picture.convert("CMYK"), "JPEG")),
        ("palette.png", encode(picture.convert("P"), "PNG")),
        ("one_bit.bmp", encode(picture.convert("1"), "BMP")),
        ("scan.webp", encode(picture, "WEBP")),
        ("animated.gif", encode(frames[0], "GIF", save_all=True, append_images=frames[1:])),
        ("pages.tif", encode(frames[0], "TIFF", save_all=True, append_images=frames[1:])),
        ("rotated.jpg", encode(picture, "JPEG", exif=exif)),
        ("mono1.dcm", dicom(ramp(np.uint16, 4095, 320, 320), photometric="MONOCHROME1")),
        ("mono2.dcm", dicom(ramp(np.uint16, 4095, 320, 320))),
        ("no_pixels.dcm", dicom(None)),
        ("compressed.dcm", compressed_dicom()),
        ("no_preamble.dcm", no_preamble),
        ("jpeg_named.dcm", encode(picture, "JPEG")),
        ("scans.zip", zip_bytes()),
        ("report.pdf", b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n"),
        ("drawing.svg", b'<svg xmlns="http://www.w3.org/2000/svg" width="400" height="400"></svg>'),
    ]


def colour_photo() -> bytes:
    """A colour picture (no radiograph is coloured): the chest X-ray gate refuses it whatever the weights."""
    return encode(Image.fromarray(np.random.default_rng(1).integers(0, 256, (300, 300, 3), dtype=np.uint8)), "PNG")


def one_lung_field(frontal: Path) -> bytes:
    """The right 45% of a frontal film: one lung field where a frontal view shows two side by side, as a lateral
    view shows (the shared set holds no lateral film; the gate calls the shared pneumonia film's a lateral view)."""
    image = read_scan(frontal).image
    return encode(image.crop((int(image.width * 0.55), 0, image.width, image.height)), "PNG")
