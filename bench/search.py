"""Search and similar-items latency on 10,000 generated listings (p50/p95, in-process HTTP).

    /tmp/venv/bin/python bench/search.py [--listings 10000] [--queries 300] [--database-url URL]

Builds a fresh migrated database (SQLite in a temp dir unless --database-url), creates sellers and
listings from a vocabulary of colours, materials, items and brands, embeds them with the real model
(identical texts are embedded once, as the backfill does), then times /api/search with mixed text and
filter queries and /api/listings/{id}/similar for random listings. Target: p95 under 50 ms.
"""

from __future__ import annotations

import argparse
import random
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from starlette.testclient import TestClient

from liveshow.accounts.models import User
from liveshow.app import create_app
from liveshow.closet.models import Listing
from liveshow.db import migrate
from liveshow.settings import Settings

COLOURS = ["black", "white", "navy", "red", "olive", "camel", "grey", "pink", "cream", "burgundy"]
MATERIALS = ["denim", "leather", "wool", "silk", "linen", "cotton", "cashmere", "suede", "velvet", "knit"]
ITEMS = [
    ("jacket", "outerwear"),
    ("coat", "outerwear"),
    ("blazer", "outerwear"),
    ("dress", "dresses"),
    ("skirt", "bottoms"),
    ("jeans", "bottoms"),
    ("trousers", "bottoms"),
    ("sweater", "tops"),
    ("shirt", "tops"),
    ("t-shirt", "tops"),
    ("boots", "shoes"),
    ("sandals", "shoes"),
    ("sneakers", "shoes"),
    ("tote bag", "bags"),
    ("crossbody bag", "bags"),
    ("scarf", "accessories"),
    ("belt", "accessories"),
    ("hat", "accessories"),
    ("cardigan", "tops"),
    ("jumpsuit", "dresses"),
]
BRANDS = [
    "Levi's",
    "Zara",
    "Everlane",
    "Madewell",
    "Reformation",
    "Acne",
    "COS",
    "Patagonia",
    "Vince",
    "Ganni",
]
SIZES = ["XS", "S", "M", "L", "XL", "6", "8", "10", "28", "30"]
QUERIES = ["denim jacket", "black", "silk dress", "leather boots", "wool", "bag", "levi", "pink sweater", "x"]


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--listings", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--reuse", default="", help="data dir of an earlier run: skip building and embedding")
    args = parser.parse_args()
    rng = random.Random(7)
    tmp = Path(args.reuse) if args.reuse else Path(tempfile.mkdtemp(prefix="liveshow-bench-search-"))
    url = args.database_url or f"sqlite:///{tmp / 'bench.db'}"
    if not args.reuse:
        build(url, tmp, args.listings, rng)
        print(f"data dir: {tmp} (pass --reuse {tmp} to time again without rebuilding)")
    run(url, tmp, args.queries, rng)
    return 0


def build(url: str, tmp: Path, count: int, rng: random.Random) -> None:
    migrate(url)
    ctx = create_app(settings_for(url, tmp)).state.ctx
    t0 = time.perf_counter()
    with ctx.db.session() as session:
        sellers = [User(username=f"bench-seller-{i}", password_hash="x") for i in range(50)]
        session.add_all(sellers)
        session.commit()
        seller_ids = [s.id for s in sellers if s.id is not None]
        batch = []
        for n in range(count):
            item, category = rng.choice(ITEMS)
            title = f"{rng.choice(COLOURS)} {rng.choice(MATERIALS)} {item}"
            batch.append(
                Listing(
                    seller_id=rng.choice(seller_ids),
                    title=title,
                    brand=rng.choice(BRANDS),
                    category=category,
                    size=rng.choice(SIZES),
                    price_cents=rng.randrange(500, 30_000, 50),
                )
            )
            if len(batch) == 1000 or n == count - 1:
                session.add_all(batch)
                session.commit()
                batch = []
    made = time.perf_counter() - t0
    t0 = time.perf_counter()
    embedded = ctx.social.similar.backfill(batch=64)
    embed_s = time.perf_counter() - t0
    print(f"{count} listings created in {made:.1f}s; {embedded} embedded in {embed_s:.1f}s")


def settings_for(url: str, tmp: Path) -> Settings:
    return Settings(data_dir=tmp, database_url=url, secret_key=secrets.token_hex(16), log_level="WARNING")


def run(url: str, tmp: Path, queries: int, rng: random.Random) -> None:
    app = create_app(settings_for(url, tmp))
    ctx = app.state.ctx
    with TestClient(app) as client:
        ids = [i for (i,) in ctx.db.engine.connect().exec_driver_sql("SELECT id FROM listings").fetchall()]
        client.get(f"/api/listings/{ids[0]}/similar")  # load the matrix once, as a warm server has it
        search_ms, similar_ms = [], []
        for _ in range(queries):
            params: dict[str, str] = {"q": rng.choice(QUERIES)}
            if rng.random() < 0.5:
                params["category"] = rng.choice(ITEMS)[1]
            if rng.random() < 0.3:
                params["max_price"] = str(rng.randrange(20, 300))
            if rng.random() < 0.3:
                params["size"] = rng.choice(SIZES)
            t = time.perf_counter()
            resp = client.get("/api/search", params=params)
            search_ms.append((time.perf_counter() - t) * 1000)
            assert resp.status_code == 200, resp.text
            t = time.perf_counter()
            resp = client.get(f"/api/listings/{rng.choice(ids)}/similar", params={"limit": "8"})
            similar_ms.append((time.perf_counter() - t) * 1000)
            assert resp.status_code == 200, resp.text
    for name, values in (("search", search_ms), ("similar", similar_ms)):
        print(
            f"{name:8s} n={len(values)} p50={statistics.median(values):.1f} ms "
            f"p95={pct(values, 95):.1f} ms max={max(values):.1f} ms"
        )


if __name__ == "__main__":
    sys.exit(main())
