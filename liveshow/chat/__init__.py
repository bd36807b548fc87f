"""The show room: one WebSocket per viewer for chat, reactions, presence and moderation."""
