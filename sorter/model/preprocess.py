"""Decode a photo into the network's input exactly as the bundle's config says.

Speed matters here more than anywhere: a 12-megapixel JPEG is decoded at 1/8 scale in the DCT
domain (``Image.draft``), resized once with a crop box, and only then rotated by its EXIF
orientation, so almost no full-size pixel is ever touched. Training uses the same function, so a
model sees identical pixels when it is trained and when it sorts.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from sorter.errors import UnsupportedImageError
from sorter.files.images import SNIFF_BYTES, sniff_format
from sorter.model.config import BundleConfig
from sorter.model.people import SIDE, FaceFinder

try:  # HEIC/HEIF from phones; optional so a minimal install still sorts JPEGs.
    import pillow_heif

    pillow_heif.register_heif_opener()
except ImportError:  # pragma: no cover - depends on the environment
    pass

MAX_PIXELS = 200_000_000
"""Pillow refuses more than this many pixels (a decompression bomb guard); 200 MP covers phones."""
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
ImageFile.LOAD_TRUNCATED_IMAGES = False

_RESAMPLE = {
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "nearest": Image.Resampling.NEAREST,
}
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_EXIF_ORIENTATION = 0x0112


class Preprocessor:
    """Turns a file into an ``H×W×3`` uint8 array; normalisation happens batched on the device.

    Args:
        config: the bundle's config (input size, resize method, interpolation).
        faces: a face detector to run on the whole decoded photo (see :meth:`with_faces`).
    """

    def __init__(self, config: BundleConfig, faces: FaceFinder | None = None) -> None:
        self.height, self.width = config.input_size
        self.resize = config.resize
        self.crop_pct = config.crop_pct
        self.resample = _RESAMPLE[config.interpolation]
        self.faces = faces

    def __call__(self, path: Path) -> np.ndarray:
        return self.with_faces(path)[0]

    def with_faces(self, path: Path) -> tuple[np.ndarray, float]:
        """The network's input and the largest face's prominence (0 without a detector): the
        detector sees the photo decoded once for both, whole and upright."""
        try:
            with Image.open(path) as img:
                return self._convert(img)
        except UnsupportedImageError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise UnsupportedImageError(path, "the image is too large to open safely") from exc
        except UnidentifiedImageError as exc:
            raise UnsupportedImageError(path, _unreadable_reason(path)) from exc
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            if isinstance(exc, OSError) and exc.errno is not None:
                from sorter.errors import describe_os_error

                raise UnsupportedImageError(path, describe_os_error(exc)) from exc
            raise UnsupportedImageError(path, "the file is truncated or corrupt") from exc
        except MemoryError as exc:
            raise UnsupportedImageError(path, "not enough memory to open the image") from exc

    def _convert(self, img: Image.Image) -> tuple[np.ndarray, float]:
        if img.width * img.height > MAX_PIXELS:  # Pillow only warns below twice its limit
            raise UnsupportedImageError(
                Path(getattr(img, "filename", "") or "image"), "the image is too large to open safely"
            )
        orientation = 1
        try:
            orientation = int(img.getexif().get(_EXIF_ORIENTATION, 1))
        except Exception:  # a broken EXIF block must not lose the photo
            orientation = 1
        swap = orientation in (5, 6, 7, 8)
        tw, th = (self.height, self.width) if swap else (self.width, self.height)

        if self.resize == "crop":
            need_w, need_h = math.ceil(tw / self.crop_pct), math.ceil(th / self.crop_pct)
        else:
            need_w, need_h = tw, th
        if img.format == "JPEG" and img.mode in ("RGB", "L", "YCbCr"):
            img.draft("RGB", (need_w, need_h))
        img.load()

        img = _to_rgb_or_rgba(img)
        w, h = img.size
        if w < 1 or h < 1:
            raise UnsupportedImageError(Path(getattr(img, "filename", "") or "image"), "the image is empty")
        prominence = self._prominence(img, orientation) if self.faces is not None else 0.0
        if self.resize == "crop":
            scale = max(need_w / w, need_h / h)
            box_w, box_h = tw / scale, th / scale
            left, top = (w - box_w) / 2, (h - box_h) / 2
            box = (left, top, left + box_w, top + box_h)
            img = img.resize((tw, th), self.resample, box=box)
        else:
            img = img.resize((tw, th), self.resample)
        if img.mode == "RGBA":
            white = Image.new("RGBA", img.size, (255, 255, 255, 255))
            img = Image.alpha_composite(white, img).convert("RGB")
        method = _TRANSPOSE.get(orientation)
        if method is not None:
            img = img.transpose(method)
        return np.array(img, dtype=np.uint8), prominence  # writable: torch.from_numpy needs it

    def _prominence(self, img: Image.Image, orientation: int) -> float:
        """Faces on a small grey copy, turned upright (the cascade finds upright faces only)."""
        assert self.faces is not None
        gray = img.convert("L")
        gray.thumbnail((SIDE, SIDE), Image.Resampling.BILINEAR, reducing_gap=None)
        method = _TRANSPOSE.get(orientation)
        if method is not None:
            gray = gray.transpose(method)
        return self.faces.prominence(np.asarray(gray))


def _to_rgb_or_rgba(img: Image.Image) -> Image.Image:
    """Bring any mode to RGB, keeping transparency as RGBA so it can be flattened onto white."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = arr.max() if arr.size else 0.0
        scale = 255.0 / top if top > 255 else 1.0
        return Image.fromarray(np.clip(arr * scale, 0, 255).astype(np.uint8), "L").convert("RGB")
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in img.info):
        return img.convert("RGBA")
    return img.convert("RGB")


def _unreadable_reason(path: Path) -> str:
    """A file whose first bytes announce a known format is damaged, not 'not an image'."""
    try:
        with open(path, "rb") as fh:
            fmt = sniff_format(fh.read(SNIFF_BYTES))
    except OSError:
        fmt = None
    if fmt is not None:
        return f"the file is truncated or corrupt (a damaged {fmt})"
    return "not an image, or an unsupported format"
