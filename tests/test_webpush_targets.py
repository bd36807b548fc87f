"""Web Push never reaches inside: every address of an endpoint's host must be public (IPv4 and IPv6,
IPv4 embedded in IPv6 too), and the push is sent to the address that was checked, with the host name
kept for Host and TLS, so a name re-pointed after the check (DNS rebinding) gains nothing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from starlette.testclient import TestClient

from liveshow.app import create_app
from liveshow.settings import Settings
from liveshow.social.pushnet import PinnedAdapter, refusal
from liveshow.social.webpush import b64url
from tests.test_notices_webpush import PushService, browser_keys
from tests.test_social_support import act_as, app_ctx, make_user

INSIDE = {
    "10.0.0.5": "private",
    "172.16.3.4": "private",
    "192.168.1.1": "private",
    "127.0.0.5": "loopback",
    "169.254.169.254": "link-local",  # cloud metadata
    "224.0.0.1": "multicast",
    "240.0.0.1": "reserved",
    "0.0.0.0": "unspecified",
    "100.64.0.1": "not public",  # carrier-grade NAT
    "::1": "loopback",
    "::": "unspecified",
    "fe80::1%eth0": "link-local",
    "fc00::1": "private",
    "ff02::1": "multicast",
    "::ffff:10.0.0.5": "private",  # IPv4-mapped
    "::ffff:127.0.0.1": "loopback",
    "2002:a00:5::1": "private",  # 6to4 of 10.0.0.5
    "64:ff9b::a9fe:a9fe": "link-local",  # NAT64 of 169.254.169.254
}
PUBLIC = ["93.184.215.14", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"]


@pytest.mark.parametrize("address", sorted(INSIDE))
def test_inside_addresses_are_refused(address: str) -> None:
    why = refusal(address)
    assert why is not None and INSIDE[address] in why, why


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_pass(address: str) -> None:
    assert refusal(address) is None


def test_loopback_only_for_the_test_push_service() -> None:
    assert refusal("127.0.0.1", allow_loopback=True) is None
    assert refusal("10.0.0.5", allow_loopback=True) == "private"


class Dns:
    """A fake resolver: name -> addresses; each answer can be changed between calls."""

    def __init__(self, **names: list[str]) -> None:
        self.names = {k.replace("_", "."): v for k, v in names.items()}
        self.asked: list[str] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        if host not in self.names:
            raise OSError("no such host")
        return self.names[host]


def _sub(endpoint: str) -> dict[str, Any]:
    _key, p256dh, auth = browser_keys()
    return {"endpoint": endpoint, "keys": {"p256dh": p256dh, "auth": b64url(auth)}}


def test_a_name_that_resolves_inside_is_refused_at_subscribe(client: TestClient) -> None:
    app: Any = client.app
    h = act_as(client, make_user(app, "ann"))
    dns = Dns(
        inside_example=["10.1.2.3"],
        meta_example=["169.254.169.254"],
        mixed_example=["93.184.215.14", "::ffff:192.168.0.1"],
        v6_example=["fd12::1"],
        push_example=["93.184.215.14", "2606:4700:4700::1111"],
    )
    app_ctx(app).social.push.resolve = dns  # type: ignore[union-attr]
    for host in ("inside.example", "meta.example", "mixed.example", "v6.example", "nowhere.example"):
        resp = client.post("/api/push/subscriptions", json=_sub(f"https://{host}/x"), headers=h)
        assert resp.status_code == 400, host
        assert "public push service" in resp.json()["reason"] or "resolve" in resp.json()["reason"]
    assert (
        client.post("/api/push/subscriptions", json=_sub("https://push.example/x"), headers=h).status_code
        == 201
    )


@pytest.fixture
def push_service() -> Iterator[PushService]:
    service = PushService()
    yield service
    service.close()


@pytest.fixture
def push_client(settings: Settings) -> Iterator[TestClient]:
    app = create_app(settings.with_overrides(push_allow_http=True))
    with TestClient(app, base_url="http://127.0.0.1") as client:
        yield client


def test_the_push_goes_to_the_checked_address_with_the_name_as_host(
    push_client: TestClient, push_service: PushService
) -> None:
    app: Any = push_client.app
    ann = make_user(app, "ann")
    h = act_as(push_client, ann)
    port = push_service.url.rsplit(":", 1)[1]
    # push.test exists only in this resolver: the request can only arrive if it went to that address.
    dns = Dns(push_test=["127.0.0.1"])
    app_ctx(app).social.push.resolve = dns  # type: ignore[union-attr]
    endpoint = f"http://push.test:{port}/push/abc"
    assert push_client.post("/api/push/subscriptions", json=_sub(endpoint), headers=h).status_code == 201
    notifier = app_ctx(app).social.notifier  # type: ignore[union-attr]
    push_client.portal.call(notifier.notify, [ann.id], "show_live", "live now", "/shows/7")
    push_client.portal.call(notifier.drain)
    got = push_service.wait(1)
    assert [m["path"] for m in got] == ["/push/abc"]
    assert got[0]["headers"]["Host"] == f"push.test:{port}"
    assert dns.asked == ["push.test", "push.test"]  # at subscribe, and again at the send


def test_a_name_re_pointed_inside_after_subscribing_gets_nothing(
    push_client: TestClient, push_service: PushService
) -> None:
    app: Any = push_client.app
    ann = make_user(app, "ann")
    h = act_as(push_client, ann)
    port = push_service.url.rsplit(":", 1)[1]
    dns = Dns(push_test=["127.0.0.1"])
    app_ctx(app).social.push.resolve = dns  # type: ignore[union-attr]
    endpoint = f"http://push.test:{port}/push/abc"
    assert push_client.post("/api/push/subscriptions", json=_sub(endpoint), headers=h).status_code == 201
    dns.names["push.test"] = ["10.0.0.5"]  # rebinding: now it points inside
    notifier = app_ctx(app).social.notifier  # type: ignore[union-attr]
    push_client.portal.call(notifier.notify, [ann.id], "show_live", "live now", "/shows/7")
    push_client.portal.call(notifier.drain)
    assert dns.asked == ["push.test", "push.test"]  # it was asked again at the send, and refused
    assert push_service.received == []


def test_the_pinned_adapter_keeps_the_name_for_tls_and_refuses_other_hosts() -> None:
    adapter = PinnedAdapter("Push.Example", "93.184.215.14")
    request = requests.Request("POST", "https://push.example/x").prepare()
    host_params, pool_kwargs = adapter.build_connection_pool_key_attributes(request, True)
    assert host_params["host"] == "93.184.215.14" and host_params["scheme"] == "https"
    assert (
        pool_kwargs["server_hostname"] == "push.example" and pool_kwargs["assert_hostname"] == "push.example"
    )
    elsewhere = requests.Request("POST", "https://169.254.169.254/latest").prepare()
    with pytest.raises(requests.ConnectionError, match="another host"):
        adapter.build_connection_pool_key_attributes(elsewhere, True)
