"""Pure X.509 and key handling: no database, no HTTP, no settings."""
