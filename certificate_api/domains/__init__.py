"""Domain authorizations over HTTP."""
