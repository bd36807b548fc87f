"""ICE server settings (pure): TURN REST credentials, static ones, RFC 9725 Link headers, port ranges."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from liveshow.media.icenet import IceNetwork, parse_port_range
from liveshow.media.iceservers import (
    IceConfigError,
    IceServer,
    IceServerSettings,
    link_header,
    rest_credentials,
)
from liveshow.settings import load_settings


def test_rest_credentials_match_coturn_use_auth_secret() -> None:
    # Known answer computed with `printf '1700000000:viewer1' | openssl dgst -sha1 -hmac
    # north-wind-secret -binary | base64`, the check coturn makes with static-auth-secret.
    username, password = rest_credentials("north-wind-secret", "viewer1", 1700000000)
    assert username == "1700000000:viewer1"
    assert password == "VWfW9vBhKIM7fwA2S/r+UlOTxvA="


@pytest.mark.parametrize("secret,user,expiry", [("s", "u", 1), ("a longer secret ✓", "x" * 40, 4102444800)])
def test_rest_credentials_are_base64_hmac_sha1_of_the_username(secret: str, user: str, expiry: int) -> None:
    username, password = rest_credentials(secret, user, expiry)
    assert username == f"{expiry}:{user}"
    digest = base64.b64decode(password, validate=True)
    assert digest == hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()


def test_rest_user_cannot_contain_the_separator() -> None:
    with pytest.raises(ValueError):
        rest_credentials("s", "a:b", 1)


def test_time_limited_credentials_expire_ttl_after_now_and_differ_per_session() -> None:
    config = IceServerSettings.from_urls(
        ("stun:stun.example.com:3478", "turn:turn.example.com:3478?transport=udp"),
        turn_secret="s3cret",
        turn_ttl_seconds=600,
    )
    stun, turn = config.for_session(now=1000.9, user="one")
    assert stun == IceServer(("stun:stun.example.com:3478",))
    assert turn.urls == ("turn:turn.example.com:3478?transport=udp",)
    assert turn.username == "1600:one"
    assert (turn.username, turn.credential) == rest_credentials("s3cret", "one", 1600)
    other = config.for_session(now=1000.9, user="two")[1]
    assert other.username != turn.username and other.credential != turn.credential


def test_static_turn_credentials_and_stun_only() -> None:
    config = IceServerSettings.from_urls(
        ("turns:turn.example.com:5349",), turn_username="alice", turn_password="pw"
    )
    assert config.for_session(0, "x") == (IceServer(("turns:turn.example.com:5349",), "alice", "pw"),)
    assert IceServerSettings.from_urls(()).for_session(0, "x") == ()
    stun_only = IceServerSettings.from_urls(("stun:a:1", "stun:b:2"))
    assert stun_only.for_session(0, "x") == (IceServer(("stun:a:1", "stun:b:2")),)


@pytest.mark.parametrize(
    "urls,kwargs",
    [
        (("http://turn.example.com",), {}),
        (("turn:turn.example.com:3478",), {}),  # no credentials at all
        (("turn:turn.example.com:3478",), {"turn_username": "only-a-name"}),
        (("turn:turn.example.com:3478",), {"turn_secret": "s", "turn_ttl_seconds": 0}),
    ],
)
def test_unusable_ice_settings_are_refused_with_a_reason(
    urls: tuple[str, ...], kwargs: dict[str, object]
) -> None:
    with pytest.raises(IceConfigError) as info:
        IceServerSettings.from_urls(urls, **kwargs)  # type: ignore[arg-type]
    assert "LIVESHOW_" in str(info.value) or "stun:" in str(info.value)


def test_link_header_per_rfc_9725() -> None:
    servers = (
        IceServer(("stun:stun.example.net",)),
        IceServer(
            ("turn:turn.example.net?transport=udp", "turn:turn.example.net?transport=tcp"), "1600:u", "p/w+="
        ),
    )
    assert link_header(servers) == (
        '<stun:stun.example.net>; rel="ice-server", '
        '<turn:turn.example.net?transport=udp>; rel="ice-server"; username="1600:u"; credential="p/w+=";'
        ' credential-type="password", '
        '<turn:turn.example.net?transport=tcp>; rel="ice-server"; username="1600:u"; credential="p/w+=";'
        ' credential-type="password"'
    )
    # quoted-string escapes (RFC 9110 5.6.4): a static password may hold anything
    assert link_header((IceServer(("turn:t",), 'a"b', "c\\d"),)) == (
        '<turn:t>; rel="ice-server"; username="a\\"b"; credential="c\\\\d"; credential-type="password"'
    )


def test_port_range_parsing() -> None:
    assert parse_port_range("") == (0, 0)
    assert parse_port_range(" 40000-40100 ") == (40000, 40100)
    assert parse_port_range("50000") == (50000, 50000)
    for bad in ("40100-40000", "0-10", "1-70000", "abc", "40000-x"):
        with pytest.raises(IceConfigError):
            parse_port_range(bad)


def test_ports_visit_the_whole_range_once_from_any_start() -> None:
    network = IceNetwork(port_min=40000, port_max=40004)
    assert list(network.ports(40003)) == [40003, 40004, 40000, 40001, 40002]
    assert sorted(network.ports(40000)) == [40000, 40001, 40002, 40003, 40004]
    assert list(IceNetwork().ports(0)) == [0]  # no range: one ephemeral bind


def test_announced_address_replaces_only_the_same_ip_version() -> None:
    network = IceNetwork(announced_address="203.0.113.7")
    assert network.announce("10.0.0.5") == "203.0.113.7"
    assert network.announce("fd00::5") == "fd00::5"
    assert IceNetwork().announce("10.0.0.5") == "10.0.0.5"


def test_network_settings_must_be_ip_addresses() -> None:
    with pytest.raises(IceConfigError):
        IceNetwork.from_settings(("eth0",), "", "")
    with pytest.raises(IceConfigError):
        IceNetwork.from_settings((), "media.example.com", "")
    assert IceNetwork.from_settings(("127.0.0.1",), "198.51.100.1", "40000-40010") == IceNetwork(
        ("127.0.0.1",), "198.51.100.1", 40000, 40010
    )


def test_ice_settings_come_from_the_environment() -> None:
    settings = load_settings(
        {
            "LIVESHOW_SECRET_KEY": "k",
            "LIVESHOW_ICE_SERVERS": "stun:s.example:3478, turn:t.example:3478?transport=udp",
            "LIVESHOW_TURN_SECRET": "shh",
            "LIVESHOW_TURN_TTL_SECONDS": "120",
            "LIVESHOW_ICE_INTERFACES": "10.0.0.5,fd00::5",
            "LIVESHOW_ICE_ANNOUNCED_ADDRESS": "203.0.113.10",
            "LIVESHOW_ICE_PORT_RANGE": "40000-40999",
        }
    )
    assert settings.ice_servers == ("stun:s.example:3478", "turn:t.example:3478?transport=udp")
    assert (settings.turn_secret, settings.turn_ttl_seconds) == ("shh", 120)
    assert settings.ice_interfaces == ("10.0.0.5", "fd00::5")
    network = IceNetwork.from_settings(
        settings.ice_interfaces, settings.ice_announced_address, settings.ice_port_range
    )
    assert network == IceNetwork(("10.0.0.5", "fd00::5"), "203.0.113.10", 40000, 40999)
    defaults = load_settings({"LIVESHOW_SECRET_KEY": "k"})
    assert (defaults.ice_servers, defaults.ice_interfaces, defaults.ice_port_range) == ((), (), "")
