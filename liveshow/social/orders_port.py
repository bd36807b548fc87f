"""The order service, reached at call time so this package works before and after orders are installed.

``liveshow.orders.service.create_order(session, buyer_id, listing_id, price_cents, source, show_id=None,
commit=...)`` takes the lowest free unit under a per-unit unique fence: of two buyers racing for the last
unit, one gets the order and the other SoldOut. Offers and giveaways go through it like any win.
"""

from __future__ import annotations

import importlib
from typing import Any

from sqlmodel import Session

from liveshow.errors import Conflict


class OrdersUnavailable(Conflict):
    code = "orders_unavailable"


def create_order(
    session: Session,
    buyer_id: int,
    listing_id: int,
    price_cents: int,
    source: str,
    show_id: int | None = None,
    commit: bool = True,
) -> Any:
    try:
        service = importlib.import_module("liveshow.orders.service")
    except ModuleNotFoundError as exc:
        raise OrdersUnavailable("Orders are not installed on this server.") from exc
    return service.create_order(
        session, buyer_id, listing_id, price_cents, source, show_id=show_id, commit=commit
    )


def available() -> bool:
    try:
        importlib.import_module("liveshow.orders.service")
    except ModuleNotFoundError:
        return False
    return True
