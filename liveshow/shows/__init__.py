"""Shows: scheduling, lineup, lifecycle."""
