"""Room message types the auction answers."""

ROOM_TYPES = ("claim", "bid", "lot.state", "lot.open", "lot.close", "lot.next", "lot.cancel")
