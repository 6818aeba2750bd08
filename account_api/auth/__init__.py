"""Passwords, throttling and access tokens."""
