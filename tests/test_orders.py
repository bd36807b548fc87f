"""Orders: the unit fence, statuses, the in-app provider, payment windows and second chance, /orders."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import col, select

from liveshow.auction.errors import SoldOut
from liveshow.auction.lot_bids import ranked_bids
from liveshow.auction.models import AuctionBid, AuctionLot
from liveshow.clock import utcnow
from liveshow.closet.models import Listing
from liveshow.db import Database
from liveshow.errors import Conflict, Forbidden, NotFound, ValidationFailed
from liveshow.orders import service
from liveshow.orders.models import Order, SecondChanceOffer
from liveshow.orders.providers import TestProvider
from tests.auction_fixtures import make_world
from tests.order_helpers import CSRF, orders_app, sign_in

PAY = TestProvider()


def test_create_order_respects_units_and_statuses(database_url: str) -> None:
    db = Database(database_url)
    w = make_world(db, quantities=(2,))
    buyer, other = w.viewers[0].id, w.viewers[1].id
    assert buyer and other
    listing_id = w.listings[0].id
    assert listing_id
    with db.session() as s:
        first = service.create_order(s, buyer, listing_id, 1500, "offer")
        second = service.create_order(s, other, listing_id, 1500, "giveaway")
        assert (first.unit_no, second.unit_no) == (1, 2)
        with pytest.raises(SoldOut):
            service.create_order(s, other, listing_id, 1500, "offer")
        with pytest.raises(Forbidden):
            service.create_order(s, w.seller.id or 0, listing_id, 1500, "offer")
        listing = s.get(Listing, listing_id)
        assert listing is not None and listing.sold_count == 2 and listing.status == "sold"
        assert first.id and second.id
        with pytest.raises(Forbidden):
            service.pay(s, first.id, other, PAY)
        paid = service.pay(s, first.id, buyer, PAY)
        assert paid.status == "paid" and paid.payment_ref.startswith("test_")
        with pytest.raises(Conflict):
            service.mark_delivered(s, first.id, buyer)
        with pytest.raises(Forbidden):
            service.mark_shipped(s, first.id, buyer)
        assert service.mark_shipped(s, first.id, w.seller.id or 0).status == "shipped"
        assert service.mark_delivered(s, first.id, buyer).status == "delivered"
        with pytest.raises(Conflict):
            service.cancel(s, first.id, buyer, PAY)
        assert service.cancel(s, second.id, other, PAY).status == "cancelled"
        listing = s.get(Listing, listing_id)
        assert listing is not None and listing.sold_count == 1 and listing.status == "available"
        again = service.create_order(s, other, listing_id, 1500, "offer")
        assert again.unit_no == 2  # the cancelled order's unit is free again
    db.close()


def test_unit_fence_is_a_database_constraint(database_url: str) -> None:
    from sqlalchemy.exc import IntegrityError

    db = Database(database_url)
    w = make_world(db, quantities=(1,))
    with db.session() as s:
        service.create_order(s, w.viewers[0].id or 0, w.listings[0].id or 0, 100, "offer")
        s.add(
            Order(
                buyer_id=w.viewers[1].id or 0,
                seller_id=w.seller.id or 0,
                listing_id=w.listings[0].id or 0,
                unit_no=1,
                price_cents=100,
                source="offer",
                pay_by=utcnow(),
            )
        )
        with pytest.raises(IntegrityError):
            s.commit()
    db.close()


def test_unpaid_auction_win_cancelled_then_second_chance(database_url: str) -> None:
    db = Database(database_url)
    w = make_world(db, quantities=(1,))
    winner, runner, third = (v.id or 0 for v in w.viewers)
    listing_id = w.listings[0].id or 0
    t0 = utcnow()
    with db.session() as s:
        lot = AuctionLot(
            show_id=w.show_id,
            lot_no=1,
            listing_id=listing_id,
            kind="auction",
            state="closed",
            state_json="{}",
        )
        s.add(lot)
        s.commit()
        s.refresh(lot)
        for bidder, amount in ((winner, 5000), (runner, 3000), (third, 2000)):
            s.add(
                AuctionBid(
                    show_id=w.show_id,
                    lot_id=lot.id or 0,
                    bidder_id=bidder,
                    max_cents=amount,
                    at_ms=1,
                    epoch=1,
                    seq=1,
                )
            )
        s.commit()
        order = service.create_order(
            s,
            winner,
            listing_id,
            3200,
            "auction",
            show_id=w.show_id,
            lot_id=lot.id,
            now=t0,
            payment_window_minutes=15,
        )
        assert service.expire_unpaid(s, ranked_bids, t0 + timedelta(minutes=14), 15) == []
        expired = service.expire_unpaid(s, ranked_bids, t0 + timedelta(minutes=16), 15)
        assert [o.id for o in expired] == [order.id] and expired[0].status == "cancelled"
        assert service.expire_unpaid(s, ranked_bids, t0 + timedelta(minutes=17), 15) == []  # only once
        with pytest.raises(Conflict):
            service.pay(s, order.id or 0, winner, PAY, now=t0 + timedelta(minutes=16))
        offer = s.exec(select(SecondChanceOffer)).one()
        assert (offer.buyer_id, offer.price_cents) == (runner, 3000)
        with pytest.raises(NotFound):
            service.accept_second_chance(s, offer.id or 0, third, ranked_bids, now=t0 + timedelta(minutes=17))
        second = service.accept_second_chance(
            s, offer.id or 0, runner, ranked_bids, now=t0 + timedelta(minutes=17)
        )
        assert (second.buyer_id, second.price_cents, second.source) == (runner, 3000, "second_chance")
        with pytest.raises(Conflict):
            service.accept_second_chance(
                s, offer.id or 0, runner, ranked_bids, now=t0 + timedelta(minutes=18)
            )
    db.close()


def test_second_chance_offer_expires(database_url: str) -> None:
    db = Database(database_url)
    w = make_world(db, quantities=(1,))
    t0 = utcnow()
    with db.session() as s:
        offer = SecondChanceOffer(
            order_id=None,
            buyer_id=w.viewers[0].id or 0,
            seller_id=w.seller.id or 0,  # type: ignore[arg-type]
            listing_id=w.listings[0].id or 0,
            price_cents=900,
            expires_at=t0,
        )
        order = service.create_order(s, w.viewers[1].id or 0, w.listings[0].id or 0, 1000, "auction", now=t0)
        offer.order_id = order.id or 0
        s.add(offer)
        s.commit()
        with pytest.raises(Conflict):
            service.accept_second_chance(
                s, offer.id or 0, w.viewers[0].id or 0, ranked_bids, now=t0 + timedelta(minutes=1)
            )
        s.refresh(offer)
        assert offer.status == "expired"
    db.close()


def test_orders_page_and_actions_with_csrf(tmp_path: Path, database_url: str) -> None:
    with orders_app(tmp_path, database_url, "test") as (app, client):
        db = app.state.ctx.db
        w = make_world(db, quantities=(1,))
        with db.session() as s:
            order = service.create_order(
                s, w.viewers[0].id or 0, w.listings[0].id or 0, 1500, "claim", show_id=w.show_id
            )
        assert client.get("/orders", follow_redirects=False).status_code == 401
        sign_in(client, app, w.viewers[0].id or 0)
        page = client.get("/orders")
        assert page.status_code == 200 and "Item 0" in page.text and "awaiting payment" in page.text
        assert client.post(f"/orders/{order.id}/pay", data={}).status_code == 403  # no CSRF token
        r = client.post(f"/orders/{order.id}/pay", data={"csrf_token": CSRF}, follow_redirects=False)
        assert r.status_code == 303
        sign_in(client, app, w.seller.id or 0)
        sales = client.get("/orders")
        assert w.viewers[0].username in sales.text and "ship together" in sales.text
        r = client.post(f"/orders/{order.id}/ship", data={"csrf_token": CSRF}, follow_redirects=False)
        assert r.status_code == 303
        assert client.post(f"/orders/{order.id}/ship", data={"csrf_token": CSRF}).status_code == 409
        with db.session() as s:
            assert s.get(Order, order.id).status == "shipped"  # type: ignore[union-attr]


def test_second_chance_passes_on_when_declined_or_lapsed(database_url: str) -> None:
    db = Database(database_url)
    w = make_world(db, viewers=5, quantities=(1,))
    winner, first, second, third, fourth = (v.id or 0 for v in w.viewers)
    listing_id = w.listings[0].id or 0
    t0 = utcnow()
    with db.session() as s:
        lot = AuctionLot(
            show_id=w.show_id,
            lot_no=1,
            listing_id=listing_id,
            kind="auction",
            state="closed",
            state_json="{}",
        )
        s.add(lot)
        s.commit()
        s.refresh(lot)
        # 'first' bid twice: counted once, at their best
        for n, (bidder, amount) in enumerate(
            ((fourth, 900), (first, 2500), (winner, 5000), (first, 3000), (second, 2000), (third, 1000))
        ):
            s.add(
                AuctionBid(
                    show_id=w.show_id,
                    lot_id=lot.id or 0,
                    bidder_id=bidder,
                    max_cents=amount,
                    at_ms=n,
                    epoch=1,
                    seq=n + 1,
                )
            )
        s.commit()
        order = service.create_order(
            s, winner, listing_id, 3200, "auction", show_id=w.show_id, lot_id=lot.id, now=t0
        )
        service.expire_unpaid(s, ranked_bids, t0 + timedelta(minutes=16), 15)

        def offers() -> list[tuple[int, int, str]]:
            rows = s.exec(select(SecondChanceOffer).order_by(col(SecondChanceOffer.id))).all()
            for row in rows:
                s.refresh(row)
            return [(o.buyer_id, o.price_cents, o.status) for o in rows]

        assert offers() == [(first, 3000, "open")]
        offer = s.exec(select(SecondChanceOffer)).one()
        with pytest.raises(NotFound):  # only the bidder it was offered to may decline it
            service.decline_second_chance(s, offer.id or 0, second, ranked_bids)
        service.decline_second_chance(s, offer.id or 0, first, ranked_bids, now=t0 + timedelta(minutes=17))
        assert offers() == [(first, 3000, "declined"), (second, 2000, "open")]
        with pytest.raises(Conflict):  # declining twice changes nothing
            service.decline_second_chance(
                s, offer.id or 0, first, ranked_bids, now=t0 + timedelta(minutes=17)
            )
        assert len(offers()) == 2
        # 'second' lets it lapse: the sweep passes it on to 'third'
        assert service.expire_offers(s, ranked_bids, t0 + timedelta(minutes=20), 15) == []
        lapsed = service.expire_offers(s, ranked_bids, t0 + timedelta(minutes=33), 15)
        assert [o.buyer_id for o in lapsed] == [second]
        assert service.expire_offers(s, ranked_bids, t0 + timedelta(minutes=33), 15) == []  # only once
        assert offers()[1:] == [(second, 2000, "expired"), (third, 1000, "open")]
        # 'third' tries too late: the offer lapses on the spot and goes on to 'fourth'
        third_offer = s.exec(select(SecondChanceOffer).where(SecondChanceOffer.buyer_id == third)).one()
        with pytest.raises(Conflict):
            service.accept_second_chance(
                s, third_offer.id or 0, third, ranked_bids, now=t0 + timedelta(minutes=50)
            )
        assert offers()[2:] == [(third, 1000, "expired"), (fourth, 900, "open")]
        last = s.exec(select(SecondChanceOffer).where(SecondChanceOffer.buyer_id == fourth)).one()
        bought = service.accept_second_chance(
            s, last.id or 0, fourth, ranked_bids, now=t0 + timedelta(minutes=51)
        )
        assert (bought.buyer_id, bought.price_cents, bought.source) == (fourth, 900, "second_chance")
        # every bidder has had their chance: declining now would offer nobody else
        assert service.offer_next(s, order, ranked_bids, t0 + timedelta(minutes=52), 15) is None
    db.close()


def test_only_a_giveaway_may_cost_nothing(database_url: str) -> None:
    db = Database(database_url)
    w = make_world(db, quantities=(3,))
    buyer = w.viewers[0].id
    listing_id = w.listings[0].id
    assert buyer and listing_id
    with db.session() as s:
        for source in ("claim", "auction", "offer", "second_chance"):
            with pytest.raises(ValidationFailed):
                service.create_order(s, buyer, listing_id, 0, source)
        for bad in (-1, 1.5, True):
            with pytest.raises(ValidationFailed):
                service.create_order(s, buyer, listing_id, bad, "giveaway")  # type: ignore[arg-type]
        prize = service.create_order(s, buyer, listing_id, 0, "giveaway")
        # Nothing to pay, so nothing for the payment-window sweeper to cancel.
        assert (prize.status, prize.payment_ref) == ("paid", "free")
        assert s.exec(select(Order).where(Order.listing_id == listing_id)).all() == [prize]
    db.close()


def test_second_chance_accept_racing_the_sweeper_sells_one_unit(database_url: str) -> None:
    """The runner-up accepts in the very moment the sweeper lapses their offer and passes it on: only
    one of the two may win, or one auction sells two units of a multi-quantity listing."""
    db = Database(database_url)
    w = make_world(db, quantities=(3,))
    winner, runner, third = (v.id or 0 for v in w.viewers)
    listing_id = w.listings[0].id or 0
    t0 = utcnow()
    with db.session() as s:
        lot = AuctionLot(
            show_id=w.show_id,
            lot_no=1,
            listing_id=listing_id,
            kind="auction",
            state="closed",
            state_json="{}",
        )
        s.add(lot)
        s.commit()
        s.refresh(lot)
        for n, (bidder, amount) in enumerate(((winner, 5000), (runner, 3000), (third, 2000))):
            s.add(
                AuctionBid(
                    show_id=w.show_id,
                    lot_id=lot.id or 0,
                    bidder_id=bidder,
                    max_cents=amount,
                    at_ms=n,
                    epoch=1,
                    seq=n + 1,
                )
            )
        s.commit()
        service.create_order(s, winner, listing_id, 3200, "auction", show_id=w.show_id, lot_id=lot.id, now=t0)
        service.expire_unpaid(s, ranked_bids, t0 + timedelta(minutes=16), 15)
        offer_id = s.exec(select(SecondChanceOffer.id)).one() or 0
    with db.session() as accepting, db.session() as sweeping:
        # The runner-up's request has read the offer (still open, not yet due) ...
        seen = accepting.get(SecondChanceOffer, offer_id)
        assert seen is not None and seen.status == "open"
        # ... when the sweeper, a moment past its deadline, lapses it and offers the win to 'third'.
        assert [
            o.id for o in service.expire_offers(sweeping, ranked_bids, t0 + timedelta(minutes=31, seconds=1))
        ] == [offer_id]
        with pytest.raises(Conflict):
            service.accept_second_chance(
                accepting, offer_id, runner, ranked_bids, now=t0 + timedelta(minutes=30)
            )
        passed_on = sweeping.exec(select(SecondChanceOffer).where(SecondChanceOffer.buyer_id == third)).one()
        bought = service.accept_second_chance(
            sweeping, passed_on.id or 0, third, ranked_bids, now=t0 + timedelta(minutes=32)
        )
        assert bought.buyer_id == third
    with db.session() as s:
        live = s.exec(select(Order).where(Order.lot_id == lot.id, col(Order.status) != "cancelled")).all()
        assert [(o.buyer_id, o.source) for o in live] == [(third, "second_chance")]
        statuses = {o.buyer_id: o.status for o in s.exec(select(SecondChanceOffer)).all()}
        assert statuses == {runner: "expired", third: "accepted"}
        listing = s.get(Listing, listing_id)
        assert listing is not None and listing.sold_count == 1
    db.close()


def test_second_chance_accept_with_no_unit_left_leaves_the_offer_open(database_url: str) -> None:
    db = Database(database_url)
    w = make_world(db, quantities=(1,))
    winner, runner, elsewhere = (v.id or 0 for v in w.viewers)
    listing_id = w.listings[0].id or 0
    t0 = utcnow()
    with db.session() as s:
        order = service.create_order(s, winner, listing_id, 3200, "auction", show_id=w.show_id, now=t0)
        offer = SecondChanceOffer(
            order_id=order.id or 0,
            buyer_id=runner,
            seller_id=w.seller.id or 0,
            listing_id=listing_id,
            price_cents=3000,
            expires_at=t0 + timedelta(minutes=30),
        )
        s.add(offer)
        service.cancel(s, order.id or 0, winner, PAY, now=t0)
        service.create_order(s, elsewhere, listing_id, 1500, "replay", now=t0)  # the unit went elsewhere
        offer_id = offer.id or 0
        with pytest.raises(SoldOut):
            service.accept_second_chance(s, offer_id, runner, ranked_bids, now=t0 + timedelta(minutes=1))
    with db.session() as s:
        row = s.get(SecondChanceOffer, offer_id)
        assert row is not None and (row.status, row.new_order_id) == ("open", None)
    db.close()
