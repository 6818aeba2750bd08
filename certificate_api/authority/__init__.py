"""The CA itself: creating, importing and loading the root and issuing intermediate."""
