"""Accounts: users, password hashing, sessions, API tokens."""
