"""Collaborative documents: the store, the in-memory documents, and their files."""
