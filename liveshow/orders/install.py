"""Wire orders into the app: the payment provider (refused at startup when misconfigured) and the
orders API. The /orders pages are mounted by liveshow.auction.install."""

from __future__ import annotations

from starlette.routing import BaseRoute

from liveshow.context import AppContext
from liveshow.orders import api, checkout_web, money_web
from liveshow.orders.providers import ManualProvider, PaymentProvider, TestProvider, check_settings
from liveshow.settings import Settings


def build_provider(settings: Settings) -> PaymentProvider:
    name = check_settings(settings)
    if name == "test":
        return TestProvider()
    if name == "stripe":
        # Imported here: the stripe library is needed only when Stripe is configured.
        from liveshow.orders.stripe_provider import StripeProvider

        return StripeProvider(settings)
    return ManualProvider()


def install(context: AppContext) -> list[BaseRoute]:
    context.payments = build_provider(context.settings)
    return [*api.routes(), *checkout_web.routes(), *money_web.routes()]
