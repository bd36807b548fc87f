"""Payment providers. The built-in one completes payment inside liveshow (no outside call): the seller
settles with the buyer however they agreed; a card processor plugs in behind the same protocol."""

from __future__ import annotations

import secrets
from typing import Protocol

from liveshow.orders.models import Order


class PaymentProvider(Protocol):
    name: str

    def charge(self, order: Order) -> str:
        """Take the order's price from the buyer; return the provider's reference. Raise to refuse."""
        ...

    def refund(self, order: Order) -> str:
        """Give the order's price back; return the provider's reference. Raise to refuse."""
        ...


class InAppProvider:
    name = "in_app"

    def charge(self, order: Order) -> str:
        return f"inapp_{order.id}_{secrets.token_hex(6)}"

    def refund(self, order: Order) -> str:
        return f"inapp_refund_{order.id}"
