"""Database URLs and engines (psycopg 3 under SQLAlchemy 2)."""

from __future__ import annotations

from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


def sqlalchemy_url(url: str) -> str:
    """postgresql://… (libpq style, as users write it) → postgresql+psycopg://…"""
    parsed = make_url(url)
    return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


def create_hub_engine(url: str, *, pool_size: int) -> AsyncEngine:
    return create_async_engine(
        sqlalchemy_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=False,
        pool_recycle=3600,
    )


def create_sync_engine(url: str) -> Engine:
    """For migrations and the CLI, which run before (or without) the event loop."""
    return create_engine(sqlalchemy_url(url), pool_size=1, max_overflow=0)
