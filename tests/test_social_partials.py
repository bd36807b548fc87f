"""The partials other pages include render with the context those pages have."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.testclient import TestClient

from tests.test_search import demo_closet
from tests.test_social_support import app_ctx, make_show


def request_for(app: Starlette, user_id: int | None = None) -> Request:
    session: dict[str, Any] = {"uid": user_id} if user_id else {}
    scope = {"type": "http", "app": app, "method": "GET", "path": "/", "headers": [], "query_string": b""}
    return Request({**scope, "session": session, "state": {}})


def test_partials_render_for_listing_and_show_pages(app: Starlette, client: TestClient) -> None:
    seller, items = demo_closet(app)
    jacket = items["Levi's trucker denim jacket"]
    env = app_ctx(app).templates.env
    request = request_for(app)

    more = env.get_template("_more_like_this.html").render(request=request, listing=jacket, user=None)
    assert "More like this" in more and "Vintage jean jacket with sherpa collar" in more
    assert "Levi&#39;s trucker denim jacket" not in more  # never the item itself

    like = env.get_template("_like_button.html").render(request=request, listing=jacket, user=None)
    assert f'data-like-listing="{jacket.id}"' in like and 'data-signin="1"' in like
    follow = env.get_template("_follow_button.html").render(request=request, seller=seller.user, user=None)
    assert 'data-follow-seller="closet-queen"' in follow and "0</span> followers" in follow
    own = env.get_template("_follow_button.html").render(
        request=request, seller=seller.user, user=seller.user
    )
    assert "data-follow-seller" not in own  # no Follow button on your own profile

    show = make_show(app, seller, state="live")
    look = env.get_template("_shop_the_look.html").render(request=request, show=show, user=None)
    assert 'id="shop-the-look"' in look and 'id="item-like"' in look
    host = env.get_template("_giveaway.html").render(
        request=request, show=show, user=seller.user, is_host=True
    )
    viewer = env.get_template("_giveaway.html").render(request=request, show=show, user=None, is_host=False)
    assert "Start giveaway" in host and "Start giveaway" not in viewer and "Enter giveaway" in viewer
