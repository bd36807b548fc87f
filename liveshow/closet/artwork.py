"""Generated product shots for the demo closet: a garment silhouette per category on a studio backdrop,
with cylindrical shading, fabric grain, seams and a soft floor shadow. Pure Pillow, deterministic per seed."""

from __future__ import annotations

import math
import random

from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageFont, ImageOps

SIZE = 800
SS = 2  # supersampling for smooth silhouette edges

RGB = tuple[int, int, int]
Shape = list[tuple[float, float]]


def _poly(draw: ImageDraw.ImageDraw, points: Shape, fill: int = 255) -> None:
    draw.polygon([(x * SS, y * SS) for x, y in points], fill=fill)


def _ellipse(draw: ImageDraw.ImageDraw, box: tuple[float, float, float, float], fill: int = 255) -> None:
    draw.ellipse([v * SS for v in box], fill=fill)


def _silhouette(category: str) -> tuple[Image.Image, list[tuple[str, object]]]:
    """The garment mask (L, SIZE x SIZE) and detail strokes drawn on top of the shaded fabric."""
    mask = Image.new("L", (SIZE * SS, SIZE * SS), 0)
    d = ImageDraw.Draw(mask)
    details: list[tuple[str, object]] = []
    if category == "tops":
        _poly(
            d,
            [
                (330, 150),
                (470, 150),
                (585, 185),
                (680, 320),
                (610, 370),
                (560, 315),
                (560, 660),
                (240, 660),
                (240, 315),
                (190, 370),
                (120, 320),
                (215, 185),
            ],
        )
        details += [
            ("arc", (335, 100, 465, 205, 0, 180)),
            ("line", [(240, 315), (262, 300)]),
            ("line", [(560, 315), (538, 300)]),
            ("line", [(250, 640), (550, 640)]),
        ]
    elif category == "outerwear":
        _poly(
            d,
            [
                (330, 130),
                (470, 130),
                (590, 170),
                (665, 420),
                (680, 610),
                (615, 620),
                (580, 360),
                (580, 690),
                (220, 690),
                (220, 360),
                (185, 620),
                (120, 610),
                (135, 420),
                (210, 170),
            ],
        )
        details += [
            ("line", [(400, 175), (400, 690)]),
            ("line", [(330, 130), (400, 300), (470, 130)]),
            ("buttons", [(418, 330), (418, 420), (418, 510), (418, 600)]),
            ("rect", (260, 520, 350, 560)),
            ("rect", (450, 520, 540, 560)),
        ]
    elif category == "dresses":
        _poly(
            d,
            [
                (335, 120),
                (365, 120),
                (375, 220),
                (425, 220),
                (435, 120),
                (465, 120),
                (480, 260),
                (455, 380),
                (640, 700),
                (160, 700),
                (345, 380),
                (320, 260),
            ],
        )
        details += [
            ("line", [(345, 380), (455, 380)]),
            ("line", [(400, 390), (330, 700)]),
            ("line", [(400, 390), (470, 700)]),
        ]
    elif category == "bottoms":
        _poly(d, [(270, 130), (530, 130), (560, 690), (430, 690), (400, 330), (370, 690), (240, 690)])
        details += [
            ("line", [(270, 175), (530, 175)]),
            ("line", [(400, 175), (400, 300)]),
            ("arc", (285, 150, 365, 250, 0, 90)),
            ("arc", (435, 150, 515, 250, 90, 180)),
            ("buttons", [(400, 155)]),
        ]
    elif category == "shoes":
        _poly(
            d,
            [
                (130, 560),
                (140, 470),
                (200, 440),
                (330, 420),
                (420, 330),
                (520, 320),
                (560, 380),
                (600, 470),
                (680, 500),
                (700, 580),
                (690, 610),
                (140, 610),
            ],
        )
        details += [
            ("line", [(140, 575), (695, 575)]),
            ("line", [(150, 610), (690, 610)]),
            ("laces", [(440, 360), (470, 390), (500, 420), (530, 450)]),
            ("arc", (150, 450, 330, 600, 180, 270)),
        ]
    elif category == "bags":
        _poly(d, [(230, 330), (570, 330), (620, 660), (180, 660)])
        details += [
            ("handle", (290, 170, 510, 430)),
            ("line", [(215, 420), (585, 420)]),
            ("rect", (370, 400, 430, 450)),
        ]
    elif category == "accessories":
        _ellipse(d, (130, 430, 670, 600))
        _poly(d, [(260, 510), (290, 290), (400, 250), (510, 290), (540, 510)])
        details += [("band", (275, 440, 525, 480)), ("line", [(330, 300), (400, 275), (470, 300)])]
    else:
        _poly(d, [(220, 260), (580, 260), (620, 620), (180, 620)])
        details += [("line", [(220, 330), (580, 330)]), ("rect", (330, 420, 470, 500))]
    return mask.resize((SIZE, SIZE), Image.Resampling.LANCZOS), details


def _gradient(size: tuple[int, int], top: RGB, bottom: RGB) -> Image.Image:
    ramp = Image.linear_gradient("L").resize(size)
    return Image.composite(Image.new("RGB", size, bottom), Image.new("RGB", size, top), ramp)


def _shade(mask: Image.Image, rng: random.Random) -> Image.Image:
    """Light falling from the upper left on a rounded body: bright centre, darker flanks and hem."""
    box = mask.getbbox() or (0, 0, SIZE, SIZE)
    width, height = max(1, box[2] - box[0]), max(1, box[3] - box[1])
    row = Image.new("L", (256, 1))
    row.putdata([int(150 + 105 * math.sin(math.pi * (i / 255) * 0.92 + 0.15)) for i in range(256)])
    across = row.resize((width, height), Image.Resampling.BILINEAR)
    down = ImageOps.invert(Image.linear_gradient("L").resize((width, height))).point(lambda v: 190 + v // 4)
    shade = ImageChops.multiply(across, down)
    full = Image.new("L", (SIZE, SIZE), 0)
    full.paste(shade, box[:2])
    return full


def product_image(category: str, color: RGB, seed: int, stripes: RGB | None = None) -> Image.Image:
    rng = random.Random(seed)
    backdrop_top = (246 - rng.randint(0, 10), 243 - rng.randint(0, 10), 240 + rng.randint(0, 10))
    image = _gradient((SIZE, SIZE), backdrop_top, (214, 208, 206))
    mask, details = _silhouette(category)

    floor = Image.new("L", (SIZE, SIZE), 0)
    box = mask.getbbox() or (200, 200, 600, 600)
    ImageDraw.Draw(floor).ellipse((box[0] + 30, box[3] - 25, box[2] - 30, box[3] + 35), fill=120)
    shadow = ImageChops.lighter(floor, ImageChops.offset(mask, 18, 26).point(lambda v: v * 45 // 100))
    shadow = shadow.filter(ImageFilter.GaussianBlur(22))
    image = Image.composite(
        Image.new("RGB", image.size, (60, 50, 55)), image, shadow.point(lambda v: v * 6 // 10)
    )

    fabric = Image.new("RGB", (SIZE, SIZE), color)
    if stripes is not None:
        draw = ImageDraw.Draw(fabric)
        for y in range(0, SIZE, 44):
            draw.rectangle((0, y, SIZE, y + 16), fill=stripes)
    grain = Image.effect_noise((SIZE, SIZE), 18).convert("RGB")
    fabric = Image.blend(fabric, ImageChops.multiply(fabric, grain), 0.25)
    shaded = ImageChops.multiply(fabric, _shade(mask, rng).convert("RGB"))
    highlight = Image.new("L", (SIZE, SIZE), 0)
    ImageDraw.Draw(highlight).ellipse(
        (box[0], box[1] - 80, box[0] + (box[2] - box[0]) * 0.7, box[1] + 260), fill=60
    )
    shaded = ImageChops.screen(
        shaded, Image.merge("RGB", [highlight.filter(ImageFilter.GaussianBlur(60))] * 3)
    )
    image.paste(shaded, (0, 0), mask)

    _draw_details(image, details, color)
    return image


def _draw_details(image: Image.Image, details: list[tuple[str, object]], color: RGB) -> None:
    overlay = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    seam = (max(0, color[0] - 70), max(0, color[1] - 70), max(0, color[2] - 70), 150)
    for kind, spec in details:
        if kind == "line":
            assert isinstance(spec, list)
            draw.line(spec, fill=seam, width=4, joint="curve")
        elif kind == "arc":
            assert isinstance(spec, tuple)
            draw.arc(spec[:4], spec[4], spec[5], fill=seam, width=5)
        elif kind == "rect":
            assert isinstance(spec, tuple)
            draw.rounded_rectangle(spec, radius=6, outline=seam, width=4)
        elif kind == "buttons":
            assert isinstance(spec, list)
            for x, y in spec:
                draw.ellipse((x - 9, y - 9, x + 9, y + 9), fill=(235, 225, 205, 255), outline=seam, width=2)
        elif kind == "laces":
            assert isinstance(spec, list)
            for x, y in spec:
                draw.line([(x - 22, y + 10), (x + 22, y - 10)], fill=(250, 250, 250, 230), width=6)
        elif kind == "handle":
            assert isinstance(spec, tuple)
            draw.arc(spec, 180, 360, fill=(*seam[:3], 255), width=22)
        elif kind == "band":
            assert isinstance(spec, tuple)
            draw.rectangle(spec, fill=(40, 30, 30, 200))
    image.paste(overlay, (0, 0), overlay)


def cover_image(title: str, subtitle: str, shots: list[Image.Image], seed: int = 7) -> Image.Image:
    """A 1280x720 show cover: a warm gradient, product cards fanned out, the title in big type."""
    rng = random.Random(seed)
    width, height = 1280, 720
    across = Image.linear_gradient("L").rotate(90).resize((width, height)).point(lambda v: v // 2)
    down = Image.linear_gradient("L").resize((width, height)).point(lambda v: v // 2)
    ramp = ImageChops.add(ImageOps.mirror(across), down)
    cover = Image.composite(
        Image.new("RGB", (width, height), (95, 61, 196)),
        Image.new("RGB", (width, height), (214, 51, 108)),
        ramp,
    )
    glow = Image.new("L", (width, height), 0)
    ImageDraw.Draw(glow).ellipse((760, -200, 1500, 520), fill=90)
    cover = ImageChops.screen(cover, Image.merge("RGB", [glow.filter(ImageFilter.GaussianBlur(90))] * 3))
    for i, shot in enumerate(shots[:3]):
        card = Image.new("RGB", (300, 340), (255, 255, 255))
        card.paste(shot.resize((280, 280), Image.Resampling.LANCZOS), (10, 10))
        card = card.convert("RGBA").rotate(
            rng.uniform(-9, 9) + (i - 1) * 6, expand=True, resample=Image.Resampling.BICUBIC
        )
        pad = 40
        alpha = Image.new("L", (card.width + 2 * pad, card.height + 2 * pad), 0)
        alpha.paste(card.getchannel("A").point(lambda v: v * 45 // 100), (pad, pad))
        shadow = Image.new("RGBA", alpha.size, (30, 10, 40, 0))
        shadow.putalpha(alpha.filter(ImageFilter.GaussianBlur(16)))
        x, y = 660 + i * 175, 150 + (i % 2) * 70
        cover.paste(shadow, (x + 10 - pad, y + 18 - pad), shadow)
        cover.paste(card, (x, y), card)
    draw = ImageDraw.Draw(cover)
    big, small = _font(68), _font(30)
    label_font = _font(28)
    label_width = draw.textlength("LIVE SHOW", font=label_font)
    draw.rounded_rectangle((70, 80, 70 + label_width + 36, 128), radius=10, fill=(255, 255, 255))
    draw.text((88, 87), "LIVE SHOW", font=label_font, fill=(214, 51, 108))
    y = 170
    for line in _wrap(title, 15)[:3]:
        draw.text((70, y), line, font=big, fill=(255, 255, 255))
        y += 82
    draw.text((72, y + 20), subtitle, font=small, fill=(255, 236, 244))
    return cover


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    for path in ("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf", "DejaVuSans-Bold.ttf"):
        try:
            return ImageFont.truetype(path, size)
        except OSError:
            continue
    return ImageFont.load_default(size)


def _wrap(text: str, width: int) -> list[str]:
    lines: list[str] = []
    for word in text.split():
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines
