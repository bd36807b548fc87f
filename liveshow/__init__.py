"""liveshow: a self-hostable server for live-shopping video shows."""

__version__ = "0.1.0"
