"""Rendered bank-card photos for the OCR tests, with realistic distortions.

A card (85.6 x 54 mm at 10 px/mm) is drawn with a bank name, chip, number in groups
of four, holder name, expiry and logo text, then placed on a desk background in
perspective, and optionally blurred, noised and JPEG-compressed like a cheap camera.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

FONT = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")


def render_card(
    number: str,
    bank: str = "中国工商银行",
    holder: str = "ZHANG JIANGUO",
    expiry: str = "12/28",
    group_gap: int = 1,
    damaged_digit: int | None = None,
) -> np.ndarray:
    """A flat card image (BGR), 856 x 540.

    Args:
        number: the digits to print (grouped by four).
        group_gap: spaces between digit groups.
        damaged_digit: index of a digit whose top stroke is worn off (a 7 then looks like a 1).
    """
    import cv2
    from PIL import Image, ImageDraw, ImageFont

    w, h = 856, 540
    img = Image.new("RGB", (w, h))
    d = ImageDraw.Draw(img)
    for y in range(h):
        c = int(40 + 60 * y / h)
        d.line([(0, y), (w, y)], fill=(c, 30 + c // 2, 120 + c))
    d.rounded_rectangle([0, 0, w - 1, h - 1], radius=36, outline=(200, 200, 220), width=3)
    d.text((50, 40), bank, font=ImageFont.truetype(str(FONT), 48), fill=(255, 255, 255))
    d.rounded_rectangle([70, 170, 180, 250], radius=10, fill=(212, 175, 55))
    # 19-digit numbers are printed smaller so that they fit on the card, as on real cards.
    digits_font = ImageFont.truetype(str(FONT), 62 if len(number) <= 16 else 52)
    x, y = 60, 305
    for i, ch in enumerate(number):
        if i and i % 4 == 0:
            x += int(digits_font.getlength(" ")) * group_gap
        d.text((x, y), ch, font=digits_font, fill=(245, 245, 245))
        if damaged_digit is not None and i == damaged_digit:
            # Wear on the top stroke: paint it over with the card's background.
            left, top, right, bottom = d.textbbox((x, y), ch, font=digits_font)
            bg = img.getpixel((max(left - 4, 0), top + 2))
            d.rectangle([left - 1, top - 1, right + 1, top + (bottom - top) * 0.22], fill=bg)
        x += int(digits_font.getlength(ch))
    if x > w - 30:
        raise ValueError(f"the number does not fit on the card ({x} px)")
    small = ImageFont.truetype(str(FONT), 32)
    d.text((60, 420), holder, font=small, fill=(230, 230, 230))
    d.text((470, 390), "VALID THRU " + expiry, font=ImageFont.truetype(str(FONT), 26), fill=(230, 230, 230))
    d.text((680, 460), "银联", font=ImageFont.truetype(str(FONT), 40), fill=(255, 255, 255))
    return cv2.cvtColor(np.asarray(img), cv2.COLOR_RGB2BGR)


def photograph(
    card: np.ndarray,
    tilt_deg: float = 0.0,
    yaw_deg: float = 0.0,
    blur: float = 0.0,
    noise: float = 0.0,
    jpeg: int = 0,
    rotate180: bool = False,
    crop_right: float = 0.0,
    seed: int = 0,
) -> np.ndarray:
    """The card as the kiosk camera sees it: on a desk, in perspective, with camera defects.

    Args:
        tilt_deg: rotation in the image plane.
        yaw_deg: the card turned about its vertical axis (perspective).
        blur: Gaussian blur sigma in pixels.
        noise: sensor noise standard deviation (0..255 scale).
        jpeg: JPEG quality (0: no compression).
        rotate180: the card lies upside down.
        crop_right: fraction of the photo's width cut off on the right (card partly out of view).
    """
    import cv2

    rng = np.random.default_rng(seed)
    if rotate180:
        card = card[::-1, ::-1]
    ch, cw = card.shape[:2]
    W, H = 1280, 900
    desk = np.full((H, W, 3), (96, 110, 128), np.uint8)
    desk = np.clip(desk.astype(np.int16) + rng.normal(0, 6, desk.shape), 0, 255).astype(np.uint8)
    src = np.float32([[0, 0], [cw, 0], [cw, ch], [0, ch]])
    # card centred, turned about its vertical axis, then tilted
    t = math.radians(yaw_deg)
    depth = 1.6 * W
    pts = []
    for x, y in src:
        xr, zr = (x - cw / 2) * math.cos(t), (x - cw / 2) * math.sin(t)
        s = depth / (depth + zr)
        pts.append([xr * s, (y - ch / 2) * s])
    a = math.radians(tilt_deg)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    dst = (np.float32(pts) @ rot.T) * 1.1 + np.float32([W / 2, H / 2])
    m = cv2.getPerspectiveTransform(src, dst.astype(np.float32))
    warped = cv2.warpPerspective(np.ascontiguousarray(card), m, (W, H))
    mask = cv2.warpPerspective(np.full((ch, cw), 255, np.uint8), m, (W, H))
    photo = np.where(mask[:, :, None] > 127, warped, desk)
    if blur:
        photo = cv2.GaussianBlur(photo, (0, 0), blur)
    if noise:
        photo = np.clip(photo.astype(np.float32) + rng.normal(0, noise, photo.shape), 0, 255).astype(np.uint8)
    if jpeg:
        ok, buf = cv2.imencode(".jpg", photo, [cv2.IMWRITE_JPEG_QUALITY, jpeg])
        photo = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if crop_right:
        photo = photo[:, : int(W * (1 - crop_right))]
    return np.ascontiguousarray(photo)
