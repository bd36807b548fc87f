"""The `liveshow` command."""

from __future__ import annotations

import argparse
import getpass
import secrets
import sys
from pathlib import Path

from liveshow.settings import Settings, load_settings


def _db(settings: Settings):  # type: ignore[no-untyped-def]
    from liveshow.db import Database

    return Database(settings.resolved_database_url)


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from liveshow.app import create_app

    host = args.host or settings.host
    port = args.port or settings.port
    backlog = args.backlog or settings.listen_backlog
    settings = settings.with_overrides(host=host, port=port, listen_backlog=backlog)
    cap = somaxconn()
    if cap is not None and cap < backlog:
        print(
            f"liveshow: listen backlog {backlog} is capped at net.core.somaxconn = {cap}; "
            f"raise it (sysctl -w net.core.somaxconn={backlog}) for rooms of thousands",
            file=sys.stderr,
        )
    # Graceful shutdown: uvicorn stops accepting, lifespan closes peers and sockets.
    # access_log off: our own middleware logs each request once, with its request id and duration.
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
        backlog=backlog,
        # The sans-I/O websockets protocol: the cheapest per send (measured in bench/room.py). No
        # permessage-deflate: it would compress every room batch once per socket, and batches are small.
        ws="websockets-sansio",
        ws_per_message_deflate=False,
    )
    return 0


def somaxconn(path: Path = Path("/proc/sys/net/core/somaxconn")) -> int | None:
    """The kernel's cap on a listen backlog (Linux), None where it cannot be read."""
    try:
        return int(path.read_text())
    except (OSError, ValueError):
        return None


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    _db(settings).migrate()
    print("database is up to date")
    return 0


def cmd_create_user(settings: Settings, args: argparse.Namespace) -> int:
    from liveshow.accounts.service import create_user
    from liveshow.errors import DomainError

    password = args.password or getpass.getpass("Password: ")
    try:
        with _db(settings).session() as session:
            user = create_user(session, args.name, password)
    except DomainError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    print(f"created user {user.username}")
    return 0


def cmd_token(settings: Settings, args: argparse.Namespace) -> int:
    from liveshow.accounts.service import get_user_by_name, issue_token

    with _db(settings).session() as session:
        user = get_user_by_name(session, args.name)
        if user is None:
            print(f"error: no user named {args.name!r}", file=sys.stderr)
            return 2
        print(issue_token(session, user))
    return 0


def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    from liveshow.demo import load_demo

    db = _db(settings)
    db.migrate()
    password = load_demo(db, settings, password=args.password or secrets.token_urlsafe(9))
    if password is None:
        print("demo data already loaded (user demo-seller)")
    else:
        print(f"demo data loaded: sign in as demo-seller with password {password}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="liveshow", description="Live-shopping show server")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve HTTP and WebSocket")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--backlog", type=int, help="listen backlog (default: the listen_backlog setting)")
    serve.set_defaults(func=cmd_serve)
    sub.add_parser("migrate", help="apply database migrations").set_defaults(func=cmd_migrate)
    create = sub.add_parser("create-user", help="create an account")
    create.add_argument("name")
    create.add_argument("--password")
    create.set_defaults(func=cmd_create_user)
    token = sub.add_parser("token", help="print a new API token for a user")
    token.add_argument("name")
    token.set_defaults(func=cmd_token)
    demo = sub.add_parser("demo", help="load the demo seller, closet and show")
    demo.add_argument("--password")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = load_settings()
    result: int = args.func(settings, args)
    return result


if __name__ == "__main__":
    sys.exit(main())
