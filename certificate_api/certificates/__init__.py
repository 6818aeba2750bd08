"""Issuing, reading, listing, holding and revoking customers' certificates."""
