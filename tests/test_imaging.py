"""read_scan on images this file makes in every supported mode and format, on DICOMs written with
pydicom, on real scans, and on files it must refuse with a clear message."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from scan_files import H, W, compressed_dicom, dicom, encode, noise, png_claiming, ramp, zip_bytes

from covidnet import ScanError, read_scan
from covidnet.io.reading import DISPLAY_MAX_SIDE
from covidnet.notices import WarningCode


def dark_left_bright_right(image: Image.Image) -> bool:
    pixels = np.asarray(image, dtype=float)
    return pixels[:, :10].mean() < 30 and pixels[:, -10:].mean() > 225


@pytest.mark.parametrize(
    ("mode", "fmt"),
    [
        ("L", "PNG"),
        ("L", "JPEG"),
        ("L", "BMP"),
        ("L", "TIFF"),
        ("L", "WEBP"),
        ("RGB", "PNG"),
        ("RGB", "JPEG"),
        ("CMYK", "JPEG"),
        ("CMYK", "TIFF"),
        ("RGBA", "PNG"),
        ("LA", "PNG"),
        ("P", "PNG"),
        ("P", "GIF"),
        ("1", "PNG"),
    ],
)
def test_every_mode_reads_as_8bit_greyscale_with_the_same_picture(mode, fmt):
    picture = Image.fromarray(ramp()).convert(mode)
    scan = read_scan(encode(picture, fmt), name=f"ramp.{fmt.lower()}")
    assert scan.image.mode == "L"
    assert scan.image.size == (W, H) == scan.original_size
    assert scan.format == fmt
    if mode != "1":  # a 1-bit image dithers the ramp
        assert dark_left_bright_right(scan.image)
    stores_colour = mode in ("RGB", "CMYK", "RGBA", "P") or fmt == "WEBP"  # WebP has no grey mode
    assert (scan.colour is not None) == stores_colour


def test_16bit_png_is_stretched_to_the_full_range():
    scan = read_scan(encode(Image.fromarray(ramp(np.uint16, 4095)), "PNG"), name="x.png")
    assert np.asarray(scan.image).min() == 0 and np.asarray(scan.image).max() == 255
    assert dark_left_bright_right(scan.image)


def test_float_tiff_is_stretched_to_the_full_range():
    scan = read_scan(encode(Image.fromarray(ramp(np.float32, 1.0) - 0.5), "TIFF"), name="x.tif")
    assert dark_left_bright_right(scan.image)


def test_transparent_pixels_become_black():
    rgba = np.full((H, W, 4), 255, np.uint8)
    rgba[:, : W // 2, 3] = 0
    scan = read_scan(encode(Image.fromarray(rgba), "PNG"), name="x.png")
    pixels = np.asarray(scan.image)
    assert pixels[:, : W // 2].max() == 0 and pixels[:, W // 2 :].min() == 255


def test_animated_gif_and_multipage_tiff_use_the_first_frame_and_say_so():
    first, second = Image.fromarray(ramp()), Image.fromarray(255 - ramp())
    for fmt in ("GIF", "TIFF"):
        data = encode(first, fmt, save_all=True, append_images=[second])
        scan = read_scan(data, name=f"x.{fmt.lower()}")
        assert dark_left_bright_right(scan.image)
        assert [w.code for w in scan.warnings] == [WarningCode.FIRST_FRAME]


def test_exif_orientation_is_applied():
    pixels = np.zeros((H, W), np.uint8)
    pixels[:20, :20] = 255  # a bright top-left corner as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    scan = read_scan(encode(Image.fromarray(pixels), "JPEG", exif=exif), name="x.jpg")
    assert scan.image.size == (H, W)
    shown = np.asarray(scan.image)
    assert shown[:20, -20:].mean() > 200 and shown[:20, :20].mean() < 50  # now top-right


def test_large_images_are_downscaled_for_display_but_keep_their_original_size():
    scan = read_scan(encode(Image.fromarray(ramp(width=3000, height=2000)), "PNG"), name="x.png")
    assert max(scan.image.size) == DISPLAY_MAX_SIDE
    assert scan.original_size == (3000, 2000)
    assert dark_left_bright_right(scan.image)


def test_paths_and_file_objects_read_like_bytes(tmp_path):
    data = encode(Image.fromarray(ramp()), "PNG")
    path = tmp_path / "scan.png"
    path.write_bytes(data)
    from_path, from_file = read_scan(path), read_scan(io.BytesIO(data), name="scan.png")
    assert from_path.name == str(path) and from_file.name == "scan.png"
    assert np.array_equal(np.asarray(from_path.image), np.asarray(from_file.image))


def test_real_chest_xrays_read_at_their_stored_size(real_scans):
    for path in real_scans:
        scan = read_scan(path)
        stored = Image.open(path)
        assert scan.image.mode == "L" and scan.image.size == stored.size
        assert np.array_equal(np.asarray(scan.image), np.asarray(stored.convert("L")))


# --- DICOM -------------------------------------------------------------------------------------


def test_dicom_monochrome2_keeps_and_monochrome1_inverts_brightness():
    data = ramp(np.uint16, 4095)
    assert dark_left_bright_right(read_scan(dicom(data), name="a.dcm").image)
    inverted = np.asarray(read_scan(dicom(data, photometric="MONOCHROME1"), name="b.dcm").image)
    assert inverted[:, :10].mean() > 225 and inverted[:, -10:].mean() < 30


def test_dicom_is_recognised_by_content_without_a_suffix():
    scan = read_scan(dicom(ramp(np.uint16, 4095)), name="upload")
    assert scan.format == "DICOM" and dark_left_bright_right(scan.image)


def test_dicom_rescale_slope_is_applied():
    data = dicom(ramp(np.uint16, 4095), RescaleSlope=-1, RescaleIntercept=4095)
    pixels = np.asarray(read_scan(data, name="a.dcm").image)
    assert pixels[:, :10].mean() > 225 and pixels[:, -10:].mean() < 30


def test_dicom_voi_window_is_applied():
    data = dicom(ramp(np.uint16, 4095), WindowCenter=1000, WindowWidth=200)
    pixels = np.asarray(read_scan(data, name="a.dcm").image, dtype=float)
    column = {value: int(value / 4095 * (W - 1)) for value in (500, 1000, 2000)}
    assert pixels[:, column[500]].mean() == 0
    assert pixels[:, column[2000]].mean() == 255
    assert 60 < pixels[:, column[1000]].mean() < 200  # mid-window is mid-grey


def test_multiframe_dicom_uses_the_first_frame():
    frames = np.stack([ramp(np.uint16, 4095), 4095 - ramp(np.uint16, 4095)])
    scan = read_scan(dicom(frames), name="a.dcm")
    assert dark_left_bright_right(scan.image)
    assert [w.code for w in scan.warnings] == [WarningCode.FIRST_FRAME]


def test_dicom_reading_tags_are_kept_and_patient_data_never_is():
    scan = read_scan(dicom(ramp(np.uint16, 4095)), name="a.dcm")
    assert scan.dicom_tags["Modality"] == "CR" and scan.dicom_tags["ViewPosition"] == "PA"
    shown = repr(scan.dicom_tags)
    assert "Doe" not in shown and "PID-12345" not in shown and "1970" not in shown
    assert not any(key.startswith("Patient") for key in scan.dicom_tags)


def test_dicom_without_pixel_data_is_refused_clearly():
    with pytest.raises(ScanError, match="no pixel data"):
        read_scan(dicom(None), name="a.dcm")


def test_compressed_dicom_without_a_decoder_is_refused_clearly():
    with pytest.raises(ScanError, match=r"(compressed|damaged)"):
        read_scan(compressed_dicom(), name="a.dcm")


# --- what must be refused ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "name", "message"),
    [
        (b"", "empty.png", "empty"),
        (b"just some words\n", "notes.png", "text file"),
        (b"<!DOCTYPE html><html><body>hi</body></html>", "page.jpg", "web page"),
        (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", "report.pdf", "PDF document"),
        (b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"></svg>', "x.svg", "SVG"),
        (zip_bytes(), "scans.zip", "ZIP archive"),
        (bytes(range(256)) * 8, "noise.bin", "not an image or DICOM file"),
        (encode(Image.fromarray(noise()), "PNG")[:3000], "cut.png", "damaged or truncated"),
        (encode(Image.fromarray(noise()), "JPEG")[:3000], "cut.jpg", "damaged or truncated"),
        (encode(Image.new("L", (32, 32)), "PNG"), "small.png", "at least 64"),
        (encode(Image.new("L", (1, 1)), "PNG"), "dot.png", "at least 64"),
        (encode(Image.new("L", (4000, 3)), "PNG"), "strip.png", "at least 64"),
        (png_claiming(100_000, 100_000), "bomb.png", "decompression bomb|megapixels"),
        (png_claiming(9000, 9000), "big.png", "megapixels"),
        (b"DICM" * 50, "fake.dcm", "not an image or DICOM file"),
    ],
)
def test_unreadable_input_raises_one_clear_error(data, name, message):
    with pytest.raises(ScanError, match=message) as excinfo:
        read_scan(data, name=name)
    assert name in str(excinfo.value)
    assert "\n" not in str(excinfo.value)


def test_missing_file_raises_scan_error(tmp_path):
    with pytest.raises(ScanError, match="Cannot open"):
        read_scan(tmp_path / "nope.png")


def test_a_jpeg_of_8192_pixels_square_is_read_at_display_size():
    data = encode(Image.new("L", (8192, 8192), 100), "JPEG", quality=50)
    scan = read_scan(data, name="huge.jpg")
    assert scan.original_size == (8192, 8192)
    assert max(scan.image.size) == DISPLAY_MAX_SIDE
