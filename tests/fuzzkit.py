"""Hostile JSON for the fuzz tests (tests/test_fuzz_*.py): values of the wrong type, huge and negative
numbers, deep nesting, long strings, control and bidi characters, and mutations of valid messages.

The budget: LIVESHOW_FUZZ_EXAMPLES (default 100) examples per fuzz test, sized so that the fuzz modules
together stay under a minute on a busy 2-core machine inside `make test`; raise it for a longer local run,
e.g. `LIVESHOW_FUZZ_EXAMPLES=2000 pytest tests/test_fuzz_room.py`."""

from __future__ import annotations

import itertools
import json
import os
import secrets
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from websockets.sync.client import ClientConnection, connect

from liveshow.settings import load_settings
from tests.conftest import free_port
from tests.roomkit import ws_url

EXAMPLES = int(os.environ.get("LIVESHOW_FUZZ_EXAMPLES", "100"))

# No deadline: each example is a round trip through a real server on a shared machine. Derandomized in
# `make test` so that a red run is reproducible; a longer local run explores new ground.
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize="LIVESHOW_FUZZ_EXAMPLES" not in os.environ,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    database=None,
)

# Characters that have broken text handling elsewhere: controls, bidi overrides and isolates,
# zero-width joiners, a BOM, a line separator, combining marks, astral emoji.
NASTY_CHARS = (
    "\x00\x01\x07\x08\x1b\x7f\x85\x9f\u200b\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
    "\u2066\u2067\u2068\u2069\ufeff\u2028\u2029\u0301\u0336\U0001f525\U0001f44d\ufffd"
)
EDGE_INTS = (0, -1, 1, 2**31 - 1, 2**31, -(2**31), 2**53 + 1, 2**63 - 1, 2**63, -(2**63), 10**30, -(10**30))

# Never surrogates: a lone surrogate cannot be encoded as UTF-8, so no client can send one as text.
chars = st.one_of(
    st.characters(blacklist_categories=("Cs",)),
    st.sampled_from(NASTY_CHARS),
)
short_text = st.text(chars, max_size=40)
texts = st.one_of(
    short_text,
    st.text(chars, min_size=200, max_size=3000),
    st.builds(
        lambda c, n: c * n, st.sampled_from(["x", "\u202e", " ", "\U0001f525", "9"]), st.integers(1, 20_000)
    ),
    st.sampled_from(
        ["", " ", "null", "0", "-1", "1e309", "NaN", "claim", "sold", "<script>alert(1)</script>"]
    ),
)
numbers = st.one_of(
    st.integers(),
    st.sampled_from(EDGE_INTS),
    st.floats(allow_nan=True, allow_infinity=True),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, texts)


@dataclass(frozen=True)
class Nested:
    """JSON nested `depth` deep around a scalar, kept as text: json.dumps (and repr) would recurse."""

    depth: int
    leaf: Any
    as_list: bool

    def text(self) -> str:
        opening, closing = ("[", "]") if self.as_list else ('{"a":', "}")
        return opening * self.depth + json.dumps(self.leaf, allow_nan=True) + closing * self.depth

    def __repr__(self) -> str:
        return f"Nested(depth={self.depth}, leaf={self.leaf!r}, as_list={self.as_list})"


# Deeper than any recursion limit in force, so a parser that does not guard it raises RecursionError;
# and shallow ones that parse anywhere. Nothing in between: whether depth 1,500 parses depends on the
# limit when it is parsed, and Hypothesis lifts the (process-wide) limit by 2,000 while an example runs,
# for the in-process server too.
deep = st.builds(Nested, st.one_of(st.integers(2, 60), st.integers(6000, 9000)), scalars, st.booleans())
json_values: st.SearchStrategy[Any] = st.one_of(
    scalars,
    deep,
    st.recursive(
        scalars,
        lambda inner: st.one_of(st.lists(inner, max_size=6), st.dictionaries(short_text, inner, max_size=6)),
        max_leaves=12,
    ),
)


@st.composite
def mutated(draw: st.DrawFn, valid: dict[str, Any], keep: tuple[str, ...] = ()) -> dict[str, Any]:
    """A valid message with some fields dropped, replaced by hostile values, or extra fields added.
    `keep` names fields left alone (the room's `type` and `id`, so the answer can be matched)."""
    message = dict(valid)
    names = [k for k in message if k not in keep]
    for name in names:
        action = draw(st.sampled_from(["keep", "keep", "drop", "replace"]))
        if action == "drop":
            del message[name]
        elif action == "replace":
            message[name] = draw(json_values)
    extra = draw(
        st.dictionaries(st.one_of(short_text, st.sampled_from(names or ["x"])), json_values, max_size=3)
    )
    for name, value in extra.items():
        if name not in keep:
            message[name] = value
    return message


def dumps(value: Any) -> str:
    """JSON as a hostile client writes it: NaN and Infinity included (Python's parser accepts them), and
    Nested values written out as deep as they are."""
    raws: list[str] = []

    def swap(v: Any) -> Any:
        if isinstance(v, Nested):
            raws.append(v.text())
            return f"\x00nested{len(raws) - 1}\x00"
        if isinstance(v, list):
            return [swap(x) for x in v]
        if isinstance(v, dict):
            return {k: swap(x) for k, x in v.items()}
        return v

    text = json.dumps(swap(value), allow_nan=True)
    for i, raw in enumerate(raws):
        text = text.replace(json.dumps(f"\x00nested{i}\x00"), raw, 1)
    return text


# ---------------------------------------------------------------- a real server and a room client

_ids = itertools.count(1)


def next_id(prefix: str) -> str:
    """A message id unique in this process."""
    return f"{prefix}{next(_ids)}"


class SyncPeer:
    """A blocking room client: batches unwrapped, replies matched by id."""

    def __init__(self, url: str, show_id: int, cookie: str | None) -> None:
        headers = {"Cookie": f"liveshow_session={cookie}"} if cookie else {}
        self.ws: ClientConnection = connect(
            ws_url(url, show_id), additional_headers=headers, max_size=2**22, open_timeout=20
        )
        self.pending: list[dict[str, Any]] = []
        self.until(lambda f: f.get("type") == "snapshot")

    def frames(self, timeout: float) -> Iterator[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            while self.pending:
                yield self.pending.pop(0)
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no answer from the room")
            message = json.loads(self.ws.recv(timeout=left))
            self.pending.extend(message["events"] if message.get("type") == "batch" else [message])

    def until(self, test: Any, timeout: float = 15.0) -> dict[str, Any]:
        for frame in self.frames(timeout):
            if test(frame):
                return frame
        raise AssertionError("unreachable")

    def send_raw(self, raw: str) -> None:
        self.ws.send(raw)

    def request(self, message: dict[str, Any], timeout: float = 15.0) -> dict[str, Any]:
        """Send and wait for the reply. Events that came first stay queued for until(): the server may
        send the event a request caused before it answers the request."""
        msg_id = next_id("h")
        self.ws.send(json.dumps({**message, "id": msg_id}))
        held: list[dict[str, Any]] = []
        try:
            for frame in self.frames(timeout):
                if frame.get("reply_to") == msg_id:
                    return frame
                held.append(frame)
        finally:
            self.pending[:0] = held
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.ws.close()


class ServerProcess:
    """`liveshow serve` in a process of its own, as in production. Not a thread of the test process:
    Hypothesis lifts the process-wide recursion limit while an example runs, which would let an
    in-process server parse nesting it never could in production (and fail elsewhere when it drops)."""

    def __init__(self, tmp: Path, database_url: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
            "LIVESHOW_DATA_DIR": str(tmp / "data"),
            "LIVESHOW_DATABASE_URL": database_url,
            "LIVESHOW_BUS_URL": "memory://",
            "LIVESHOW_SECRET_KEY": "fuzz-" + secrets.token_hex(8),
            "LIVESHOW_LOG_LEVEL": "WARNING",
            "LIVESHOW_GC_TUNING": "false",
            "LIVESHOW_ICE_INTERFACES": "127.0.0.1",
            "LIVESHOW_LISTEN_BACKLOG": "128",
        }
        self.settings = load_settings({k: v for k, v in env.items() if k.startswith("LIVESHOW_")})
        self.log = (tmp / "server.log").open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "liveshow.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"liveshow serve did not start; see {tmp / 'server.log'}")
            time.sleep(0.1)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
