"""Delivering outbox events to the external system: signed, retried, in order."""
