"""Photo storage: decode uploads for real, re-encode them without metadata, make thumbnails.

Uploads are never trusted by name or declared type: Pillow must decode the bytes as JPEG, PNG or WebP.
Re-encoding drops EXIF (phone photos carry GPS positions) and anything smuggled after the image data.
Files get random names under the uploads directory, so one seller cannot guess or overwrite another's.
"""

from __future__ import annotations

import io
import secrets
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from liveshow.errors import PayloadTooLarge, UnsupportedMediaType, ValidationFailed

FORMATS = {"JPEG": ("image/jpeg", ".jpg"), "PNG": ("image/png", ".png"), "WEBP": ("image/webp", ".webp")}
MAX_PIXELS = 40_000_000  # decompression bombs: a tiny file that claims a huge canvas
MAX_SIDE = 2000  # stored photos are scaled down to this; nobody needs more on a phone screen
THUMB_SIDE = 400
MIN_SIDE = 32


@dataclass(frozen=True)
class PreparedPhoto:
    """A decoded, normalised image ready to be written; nothing is on disk yet."""

    content_type: str
    extension: str
    full: bytes
    thumb: bytes


@dataclass(frozen=True)
class StoredPhoto:
    filename: str
    thumb_filename: str
    content_type: str


def prepare_photo(
    data: bytes, max_bytes: int, name: str = "photo", thumb_side: int = THUMB_SIDE
) -> PreparedPhoto:
    """Validate and re-encode one upload. Raises a 4xx DomainError naming the file on any problem."""
    if not data:
        raise ValidationFailed(f"{name}: the file is empty.")
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"{name}: larger than {max_bytes // (1024 * 1024)} MB.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            fmt = image.format or ""
            if fmt not in FORMATS:
                raise UnsupportedMediaType(f"{name}: only JPEG, PNG or WebP images are accepted.")
            if image.width * image.height > MAX_PIXELS:
                raise PayloadTooLarge(f"{name}: the image has too many pixels.")
            image.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise UnsupportedMediaType(f"{name}: not a readable JPEG, PNG or WebP image.") from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise PayloadTooLarge(f"{name}: the image has too many pixels.") from exc
    if min(image.size) < MIN_SIDE:
        raise ValidationFailed(f"{name}: the image is too small (at least {MIN_SIDE} pixels a side).")
    upright: Image.Image = ImageOps.exif_transpose(image)
    content_type, extension = FORMATS[fmt]
    full = _encode(_fit(upright, MAX_SIDE), fmt)
    thumb = _encode(_fit(upright, thumb_side), fmt)
    return PreparedPhoto(content_type=content_type, extension=extension, full=full, thumb=thumb)


def prepare_image(image: Image.Image, thumb_side: int = THUMB_SIDE) -> PreparedPhoto:
    """A generated image (the demo's) through the same encoder as uploads."""
    return PreparedPhoto(
        content_type="image/jpeg",
        extension=".jpg",
        full=_encode(_fit(image, MAX_SIDE), "JPEG"),
        thumb=_encode(_fit(image, thumb_side), "JPEG"),
    )


def _fit(image: Image.Image, side: int) -> Image.Image:
    copy = image.copy()
    copy.thumbnail((side, side), Image.Resampling.LANCZOS)
    return copy


def _encode(image: Image.Image, fmt: str) -> bytes:
    out = io.BytesIO()
    if fmt == "JPEG":
        if image.mode != "RGB":
            image = image.convert("RGB")
        image.save(out, "JPEG", quality=86, optimize=True, progressive=True)
    elif fmt == "PNG":
        if image.mode not in ("RGB", "RGBA", "L", "LA", "P"):
            image = image.convert("RGBA")
        image.save(out, "PNG", optimize=True)
    else:
        if image.mode not in ("RGB", "RGBA"):
            image = image.convert("RGBA" if "A" in image.mode else "RGB")
        image.save(out, "WEBP", quality=85)
    return out.getvalue()


def thumb_name(filename: str) -> str:
    """The thumbnail saved beside a stored file (covers keep only the main name in their row)."""
    stem, dot, ext = filename.rpartition(".")
    return f"{stem}_t.{ext}" if dot else filename


class PhotoStore:
    """Writes prepared photos under one directory and removes them again; knows the upload limits."""

    def __init__(self, root: Path, max_bytes: int = 8 * 1024 * 1024, max_per_listing: int = 8) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.max_per_listing = max_per_listing

    def prepare(self, data: bytes, name: str = "photo", thumb_side: int = THUMB_SIDE) -> PreparedPhoto:
        return prepare_photo(data, self.max_bytes, name, thumb_side)

    def save(self, photo: PreparedPhoto, prefix: str = "p") -> StoredPhoto:
        self.root.mkdir(parents=True, exist_ok=True)
        stem = f"{prefix}_{secrets.token_hex(16)}"
        full_name = stem + photo.extension
        thumb_name = stem + "_t" + photo.extension
        (self.root / full_name).write_bytes(photo.full)
        (self.root / thumb_name).write_bytes(photo.thumb)
        return StoredPhoto(filename=full_name, thumb_filename=thumb_name, content_type=photo.content_type)

    def save_all(self, photos: list[PreparedPhoto], prefix: str = "p") -> list[StoredPhoto]:
        stored: list[StoredPhoto] = []
        try:
            for photo in photos:
                stored.append(self.save(photo, prefix))
        except OSError:
            self.discard(stored)
            raise
        return stored

    def discard(self, photos: list[StoredPhoto]) -> None:
        for photo in photos:
            self.remove(photo.filename, photo.thumb_filename)

    def remove(self, *names: str) -> None:
        for name in names:
            # Names come from our own database rows, but never let one escape the directory.
            if name and "/" not in name and "\\" not in name and not name.startswith("."):
                (self.root / name).unlink(missing_ok=True)
