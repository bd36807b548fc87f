"""The closet: a seller's listings and their photos."""
