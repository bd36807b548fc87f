"""Web Push: VAPID keys made once and kept in the data dir, browser subscriptions, encrypted sends.

Payloads are encrypted per RFC 8291 (aes128gcm) and signed per RFC 8292 (VAPID) by ``pywebpush``; the
push service (the browser vendor's) delivers them to the service worker ``/static/sw.js``.
"""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from py_vapid import Vapid
from pywebpush import WebPushException, webpush
from sqlmodel import Session, col, select

from liveshow.db import Database
from liveshow.errors import ValidationFailed
from liveshow.social.models import PushSubscription
from liveshow.social.pushnet import Resolver, checked_address, pinned_session, system_resolve

log = logging.getLogger(__name__)
KEY_FILE = "vapid_private.pem"
MAX_SUBSCRIPTIONS_PER_USER = 10


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def load_or_create_vapid(data_dir: Path) -> Any:
    """The server's VAPID key pair: generated on first use, then read back so subscriptions stay valid."""
    path = data_dir / KEY_FILE
    if path.exists():
        return Vapid.from_file(str(path))
    data_dir.mkdir(parents=True, exist_ok=True)
    vapid = Vapid()
    vapid.generate_keys()
    vapid.save_key(str(path))
    path.chmod(0o600)
    return vapid


def _decode_key(value: object, name: str, length: int) -> str:
    if not isinstance(value, str) or len(value) > 200:
        raise ValidationFailed(f"keys.{name} must be a base64url string.")
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except ValueError as exc:
        raise ValidationFailed(f"keys.{name} is not base64url.") from exc
    if len(raw) != length:
        raise ValidationFailed(f"keys.{name} must decode to {length} bytes.")
    return value


class WebPush:
    def __init__(
        self,
        data_dir: Path,
        db: Database,
        subject: str,
        allow_http: bool = False,
        resolve: Resolver = system_resolve,
    ) -> None:
        self.vapid = load_or_create_vapid(data_dir)
        self.db = db
        self.subject = subject
        # Only tests (a loopback push service) may use http and loopback; real push services are https.
        self.allow_http = allow_http
        self.resolve = resolve

    @property
    def public_key(self) -> str:
        """The applicationServerKey a browser subscribes with (uncompressed P-256 point, base64url)."""
        raw = self.vapid.public_key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
        return b64url(raw)

    def check_endpoint(self, endpoint: object) -> str:
        if not isinstance(endpoint, str) or not 10 < len(endpoint) <= 1000:
            raise ValidationFailed("endpoint must be a URL of at most 1000 characters.")
        parts = urlsplit(endpoint)
        if parts.scheme != "https" and not (self.allow_http and parts.scheme == "http"):
            raise ValidationFailed("endpoint must be an https URL.")
        # Resolved now for a clear 400, and again at each send (the name may point elsewhere by then).
        checked_address(endpoint, self.resolve, allow_loopback=self.allow_http)
        return endpoint

    def subscribe(self, session: Session, user_id: int, data: dict[str, Any]) -> PushSubscription:
        endpoint = self.check_endpoint(data.get("endpoint"))
        keys = data.get("keys")
        if not isinstance(keys, dict):
            raise ValidationFailed("keys must be an object with p256dh and auth.")
        p256dh = _decode_key(keys.get("p256dh"), "p256dh", 65)
        auth = _decode_key(keys.get("auth"), "auth", 16)
        row = session.exec(select(PushSubscription).where(PushSubscription.endpoint == endpoint)).first()
        if row is None:
            count = len(
                list(session.exec(select(PushSubscription.id).where(PushSubscription.user_id == user_id)))
            )
            if count >= MAX_SUBSCRIPTIONS_PER_USER:
                raise ValidationFailed(f"At most {MAX_SUBSCRIPTIONS_PER_USER} push subscriptions per user.")
            row = PushSubscription(user_id=user_id, endpoint=endpoint, p256dh=p256dh, auth=auth)
        else:
            # The same browser re-subscribing (maybe signed in as someone else now): it is theirs.
            row.user_id, row.p256dh, row.auth = user_id, p256dh, auth
        session.add(row)
        session.commit()
        return row

    def unsubscribe(self, session: Session, user_id: int, endpoint: str) -> bool:
        row = session.exec(
            select(PushSubscription).where(
                PushSubscription.endpoint == endpoint, PushSubscription.user_id == user_id
            )
        ).first()
        if row is None:
            return False
        session.delete(row)
        session.commit()
        return True

    def send_to_users(self, user_ids: list[int], payload: dict[str, Any]) -> int:
        """Blocking (run it in a thread): push ``payload`` to every subscription of ``user_ids``."""
        if not user_ids:
            return 0
        with self.db.session() as session:
            subs = list(
                session.exec(select(PushSubscription).where(col(PushSubscription.user_id).in_(user_ids)))
            )
        sent, gone = 0, []
        body = json.dumps(payload, separators=(",", ":"))
        for sub in subs:
            try:
                address = checked_address(sub.endpoint, self.resolve, allow_loopback=self.allow_http)
            except ValidationFailed as exc:
                log.warning("web push to %s refused: %s", urlsplit(sub.endpoint).hostname, exc.message)
                continue
            http = pinned_session(sub.endpoint, address)
            try:
                webpush(
                    {"endpoint": sub.endpoint, "keys": {"p256dh": sub.p256dh, "auth": sub.auth}},
                    data=body,
                    vapid_private_key=self.vapid,
                    vapid_claims={"sub": self.subject},
                    ttl=3600,
                    timeout=5,
                    requests_session=http,
                )
                sent += 1
            except WebPushException as exc:
                status = exc.response.status_code if exc.response is not None else None
                if status in (404, 410):
                    gone.append(sub.id)  # the browser dropped it: stop sending there
                else:
                    log.warning("web push to %s failed: %s", urlsplit(sub.endpoint).hostname, status)
            except Exception as exc:  # network errors must not stop the other sends
                log.warning("web push to %s failed: %s", urlsplit(sub.endpoint).hostname, exc)
            finally:
                http.close()
        if gone:
            with self.db.session() as session:
                for sub_id in gone:
                    row = session.get(PushSubscription, sub_id)
                    if row is not None:
                        session.delete(row)
                session.commit()
        return sent
