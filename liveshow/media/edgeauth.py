"""The credential of a server-to-server pull (an edge watching a show on the process that feeds it).

A pull is a WHEP session like a browser's, but it is not a browser: it must not count against the
per-address WHEP caps and rate limits (all of a cluster's edges may sit behind one address), and it
may watch a private show (the edge checked its own viewer exactly as the origin would). So it carries
``X-Liveshow-Edge-Pull: <token>``, an HMAC of the show id under the cluster's ``secret_key``.

Why the secret key and not a setting of its own: every process of a cluster must already share it (it
signs the session cookies any process may be handed), so a pull works wherever sessions do, with
nothing new to configure or to get wrong; and the public cannot make a token without it. The token is
per show, so one leaked from a log opens no other show, and is checked with ``compare_digest`` before
the offer is read (authenticate before you parse).
"""

from __future__ import annotations

import hashlib
import hmac

HEADER = "X-Liveshow-Edge-Pull"
_PURPOSE = b"liveshow edge pull v1:"


def pull_token(secret_key: str, show_id: int) -> str:
    return hmac.new(secret_key.encode(), _PURPOSE + str(show_id).encode(), hashlib.sha256).hexdigest()


def valid_pull_token(secret_key: str, show_id: int, presented: str) -> bool:
    if not secret_key:
        return False
    return hmac.compare_digest(pull_token(secret_key, show_id).encode(), presented.strip().encode())
