"""Stripe, the card processor: an adapter over the official ``stripe`` library (imported only when
Stripe is configured). Connect destination charges: the buyer pays the platform once per bundle, the
seller's connected account receives the rest after the platform's fee. Every create carries an
idempotency key derived from our own row, so a retry or a second tab gets the same object back."""

from __future__ import annotations

from typing import Any

from liveshow.errors import Conflict, DomainError
from liveshow.orders.models import Order
from liveshow.settings import Settings


class ProcessorError(DomainError):
    """The processor refused or could not be reached; the message is safe to show."""

    code = "payment_failed"
    status = 502


class StripeProvider:
    name = "stripe"
    pay_label = "Pay by card"

    def __init__(self, settings: Settings) -> None:
        import stripe

        self._stripe = stripe
        # Retries are safe: every POST below carries its own idempotency key.
        if settings.stripe_api_base:
            self.client = stripe.StripeClient(
                settings.stripe_secret_key,
                base_addresses={"api": settings.stripe_api_base},
                max_network_retries=2,
            )
        else:
            self.client = stripe.StripeClient(settings.stripe_secret_key, max_network_retries=2)
        self.webhook_secret = settings.stripe_webhook_secret
        self.publishable_key = settings.stripe_publishable_key
        self.currency = settings.currency

    # ---- the synchronous PaymentProvider protocol

    def charge(self, order: Order) -> str:
        # Cards are confirmed in the browser (Stripe.js) and settled by the webhook, never here.
        raise Conflict("Pay for this order by card from your orders page.")

    def refund(self, order: Order) -> str:
        """Give one order's price back (a partial refund of its bundle's charge)."""
        if not order.payment_ref.startswith("pi_"):
            raise Conflict("This order was not paid through Stripe.")
        return self.refund_amount(order.payment_ref, order.price_cents, refund_key(order))

    # ---- card payments

    def create_intent(
        self,
        *,
        payment_id: int,
        amount_cents: int,
        fee_cents: int,
        destination: str,
        description: str,
    ) -> tuple[str, str]:
        """A PaymentIntent for one checkout; (intent id, client secret for Stripe.js)."""
        params: dict[str, Any] = {
            "amount": amount_cents,
            "currency": self.currency,
            "automatic_payment_methods": {"enabled": True},
            "application_fee_amount": fee_cents,
            "transfer_data": {"destination": destination},
            "description": description[:200],
            "metadata": {"liveshow_payment_id": str(payment_id)},
        }
        intent = self._call(self.client.v1.payment_intents.create, params, f"liveshow-payment-{payment_id}")
        return str(intent["id"]), str(intent["client_secret"])

    def refund_amount(self, intent_id: str, amount_cents: int, key: str) -> str:
        params = {
            "payment_intent": intent_id,
            "amount": amount_cents,
            # Destination charges: take the seller's share back from them and return the fee.
            "reverse_transfer": True,
            "refund_application_fee": True,
        }
        refund = self._call(self.client.v1.refunds.create, params, key)
        return str(refund["id"])

    # ---- sellers' connected accounts (Connect Express onboarding)

    def create_account(self, seller_id: int) -> str:
        """A connected account for a seller; the key is the seller's id, so a retry gets the same one."""
        params: dict[str, Any] = {
            "type": "express",
            "capabilities": {"card_payments": {"requested": True}, "transfers": {"requested": True}},
            "metadata": {"liveshow_seller_id": str(seller_id)},
        }
        account = self._call(self.client.v1.accounts.create, params, f"liveshow-account-{seller_id}")
        return str(account["id"])

    def onboarding_link(self, account_id: str, back_url: str) -> str:
        """Stripe's hosted onboarding page for the account; it sends the seller back to ``back_url``."""
        params = {
            "account": account_id,
            "refresh_url": back_url,
            "return_url": back_url,
            "type": "account_onboarding",
        }
        try:
            link = self.client.v1.account_links.create(params)  # type: ignore[arg-type]
        except self._stripe.StripeError as exc:
            raise ProcessorError("The card processor could not start onboarding; try again.") from exc
        return str(link["url"])

    def _call(self, create: Any, params: dict[str, Any], key: str) -> Any:
        try:
            return create(params, {"idempotency_key": key})
        except self._stripe.StripeError as exc:
            # Stripe's own message says what to do (a declined card, a balance too low for a refund).
            detail = getattr(exc, "user_message", None) or getattr(
                getattr(exc, "error", None), "message", None
            )
            reason = (
                f"The card processor refused the request: {detail}"
                if detail
                else "The card processor refused the request."
            )
            raise ProcessorError(reason[:300]) from exc


def refund_key(order: Order) -> str:
    """One key per refund attempt of an order: a replayed request is answered, never paid twice."""
    base = f"liveshow-refund-order-{order.id}"
    return f"{base}-retry{order.refund_attempts}" if order.refund_attempts else base


def verify_event(payload: bytes, header: str | None, secret: str, tolerance: int = 300) -> None:
    """Raise stripe's SignatureVerificationError unless the body is signed with our secret, recently."""
    import stripe

    stripe.WebhookSignature.verify_header(payload, header, secret, tolerance)
