"""Revocation as relying parties see it: CRL and OCSP."""
