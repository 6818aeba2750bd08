"""The certificate service: a two-level CA behind a FastAPI app."""
