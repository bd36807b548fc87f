"""Payment providers, honest about what they do. "manual": the seller is paid outside liveshow (cash at
pickup, a bank transfer) and confirms it; "test": the demo's button that moves no money; "stripe": a
real card processor (liveshow.orders.stripe_provider), paid in the browser and confirmed by webhook.
Which one a server uses is a setting, checked once at startup."""

from __future__ import annotations

import secrets
from typing import Protocol

from liveshow.errors import Conflict
from liveshow.orders.models import Order
from liveshow.settings import Settings

PROVIDERS = ("manual", "test", "stripe")


class SettingsError(RuntimeError):
    """The payment settings would mislead buyers or sellers: the server refuses to start."""


class PaymentProvider(Protocol):
    name: str
    # The buyer's pay button, or "" when the buyer does not pay inside liveshow.
    pay_label: str

    def charge(self, order: Order) -> str:
        """Take the order's price from the buyer; return the provider's reference. Raise to refuse."""
        ...

    def refund(self, order: Order) -> str:
        """Give the order's price back; return the provider's reference. Raise to refuse."""
        ...


class ManualProvider:
    """Money changes hands outside liveshow; the seller confirms it (and gives it back on a refund)."""

    name = "manual"
    pay_label = ""

    def charge(self, order: Order) -> str:
        raise Conflict("This seller is paid outside liveshow (e.g. cash at pickup); they confirm it here.")

    def refund(self, order: Order) -> str:
        return "manual"  # the seller returns the money the way it came; liveshow only records it


class TestProvider:
    """For the demo and tests: every charge succeeds and no money moves, and the button says so."""

    name = "test"
    pay_label = "Test payment (no money moves)"

    def charge(self, order: Order) -> str:
        return f"test_{order.id}_{secrets.token_hex(6)}"

    def refund(self, order: Order) -> str:
        return f"test_refund_{order.id}"


def provider_name(settings: Settings) -> str:
    """The configured provider; unset means Stripe when its key is set, else manual."""
    name = settings.payment_provider.strip().lower()
    if not name:
        return "stripe" if settings.stripe_secret_key else "manual"
    return name


def check_settings(settings: Settings) -> str:
    """The provider name, or SettingsError saying what to change."""
    name = provider_name(settings)
    if name not in PROVIDERS:
        raise SettingsError(f"LIVESHOW_PAYMENT_PROVIDER={name!r}: use one of {', '.join(PROVIDERS)}.")
    if name == "test" and not settings.allow_test_payments:
        # A real shop must never show buyers a button that takes no money by mistake.
        raise SettingsError(
            "The test payment provider moves no money; set LIVESHOW_ALLOW_TEST_PAYMENTS=true to use it "
            "(demo only), or choose manual or stripe."
        )
    if name == "stripe":
        missing = [
            f"LIVESHOW_STRIPE_{key.upper()}"
            for key, value in (
                ("secret_key", settings.stripe_secret_key),
                # Orders are marked paid only by the signed webhook; the browser needs the public key.
                ("webhook_secret", settings.stripe_webhook_secret),
                ("publishable_key", settings.stripe_publishable_key),
            )
            if not value
        ]
        if missing:
            raise SettingsError(f"Stripe needs {', '.join(missing)}.")
    return name
