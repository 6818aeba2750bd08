"""Renewal: a new certificate for the names of an existing one."""
