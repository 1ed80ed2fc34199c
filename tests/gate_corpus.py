"""A corpus of images that are not chest X-rays, built offline, to measure the chest X-ray gate.

Photographs from scikit-image and scikit-learn (colour, greyscale, cropped, rotated, inverted), a CT-like
head phantom, rendered text documents, drawn shapes, gradients, noise and blank images: at least 150,
every one passed through ``read_scan`` as a PNG, like an upload. Needs scikit-image (requirements-dev.txt).

    python tests/gate_corpus.py DIR      # writes DIR/<kind>/<name>.png, for `covidnet gate-report --corpus DIR`
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont, ImageOps

from covidnet.io.reading import Scan, read_scan

COLOUR_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field", "retina",
                 "colorwheel", "logo")  # fmt: skip
GREY_PICTURES = ("camera", "coins", "moon", "page", "text", "clock", "brick", "grass", "gravel", "cell",
                 "microaneurysms", "shepp_logan_phantom", "horse", "binary_blobs", "checkerboard")  # fmt: skip


def non_xray_scans(seed: int = 0) -> list[tuple[str, str, Scan]]:
    """(kind, name, scan) for every image in the corpus."""
    return [(kind, name, read_scan(_png(image), name=f"{name}.png")) for kind, name, image in non_xray_images(seed)]


def non_xray_images(seed: int = 0) -> list[tuple[str, str, Image.Image]]:
    """(kind, name, image) for every image in the corpus, before it is encoded and read."""
    rng = np.random.default_rng(seed)
    return [*_photos(), *_documents(rng), *_drawings(rng), *_noise_and_blanks(rng)]


def write_corpus(folder: Path, seed: int = 0) -> int:
    """Write every image as ``folder/<kind>/<name>.png`` (the bytes ``non_xray_scans`` reads); return the count."""
    images = non_xray_images(seed)
    assert len({(kind, name) for kind, name, _ in images}) == len(images), "a name repeats within a kind"
    for kind, name, image in images:
        (folder / kind).mkdir(parents=True, exist_ok=True)
        (folder / kind / f"{name}.png").write_bytes(_png(image))
    return len(images)


def _photos() -> list[tuple[str, str, Image.Image]]:
    from skimage import data
    from sklearn.datasets import load_sample_images

    colour = [(n, Image.fromarray(getattr(data, n)()).convert("RGB")) for n in COLOUR_PHOTOS]
    colour += [(f"sklearn_{k}", Image.fromarray(im)) for k, im in enumerate(load_sample_images().images)]
    grey = [(n, Image.fromarray(_uint8(getattr(data, n)()))) for n in GREY_PICTURES]
    out = []
    for name, image in colour:
        out += [("colour photo", name, image), ("greyscale photo", f"{name}_grey", image.convert("L"))]
        out += _variants("greyscale photo", name, image.convert("L"))
    for name, image in grey:
        kind = "CT-like phantom" if name == "shepp_logan_phantom" else "greyscale picture"
        out += [(kind, name, image), (kind, f"{name}_inverted", ImageOps.invert(image))]
        out += _variants(kind, name, image)
    return out


def _variants(kind: str, name: str, image: Image.Image) -> list[tuple[str, str, Image.Image]]:
    w, h = image.size
    crop = image.crop((w // 4, h // 4, w // 4 + max(w // 2, 64), h // 4 + max(h // 2, 64)))
    return [(kind, f"{name}_crop", crop.resize((max(crop.width, 128), max(crop.height, 128)))),
            (kind, f"{name}_rotated", image.rotate(90, expand=True))]  # fmt: skip


def _documents(rng: np.random.Generator) -> list[tuple[str, str, Image.Image]]:
    words = [
        "patient",
        "report",
        "chest",
        "radiograph",
        "findings",
        "impression",
        "normal",
        "opacity",
        "consolidation",
        "lungs",
        "heart",
    ]
    out = []
    for k in range(24):
        dark = k % 4 == 3
        image = Image.new("L", (int(rng.integers(300, 700)), int(rng.integers(300, 900))), 20 if dark else 245)
        draw = ImageDraw.Draw(image)
        font = ImageFont.load_default(size=int(rng.integers(12, 36)))
        y = 10
        while y < image.height - 20:
            line = " ".join(rng.choice(words, int(rng.integers(3, 9))))
            draw.text((10, y), line, fill=230 if dark else 15, font=font)
            y += int(font.size * 1.6)
        out.append(("text document", f"document_{k}", image))
    return out


def _drawings(rng: np.random.Generator) -> list[tuple[str, str, Image.Image]]:
    out = []
    for k in range(16):
        image = Image.new("L", (400, 400), int(rng.choice([0, 255, 128])))
        draw = ImageDraw.Draw(image)
        for _ in range(int(rng.integers(3, 12))):
            x0, y0 = rng.integers(0, 300, 2)
            x1, y1 = x0 + rng.integers(20, 150), y0 + rng.integers(20, 150)
            shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
            shape((int(x0), int(y0), int(x1), int(y1)), fill=int(rng.integers(0, 256)))
        out.append(("drawing", f"shapes_{k}", image))
    ramp = np.linspace(0, 255, 320)
    yy, xx = np.mgrid[-1:1:320j, -1:1:320j]
    gradients = {
        "horizontal": np.tile(ramp, (320, 1)),
        "vertical": np.tile(ramp, (320, 1)).T,
        "diagonal": (np.add.outer(ramp, ramp) / 2),
        "radial": np.clip(np.hypot(xx, yy) / np.sqrt(2) * 255, 0, 255),
    }
    for name, pixels in gradients.items():
        out += [("gradient", f"gradient_{name}", Image.fromarray(_uint8(pixels))),
                ("gradient", f"gradient_{name}_inverted", Image.fromarray(_uint8(255 - pixels)))]  # fmt: skip
    return out


def _noise_and_blanks(rng: np.random.Generator) -> list[tuple[str, str, Image.Image]]:
    out = []
    for k, size in enumerate((128, 256, 320, 512)):
        out.append(("noise", f"uniform_{k}", Image.fromarray(rng.integers(0, 256, (size, size), dtype=np.uint8))))
        out.append(("noise", f"gaussian_{k}", Image.fromarray(_uint8(rng.normal(128, 40, (size, size))))))
        salt = np.where(rng.random((size, size)) < 0.5, 0, 255)
        out.append(("noise", f"salt_pepper_{k}", Image.fromarray(_uint8(salt))))
        out.append(
            ("colour noise", f"rgb_noise_{k}", Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)))
        )
    for level in (0, 40, 128, 200, 255):
        out.append(("blank", f"blank_{level}", Image.new("L", (320, 320), level)))
    out.append(("blank", "blank_colour", Image.new("RGB", (320, 320), (30, 120, 200))))
    return out


def _uint8(pixels: np.ndarray) -> np.ndarray:
    pixels = np.asarray(pixels, dtype=np.float64)
    if pixels.max() <= 1.0:
        pixels = pixels * 255.0
    return np.clip(pixels, 0, 255).astype(np.uint8)


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Write the gate corpus: DIR/<kind>/<name>.png.")
    parser.add_argument("folder", type=Path, metavar="DIR")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"wrote {write_corpus(args.folder, args.seed)} images to {args.folder}")
