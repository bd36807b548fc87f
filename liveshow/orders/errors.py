"""Refusals of selling itself, whatever sells (a claim, an auction, an offer, a giveaway, a replay)."""

from __future__ import annotations

from liveshow.errors import Conflict


class SoldOut(Conflict):
    """No free unit of the listing is left (the unit fence, orders/service.py)."""

    code = "sold_out"
