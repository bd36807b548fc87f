"""Share cards: a PNG made by the server (Pillow) celebrating a sale, for the seller to post."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont, ImageOps

WIDTH, HEIGHT = 1200, 630
BG, INK, ACCENT = (24, 22, 38), (255, 255, 255), (255, 72, 120)


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow built without FreeType: the small bitmap font still renders
        return ImageFont.load_default()


Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


def _fit(draw: ImageDraw.ImageDraw, text: str, size: int, width: int) -> tuple[str, Font]:
    """Shorten ``text`` with an ellipsis until it fits ``width`` pixels."""
    font = _font(size)
    if draw.textlength(text, font=font) <= width:
        return text, font
    while len(text) > 1 and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text.rstrip() + "…", font


def sale_card(title: str, price: str, seller: str, photo: Path | None = None, first: bool = True) -> bytes:
    image = Image.new("RGB", (WIDTH, HEIGHT), BG)
    draw = ImageDraw.Draw(image)
    left = 60
    if photo is not None and photo.exists():
        with Image.open(photo) as raw:
            thumb = ImageOps.fit(raw.convert("RGB"), (460, 510))
        image.paste(thumb, (WIDTH - 460 - 60, 60))
        text_width = WIDTH - 460 - 60 - left - 40
    else:
        text_width = WIDTH - 2 * left
    draw.rectangle((0, 0, 18, HEIGHT), fill=ACCENT)
    headline = "My first sale!" if first else "Sold!"
    draw.text((left, 70), headline, font=_font(84), fill=ACCENT)
    line, font = _fit(draw, title, 56, text_width)
    draw.text((left, 210), line, font=font, fill=INK)
    draw.text((left, 300), price, font=_font(72), fill=INK)
    name, font = _fit(draw, f"@{seller}", 40, text_width)
    draw.text((left, 470), name, font=font, fill=(200, 200, 215))
    draw.text((left, 530), "sold live on liveshow", font=_font(34), fill=(150, 150, 170))
    out = io.BytesIO()
    image.save(out, "PNG", optimize=True)
    return out.getvalue()
