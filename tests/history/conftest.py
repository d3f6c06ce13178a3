"""Fixtures of the TimeTravel tests: the realtime tests' hubs with accounts and projects."""

from tests.realtime.conftest import team

__all__ = ["team"]
