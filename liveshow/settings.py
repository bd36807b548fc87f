"""Settings: read once from config/default.toml, then LIVESHOW_* environment variables."""

from __future__ import annotations

import dataclasses
import os
import secrets
import tomllib
from pathlib import Path
from typing import Any

DEFAULTS_FILE = Path(__file__).resolve().parent.parent / "config" / "default.toml"


@dataclasses.dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("./data")
    database_url: str = ""
    bus_url: str = "memory://"
    # Namespace of every Redis key, so several deployments (or test runs) can share one Redis.
    bus_prefix: str = "liveshow"
    host: str = "127.0.0.1"
    port: int = 8000
    # Connections the kernel may hold for `liveshow serve` before it accepts them (listen(2)'s backlog;
    # Linux caps it at net.core.somaxconn). uvicorn's 2048 overflowed when thousands of viewers joined
    # a room at once on a busy process: the overflowing handshakes were reset.
    listen_backlog: int = 8192
    secret_key: str = ""
    public_url: str = ""
    # STUN/TURN URLs announced to clients (WHIP/WHEP Link headers, the studio and player pages).
    ice_servers: tuple[str, ...] = ()
    # TURN credentials: a secret shared with coturn (use-auth-secret) mints time-limited ones per
    # session; otherwise one static username/password.
    turn_secret: str = ""
    turn_ttl_seconds: int = 86400
    turn_username: str = ""
    turn_password: str = ""
    # Local addresses the server's peers gather ICE candidates on (empty: every non-loopback one).
    ice_interfaces: tuple[str, ...] = ()
    # Address written into the server's candidates instead of the bound one (the public side of a 1:1 NAT).
    ice_announced_address: str = ""
    # UDP ports the server's peers bind, "40000-40100" (empty: ephemeral ports); one port is shared by all.
    ice_port_range: str = ""
    max_photo_bytes: int = 8 * 1024 * 1024
    max_photos_per_listing: int = 8
    publisher_grace_seconds: float = 60.0
    # The relay answers viewers' NACKs from each show's packet cache (off: a lost packet costs a
    # keyframe request, as a relay without retransmission would; benchmarks compare the two).
    relay_rtx: bool = True
    # The relay sends each viewer only the VP8 temporal layers its link carries (off: every viewer gets
    # every layer).
    relay_layers: bool = True
    # What the browser studio publishes: "layered" (VP8 with three temporal layers where the browser
    # can encode them, so the relay can adapt each viewer) or "h264" (H.264 first: hardware encoding and
    # the LL-HLS rendition, which browsers cannot play from VP8; one layer). See the README, Video.
    studio_video: str = "layered"
    # Base URL other server processes redirect WHEP viewers to when this process holds a show's
    # publisher (several processes on Redis); empty means http://{host}:{port}.
    advertise_url: str = ""
    # Seconds a process's claim on a show's publisher lives unless refreshed (it refreshes every ttl/4).
    media_owner_ttl_seconds: float = 8.0
    # Edges (a process relaying a show it does not hold): at most this many edges pull from one node,
    # the rest from edges (a tree); 0: every edge pulls from the origin.
    media_edge_fanout: int = 0
    # Seconds an edge keeps pulling a show after its last viewer there left.
    media_edge_grace_seconds: float = 10.0
    # Seconds without a video frame before an edge looks again at where the show is.
    media_edge_stall_seconds: float = 2.0
    payment_window_minutes: int = 15
    # manual | test | stripe; empty: stripe when stripe_secret_key is set, else manual (orders.providers).
    payment_provider: str = ""
    # The test provider moves no money: the server refuses it unless this says it is a demo.
    allow_test_payments: bool = False
    stripe_secret_key: str = ""
    stripe_webhook_secret: str = ""
    stripe_publishable_key: str = ""
    # Where the stripe library sends its requests; empty is Stripe's own (tests point it at a stand-in).
    stripe_api_base: str = ""
    # ISO currency of card payments (lower case, as Stripe writes it).
    currency: str = "usd"
    # The platform's share of each sale, in basis points (100 = 1 %), kept back from the seller.
    platform_fee_bps: int = 0
    # Recordings older than this many days are deleted (0 keeps them forever).
    recording_retention_days: int = 30
    # Seconds between keyframe requests while recording, so a replay can seek (0 disables).
    recording_keyframe_interval: float = 4.0
    log_level: str = "INFO"
    # Bearer token /metrics asks for; without one, /metrics answers loopback clients only.
    metrics_token: str = ""
    # Web Push: the VAPID "sub" contact; http push endpoints only for a loopback test push service.
    push_subject: str = "mailto:admin@localhost"
    push_allow_http: bool = False
    # Room fan-out: events are flushed to sockets in one message per socket every this many ms. Each
    # round is a write per socket (a syscall): 50 rather than 40 ms cut the servers' CPU per 1,000 bids
    # by a seventh in bench/bids.py, for about 8 ms more delivery time (docs/performance.md).
    room_flush_ms: int = 50
    # ... stretched up to this under load (many sockets in one room): fewer writes per socket per second.
    room_flush_max_ms: int = 60
    # Proxies (addresses or networks) whose X-Forwarded-For names the client; none: the socket peer is.
    trusted_proxies: tuple[str, ...] = ()
    # Rate limits, "COUNT/SECONDS" or "off", shared by all processes on a Redis bus (docs/security.md).
    limit_signin_address: str = "20/300"
    limit_signin_account: str = "10/900"
    limit_signup_address: str = "5/3600"
    limit_chat_account: str = "5/10"
    limit_reaction_sender: str = "20/1"
    limit_bid_account: str = "20/10"
    limit_whip_address: str = "10/60"
    limit_whep_address: str = "30/60"
    limit_socket_address: str = "60/60"
    limit_socket_account: str = "30/60"
    # Caps on what is open at once (0: no cap): WHEP sessions per show and per address and show, and
    # room sockets per signed-in user and show.
    max_whep_per_show: int = 500
    max_whep_per_address: int = 10
    max_room_sockets_per_user: int = 5
    # Headroom of this process (liveshow/media/headroom.py): past any of these a new WHEP viewer is
    # refused with 503 + Retry-After (the publisher and the viewers already watching never are).
    # Viewers on the process (0: no cap); the process's CPU as a fraction of one core (0: off); the
    # event loop's smoothed lag in ms (0: off).
    max_viewers_per_process: int = 300
    cpu_ceiling: float = 0.9
    loop_lag_ceiling_ms: float = 100.0
    # Viewers whose join (answer, ICE, DTLS) may be in progress at once (0: no limit); a newcomer past
    # it waits up to join_wait_seconds for a slot, then gets 503 + Retry-After.
    max_joining_viewers: int = 16
    join_wait_seconds: float = 2.0
    # A join slot is given back after this long even if the viewer never connected.
    join_timeout_seconds: float = 10.0
    # This process's load record (liveshow/media/loadrecord.py) lives this long unless refreshed (~1 s).
    load_record_ttl_seconds: float = 3.0
    # Freeze what exists after startup and make full garbage collections rarer (see liveshow/gctune.py).
    gc_tuning: bool = True

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'liveshow.db'}"

    @property
    def advertised_url(self) -> str:
        return (self.advertise_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def uploads_dir(self) -> Path:
        return self.data_dir / "uploads"

    @property
    def recordings_dir(self) -> Path:
        return self.data_dir / "recordings"

    def with_overrides(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


def _coerce(field: dataclasses.Field[Any], raw: Any) -> Any:
    kind = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", "")
    if kind == "Path":
        return Path(str(raw))
    if kind == "int":
        return int(raw)
    if kind == "float":
        return float(raw)
    if kind == "bool":
        return raw if isinstance(raw, bool) else str(raw).strip().lower() in ("1", "true", "yes", "on")
    if kind.startswith("tuple"):
        if isinstance(raw, list | tuple):
            return tuple(str(x) for x in raw)
        return tuple(s.strip() for s in str(raw).split(",") if s.strip())
    return str(raw)


def coerce_values(values: dict[str, Any]) -> dict[str, Any]:
    """Setting values as written in the defaults file or the environment, typed as Settings has them."""
    known = {f.name: f for f in dataclasses.fields(Settings)}
    return {k: _coerce(known[k], v) for k, v in values.items() if k in known}


def load_settings(env: dict[str, str] | None = None, defaults_file: Path = DEFAULTS_FILE) -> Settings:
    """Merge the defaults file with LIVESHOW_* variables; the secret key is made once and kept."""
    env = dict(os.environ) if env is None else env
    values: dict[str, Any] = {}
    if defaults_file.exists():
        values.update(tomllib.loads(defaults_file.read_text()))
    for field in dataclasses.fields(Settings):
        key = f"LIVESHOW_{field.name.upper()}"
        if key in env:
            values[field.name] = env[key]
    settings = Settings(**coerce_values(values))
    if not settings.secret_key:
        settings = settings.with_overrides(secret_key=_persistent_secret(settings.data_dir))
    return settings


def _persistent_secret(data_dir: Path) -> str:
    # Sessions must survive restarts, so a generated key is written beside the data it protects.
    path = data_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    path.write_text(key)
    path.chmod(0o600)
    return key
