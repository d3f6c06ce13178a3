"""Use cases. They take an AsyncEngine, raise domain errors and know nothing of HTTP."""
