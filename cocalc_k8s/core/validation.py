"""Checks on user input that need no I/O. Each raises BadRequest with a message for the user."""

from __future__ import annotations

import re
from typing import Any

from cocalc_k8s.core.errors import BadRequest

MIN_PASSWORD = 8
MAX_PASSWORD = 256
MAX_EMAIL = 254
MAX_NAME = 100
# Deliberately simple: one @, a dot in the domain, no spaces. Delivery proves the rest.
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s.]+$")


def email(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BadRequest("email is required")
    clean = value.strip().lower()
    if len(clean) > MAX_EMAIL or not _EMAIL.match(clean):
        raise BadRequest("email is not a valid email address")
    return clean


def password(value: Any, *, field: str = "password") -> str:
    if not isinstance(value, str) or not value:
        raise BadRequest(f"{field} is required")
    if len(value) < MIN_PASSWORD:
        raise BadRequest(f"{field} must have at least {MIN_PASSWORD} characters")
    if len(value) > MAX_PASSWORD:
        raise BadRequest(f"{field} must have at most {MAX_PASSWORD} characters")
    return value


def name(value: Any, *, field: str = "name") -> str:
    if not isinstance(value, str) or not value.strip():
        raise BadRequest(f"{field} is required")
    if any(ord(c) < 32 for c in value):
        raise BadRequest(f"{field} must not contain control characters")
    clean = " ".join(value.split())
    if len(clean) > MAX_NAME:
        raise BadRequest(f"{field} must have at most {MAX_NAME} characters")
    return clean
