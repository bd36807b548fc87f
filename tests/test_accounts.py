from __future__ import annotations

from pathlib import Path

from starlette.testclient import TestClient

from liveshow.app import create_app
from tests.conftest import make_settings, signup
from tests.helpers import form_csrf


def test_signup_signs_in_and_sets_safe_cookie(client: TestClient) -> None:
    token = form_csrf(client, "/signup")
    resp = client.post(
        "/signup",
        data={"username": "Alice", "password": "correct horse battery", "csrf_token": token},
        follow_redirects=False,
    )
    assert resp.status_code == 303
    assert resp.headers["location"] == "/closet/alice"
    cookie = resp.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "secure" not in cookie
    home = client.get("/")
    assert "Sign out" in home.text and "/closet/alice" in home.text


def test_cookie_is_secure_when_served_over_https(tmp_path: Path, sqlite_url: str) -> None:
    settings = make_settings(tmp_path, sqlite_url, public_url="https://shop.example")
    with TestClient(create_app(settings), base_url="https://shop.example") as client:
        token = form_csrf(client, "/signup")
        resp = client.post(
            "/signup",
            data={"username": "bob", "password": "correct horse battery", "csrf_token": token},
            follow_redirects=False,
        )
    assert resp.status_code == 303
    assert "secure" in resp.headers["set-cookie"].lower()


def test_signin_signout_and_wrong_password(client: TestClient) -> None:
    signup(client, "carol")
    token = form_csrf(client, "/")
    resp = client.post("/signout", data={"csrf_token": token}, follow_redirects=False)
    assert resp.status_code == 303
    assert "Sign in" in client.get("/").text

    token = form_csrf(client, "/signin")
    bad = client.post(
        "/signin", data={"username": "carol", "password": "nope nope nope", "csrf_token": token}
    )
    assert bad.status_code == 401
    assert "Wrong username or password" in bad.text
    assert 'value="carol"' in bad.text  # the form comes back filled in

    unknown = client.post(
        "/signin", data={"username": "nobody", "password": "whatever1", "csrf_token": token}
    )
    assert unknown.status_code == 401

    good = client.post(
        "/signin",
        data={
            "username": "carol",
            "password": "correct horse battery",
            "csrf_token": token,
            "next": "/settings",
        },
        follow_redirects=False,
    )
    assert good.status_code == 303 and good.headers["location"] == "/settings"
    assert "Account settings" in client.get("/settings").text


def test_signin_never_redirects_off_site(client: TestClient) -> None:
    signup(client, "dave")
    for target in ("https://evil.example/", "//evil.example/x", "/\\evil.example"):
        client.post("/signout", data={"csrf_token": form_csrf(client)})
        token = form_csrf(client, "/signin")
        resp = client.post(
            "/signin",
            data={
                "username": "dave",
                "password": "correct horse battery",
                "csrf_token": token,
                "next": target,
            },
            follow_redirects=False,
        )
        assert resp.headers["location"] == "/"


def test_forms_without_csrf_token_are_refused(client: TestClient) -> None:
    client.get("/signup")
    resp = client.post("/signup", data={"username": "eve", "password": "correct horse battery"})
    assert resp.status_code == 403
    resp = client.post(
        "/signup", data={"username": "eve", "password": "correct horse battery", "csrf_token": "forged"}
    )
    assert resp.status_code == 403
    signup(client, "eve")
    assert client.post("/signout", data={}).status_code == 403
    assert "Sign out" in client.get("/").text  # still signed in


def test_signup_errors_rerender_the_form(client: TestClient) -> None:
    signup(client, "frank")
    client.post("/signout", data={"csrf_token": form_csrf(client)})
    token = form_csrf(client, "/signup")
    taken = client.post(
        "/signup", data={"username": "frank", "password": "correct horse battery", "csrf_token": token}
    )
    assert taken.status_code == 409 and "taken" in taken.text
    short = client.post("/signup", data={"username": "gina", "password": "short", "csrf_token": token})
    assert short.status_code == 400 and "Password" in short.text
    bad_name = client.post(
        "/signup", data={"username": "a b!", "password": "correct horse battery", "csrf_token": token}
    )
    assert bad_name.status_code == 400 and "Username" in bad_name.text
    assert 'name="username"' in bad_name.text


def test_settings_issue_api_token_that_authenticates(client: TestClient) -> None:
    signup(client, "hana")
    resp = client.post("/settings/token", data={"csrf_token": form_csrf(client, "/settings")})
    assert resp.status_code == 200
    token = resp.text.split('id="new-token">', 1)[1].split("<", 1)[0]
    assert token.startswith("lst_")
    api = TestClient(client.app, base_url="http://127.0.0.1")
    listed = api.get("/api/listings", headers={"Authorization": f"Bearer {token}"})
    assert listed.status_code == 200 and listed.json() == {"listings": []}
    assert api.get("/api/listings", headers={"Authorization": "Bearer lst_wrong"}).status_code == 401


def test_profile_update_validates(client: TestClient) -> None:
    signup(client, "ivan")
    token = form_csrf(client, "/settings")
    ok = client.post(
        "/settings/profile", data={"csrf_token": token, "display_name": "Ivan's Vintage", "bio": "Denim"}
    )
    assert ok.status_code == 200 and "Profile saved" in ok.text
    assert "Ivan&#39;s Vintage" in client.get("/closet/ivan").text
    long = client.post("/settings/profile", data={"csrf_token": token, "display_name": "x" * 65})
    assert long.status_code == 400


def test_settings_requires_sign_in(client: TestClient) -> None:
    resp = client.get("/settings", follow_redirects=False)
    assert resp.status_code == 303 and resp.headers["location"].startswith("/signin")
