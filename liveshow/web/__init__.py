"""HTTP glue shared by every handler: who is asking, CSRF, rendering, errors."""
