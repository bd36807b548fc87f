"""Path convertors: `{name:int}` in a route matches only ids a database column can hold."""

from __future__ import annotations

from starlette.convertors import IntegerConvertor, register_url_convertor


class IdConvertor(IntegerConvertor):
    """At most 18 significant digits (below 2**63 - 1, the largest BIGINT). A longer number matches no
    route and is answered 404, where it used to reach the database driver and fail there (a 500)."""

    regex = "0*[0-9]{1,18}"


def install() -> None:
    """Replace Starlette's `int` convertor; routes compile their paths when they are made, so this runs
    before create_app builds them. Idempotent."""
    register_url_convertor("int", IdConvertor())
