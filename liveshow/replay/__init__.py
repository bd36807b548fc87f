"""Recordings of shows, their timelines, the replay page and re-airs."""
