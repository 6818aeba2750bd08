"""Sign-up, reading and deleting accounts."""
