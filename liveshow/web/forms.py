"""Request decoding shared by the page and API handlers: bounded forms and photo uploads (JSON bodies:
liveshow.jsonbody)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import RedirectResponse

from liveshow.closet.photos import THUMB_SIDE, PhotoStore, PreparedPhoto
from liveshow.errors import DomainError, PayloadTooLarge, UnsupportedMediaType, ValidationFailed
from liveshow.jsonbody import limit_body
from liveshow.web.auth import check_csrf, ctx

MAX_FORM_FIELDS = 300


def photo_store(request: Request) -> PhotoStore:
    settings = ctx(request).settings
    return PhotoStore(settings.uploads_dir, settings.max_photo_bytes, settings.max_photos_per_listing)


async def read_form(request: Request, max_files: int = 0) -> FormData:
    """Parse a posted form within limits and check its CSRF token before anything else looks at it.

    The total is counted as the body streams in, so a chunked upload (no Content-Length) or one that
    understates its length stops at the limit too, with a 413."""
    settings = ctx(request).settings
    limit = (max_files * settings.max_photo_bytes) + 1024 * 1024
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise PayloadTooLarge("The upload is too large.")
    kind = request.headers.get("content-type", "")
    if not kind.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        await check_csrf(request)  # a forged request hears "forbidden" first, whatever its body
        raise UnsupportedMediaType("Send the form as a web form.")
    limit_body(request, limit)
    try:
        # Twice the file limit parses, so "too many photos" is answered on the re-rendered form.
        form = await request.form(
            max_files=max_files * 2, max_fields=MAX_FORM_FIELDS, max_part_size=64 * 1024
        )
    except DomainError:
        raise
    except Exception as exc:  # multipart errors surface as various exception types
        if getattr(exc, "status_code", 400) == 413:
            raise PayloadTooLarge("The upload is too large.") from exc
        raise ValidationFailed(f"The form could not be read: {getattr(exc, 'detail', exc)}") from exc
    await check_csrf(request)
    return form


def form_dict(form: FormData) -> dict[str, Any]:
    """Single-valued text fields; files and repeated fields are read separately."""
    return {key: value for key, value in form.items() if isinstance(value, str)}


def form_ids(form: FormData, key: str) -> list[int]:
    ids: list[int] = []
    for value in form.getlist(key):
        if not isinstance(value, str) or not value.isdigit():
            raise ValidationFailed(f"{key}: not an id.")
        ids.append(int(value))
    return ids


async def read_photos(
    request: Request, form: FormData, key: str, thumb_side: int = THUMB_SIDE
) -> list[PreparedPhoto]:
    """Every file in the field, decoded and re-encoded (in a worker thread: Pillow is CPU work)."""
    store = photo_store(request)
    uploads = [f for f in form.getlist(key) if isinstance(f, UploadFile) and (f.filename or f.size)]
    if len(uploads) > store.max_per_listing:
        raise ValidationFailed(f"At most {store.max_per_listing} photos.")
    prepared: list[PreparedPhoto] = []
    for upload in uploads:
        data = await upload.read(store.max_bytes + 1)
        name = (upload.filename or "photo")[:80]
        prepared.append(await run_in_threadpool(store.prepare, data, name, thumb_side))
    return prepared


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def safe_next(raw: str | None, default: str = "/") -> str:
    """Only same-site paths: a sign-in link must not bounce people to another site."""
    if not raw:
        return default
    parts = urlsplit(raw)
    if parts.scheme or parts.netloc or not raw.startswith("/") or raw.startswith("//") or "\\" in raw:
        return default
    return raw


def origin(request: Request) -> str:
    public = ctx(request).settings.public_url.rstrip("/")
    if public:
        return public
    return f"{request.url.scheme}://{request.url.netloc}"


def tz_offset(raw: Any) -> int:
    """Minutes UTC is ahead of the browser (JS getTimezoneOffset), sent by the schedule form."""
    if isinstance(raw, str) and raw.lstrip("-").isdigit() and abs(int(raw)) <= 14 * 60:
        return int(raw)
    return 0
