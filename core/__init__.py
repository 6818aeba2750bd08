"""The rules every door of the CA shares: name policy, domain authorizations."""
