"""Similar listings: embeddings made when a listing is saved, nearest neighbours by cosine in numpy.

Vectors are L2-normalised float32 in ``listing_embeddings``; each process keeps them in one matrix and
reloads it when the table changed (another process saved a listing). A query is one matrix-vector
product plus a partial sort: about a millisecond for 10,000 listings.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from dataclasses import dataclass

import numpy as np
from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from liveshow.clock import utcnow
from liveshow.closet.models import Listing
from liveshow.db import Database
from liveshow.social.embedder import DIM, MODEL_NAME, Embedder, Floats
from liveshow.social.models import ListingEmbedding

log = logging.getLogger(__name__)
MAX_NEIGHBOURS = 24


DESCRIPTION_WEIGHT = 0.25


def listing_texts(listing: Listing) -> tuple[str, str]:
    """What the item is (title, brand, kind) and what the seller says about it, embedded apart: a long
    description would otherwise drown the title (a denim jacket is more like a fleece jacket than like
    a tote whose description also says "cotton")."""
    parts = [listing.title, listing.brand, listing.category]
    head = ". ".join(p.strip() for p in parts if p and p.strip() and p != "other")
    return head, listing.description.strip()[:500]


def listing_text(listing: Listing) -> str:
    head, description = listing_texts(listing)
    return f"{head}\n{description}"


def combine(head: Floats, description: Floats | None) -> Floats:
    vector = (
        head if description is None else (1 - DESCRIPTION_WEIGHT) * head + DESCRIPTION_WEIGHT * description
    )
    out: Floats = (vector / max(float(np.linalg.norm(vector)), 1e-12)).astype(np.float32)
    return out


def text_hash(text: str) -> str:
    return hashlib.sha256(f"{MODEL_NAME}\n{text}".encode()).hexdigest()


@dataclass
class _Matrix:
    ids: np.ndarray  # int64 listing ids
    sellers: np.ndarray  # int64 seller ids
    vectors: Floats
    version: tuple[int, str]


class SimilarIndex:
    def __init__(self, db: Database, embedder: Embedder, recheck_seconds: float = 2.0) -> None:
        self.db = db
        self.embedder = embedder
        # How stale another process's saves may look here; this process's own saves show at once.
        self.recheck_seconds = recheck_seconds
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._matrix: _Matrix | None = None
        self._checked_at = 0.0

    # ------------------------------------------------------------ writing

    def listing_saved(self, session: Session, listing: Listing) -> bool:
        """The closet's hook: (re)embed a listing after it is created or edited. True if it changed."""
        assert listing.id is not None
        head, description = listing_texts(listing)
        digest = text_hash(listing_text(listing))
        with self._write_lock:  # the background hook and a direct call may meet on one listing
            row = session.get(ListingEmbedding, listing.id)
            if row is not None and row.text_hash == digest:
                return False
            vectors = self.embedder.embed([head, description] if description else [head])
            vector = combine(vectors[0], vectors[1] if description else None)
            self._store(session, listing.id, digest, vector, row)
            try:
                session.commit()
            except IntegrityError:
                # Another process embedded it (or the listing was deleted) meanwhile: nothing to do.
                session.rollback()
                return False
        self._checked_at = 0.0  # look again on the next query
        return True

    def _store(
        self, session: Session, listing_id: int, digest: str, vector: Floats, row: ListingEmbedding | None
    ) -> None:
        blob = np.asarray(vector, dtype="<f4").tobytes()
        if row is None:
            row = ListingEmbedding(listing_id=listing_id, model=MODEL_NAME, text_hash=digest, vector=blob)
        else:
            row.text_hash, row.vector, row.model, row.updated_at = digest, blob, MODEL_NAME, utcnow()
        session.add(row)

    def backfill(self, batch: int = 32, limit: int | None = None) -> int:
        """Embed every listing without an up-to-date vector; identical texts are embedded once."""
        with self.db.session() as session:
            have = {r.listing_id: r.text_hash for r in session.exec(select(ListingEmbedding))}
            todo: list[tuple[int, tuple[str, str], str]] = []
            for listing in session.exec(select(Listing).order_by(col(Listing.id))):
                assert listing.id is not None
                digest = text_hash(listing_text(listing))
                if have.get(listing.id) != digest:
                    todo.append((listing.id, listing_texts(listing), digest))
        if limit is not None:
            todo = todo[:limit]
        unique = sorted({t for _, texts, _ in todo for t in texts if t})
        vectors: dict[str, Floats] = {}
        for start in range(0, len(unique), batch):
            chunk = unique[start : start + batch]
            for text, vector in zip(chunk, self.embedder.embed(chunk), strict=True):
                vectors[text] = vector

        def vector_of(texts: tuple[str, str]) -> Floats:
            return combine(vectors[texts[0]], vectors[texts[1]] if texts[1] else None)

        done = 0
        for start in range(0, len(todo), 500):
            done += self._write_chunk([(i, d, vector_of(t)) for i, t, d in todo[start : start + 500]])
        self._checked_at = 0.0
        return done

    def _write_chunk(self, rows: list[tuple[int, str, Floats]]) -> int:
        # Under the write lock and against fresh rows: the background hook may have embedded some.
        with self._write_lock, self.db.session() as session:
            done = 0
            for listing_id, digest, vector in rows:
                row = session.get(ListingEmbedding, listing_id)
                if row is None or row.text_hash != digest:
                    self._store(session, listing_id, digest, vector, row)
                    done += 1
            try:
                session.commit()
            except IntegrityError:
                session.rollback()  # another process wrote some of them: they are embedded anyway
                return 0
            return done

    # ------------------------------------------------------------ reading

    def _version(self, session: Session) -> tuple[int, str]:
        count, newest = session.exec(select(func.count(), func.max(ListingEmbedding.updated_at))).one()
        return int(count), str(newest)

    def _current(self, session: Session) -> _Matrix:
        now = time.monotonic()
        if self._matrix is not None and now - self._checked_at < self.recheck_seconds:
            return self._matrix
        version = self._version(session)
        self._checked_at = now
        with self._lock:
            if self._matrix is not None and self._matrix.version == version:
                return self._matrix
            rows = session.exec(
                select(ListingEmbedding.listing_id, Listing.seller_id, ListingEmbedding.vector).join(
                    Listing, col(Listing.id) == col(ListingEmbedding.listing_id)
                )
            ).all()
            ids = np.array([r[0] for r in rows], dtype=np.int64)
            sellers = np.array([r[1] for r in rows], dtype=np.int64)
            vectors = (
                np.frombuffer(b"".join(r[2] for r in rows), dtype="<f4").reshape(len(rows), DIM).copy()
                if rows
                else np.zeros((0, DIM), dtype=np.float32)
            )
            self._matrix = _Matrix(ids, sellers, vectors, version)
            return self._matrix

    def similar(
        self, session: Session, listing_id: int, limit: int = 8, seller_id: int | None = None
    ) -> list[tuple[Listing, float]]:
        """The available listings nearest to ``listing_id`` (optionally from one seller's closet)."""
        limit = max(1, min(limit, MAX_NEIGHBOURS))
        m = self._current(session)
        where = np.nonzero(m.ids == listing_id)[0]
        if len(where) == 0:
            return []
        scores = m.vectors @ m.vectors[where[0]]
        scores[where[0]] = -np.inf
        if seller_id is not None:
            scores = np.where(m.sellers == seller_id, scores, -np.inf)
        # Take extra candidates: some may be sold or hidden, filtered below against the database.
        k = min(len(scores), limit * 3 + 8)
        if k == 0:
            return []
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top])]
        top = top[np.isfinite(scores[top])]
        wanted = [int(m.ids[i]) for i in top]
        found = {
            lst.id: lst
            for lst in session.exec(
                select(Listing).where(col(Listing.id).in_(wanted), Listing.status == "available")
            )
        }
        out: list[tuple[Listing, float]] = []
        for i in top:
            listing = found.get(int(m.ids[i]))
            if listing is not None:
                out.append((listing, float(scores[i])))
                if len(out) == limit:
                    break
        return out
