"""A local stand-in for the few Stripe endpoints liveshow uses (Stripe's servers cannot be reached
here): POST /v1/payment_intents and /v1/refunds in Stripe's request and response shapes, idempotency
keys honoured as Stripe does (same key: the same object back), and webhook events signed with
Stripe's scheme (``t=...,v1=HMAC-SHA256(secret, f"{t}.{payload}")``) for the tests to deliver."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

WEBHOOK_SECRET = "whsec_standin_" + "0" * 16


def sign(payload: str, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.{payload}".encode(), hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def _nest(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Stripe's form encoding (a[b]=1) back into nested dicts."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        parts = key.replace("]", "").split("[")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


@dataclass
class Request:
    method: str
    path: str
    idempotency_key: str | None
    params: dict[str, Any]


@dataclass
class StripeStandIn:
    requests: list[Request] = field(default_factory=list)
    intents: dict[str, dict[str, Any]] = field(default_factory=dict)
    refunds: list[dict[str, Any]] = field(default_factory=list)
    # While set, every refund is refused (as Stripe does when the platform balance cannot cover it).
    refuse_refunds: bool = False
    _replies: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> StripeStandIn:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return None

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length).decode()
                key = self.headers.get("idempotency-key")
                auth = self.headers.get("authorization", "")
                if not auth.startswith("Bearer sk_"):
                    return self._reply(
                        401, {"error": {"type": "invalid_request_error", "message": "No API key."}}
                    )
                status, reply = standin.handle(self.path, key, _nest(parse_qsl(body)))
                self._reply(status, reply)

            def _reply(self, status: int, body: dict[str, Any]) -> None:
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("request-id", "req_" + secrets.token_hex(6))
                self.send_header("content-length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    # ---- the API

    def handle(self, path: str, key: str | None, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.requests.append(Request("POST", path, key, params))
            if key is not None and (path + key) in self._replies:
                return self._replies[path + key]  # Stripe answers a repeated key with the first answer
            if path == "/v1/payment_intents":
                reply = self._create_intent(params)
            elif path == "/v1/refunds":
                reply = self._create_refund(params)
            elif path == "/v1/accounts":
                reply = (
                    200,
                    {
                        "id": "acct_" + secrets.token_hex(8),
                        "object": "account",
                        "type": params.get("type"),
                        "metadata": params.get("metadata", {}),
                        "charges_enabled": False,
                    },
                )
            elif path == "/v1/account_links":
                reply = (
                    200,
                    {
                        "object": "account_link",
                        "url": f"https://connect.stripe.test/setup/{params['account']}",
                        "expires_at": int(time.time()) + 300,
                    },
                )
            else:
                reply = (
                    404,
                    {
                        "error": {
                            "type": "invalid_request_error",
                            "message": f"Unrecognized request URL {path}.",
                        }
                    },
                )
            if key is not None:
                self._replies[path + key] = reply
            return reply

    def _create_intent(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        intent_id = "pi_" + secrets.token_hex(12)
        intent = {
            "id": intent_id,
            "object": "payment_intent",
            "amount": int(params["amount"]),
            "amount_received": 0,
            "currency": params["currency"],
            "status": "requires_payment_method",
            "client_secret": f"{intent_id}_secret_{secrets.token_hex(8)}",
            "application_fee_amount": int(params.get("application_fee_amount", 0)),
            "transfer_data": params.get("transfer_data"),
            "metadata": params.get("metadata", {}),
            "livemode": False,
            "last_payment_error": None,
        }
        self.intents[intent_id] = intent
        return 200, intent

    def _create_refund(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        intent = self.intents.get(params.get("payment_intent", ""))
        if intent is None:
            return 404, {"error": {"type": "invalid_request_error", "message": "No such payment_intent."}}
        if self.refuse_refunds:
            return 400, {
                "error": {
                    "type": "invalid_request_error",
                    "code": "balance_insufficient",
                    "message": "You have insufficient funds in your Stripe account for this refund.",
                }
            }
        amount = int(params.get("amount", intent["amount_received"]))
        given = sum(r["amount"] for r in self.refunds if r["payment_intent"] == intent["id"])
        if intent["status"] != "succeeded" or given + amount > intent["amount_received"]:
            return 400, {
                "error": {
                    "type": "invalid_request_error",
                    "code": "charge_already_refunded",
                    "message": f"Refund amount ({amount}) is greater than unrefunded amount.",
                }
            }
        refund = {
            "id": "re_" + secrets.token_hex(12),
            "object": "refund",
            "amount": amount,
            "payment_intent": intent["id"],
            "status": "succeeded",
            "currency": intent["currency"],
        }
        self.refunds.append(refund)
        return 200, refund

    # ---- what the browser (Stripe.js) and Stripe's webhooks would do

    def confirm(self, intent_id: str, card: str = "4242424242424242") -> str:
        """The buyer confirms in the browser; the signed event Stripe would send, as (payload, header)."""
        intent = self.intents[intent_id]
        if card == "4000000000000002":
            intent["last_payment_error"] = {
                "code": "card_declined",
                "decline_code": "generic_decline",
                "message": "Your card was declined.",
                "type": "card_error",
            }
            intent["status"] = "requires_payment_method"
            return self.event("payment_intent.payment_failed", intent)
        intent["status"], intent["amount_received"] = "succeeded", intent["amount"]
        return self.event("payment_intent.succeeded", intent)

    def event(self, kind: str, obj: dict[str, Any]) -> str:
        return json.dumps(
            {
                "id": "evt_" + secrets.token_hex(12),
                "object": "event",
                "api_version": "2024-06-20",
                "created": int(time.time()),
                "livemode": False,
                "type": kind,
                "data": {"object": dict(obj)},
            }
        )

    def posts(self, path: str) -> list[Request]:
        return [r for r in self.requests if r.path == path]
