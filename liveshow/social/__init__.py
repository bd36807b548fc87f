"""Social selling: likes, follows, notices, offers, giveaways, discovery, first sale, analytics."""
