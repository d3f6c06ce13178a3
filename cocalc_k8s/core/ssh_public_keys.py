"""SSH public keys as users paste them: one OpenSSH line, ``<algorithm> <base64> [comment]``,
checked and reduced to what the hub stores (no I/O).

Accepted: ed25519, ECDSA (P-256, P-384, P-521), their FIDO security-key variants, and RSA
of at least `MIN_RSA_BITS` bits. Anything else (DSA, short RSA, certificates, PEM blocks,
``authorized_keys`` options such as ``command=``) is refused with a message saying why.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncssh
from cryptography.hazmat.primitives.asymmetric import rsa

from cocalc_k8s.core.errors import BadRequest

MIN_RSA_BITS = 2048
MAX_KEY_CHARS = 16_384  # an RSA 16384-bit key is about 2.8 KB; room for a long comment
ALGORITHMS = (
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
    "ssh-rsa",
)


@dataclass(frozen=True, slots=True)
class PublicKey:
    algorithm: str
    openssh: str
    """``<algorithm> <base64>`` (the comment dropped: it is the key's name's business)."""
    fingerprint: str
    """``SHA256:…``, as ``ssh-keygen -lf`` prints it."""
    comment: str


def parse_public_key(text: Any) -> PublicKey:
    """The key in `text`, or BadRequest naming what is wrong with it."""
    if not isinstance(text, str) or not text.strip():
        raise BadRequest("public_key is required (one line in OpenSSH format)")
    if len(text) > MAX_KEY_CHARS:
        raise BadRequest(f"public_key must have at most {MAX_KEY_CHARS} characters")
    line = text.strip()
    if "\n" in line or "\r" in line or "\x00" in line:
        raise BadRequest("public_key must be one line in OpenSSH format")
    parts = line.split(None, 2)
    if parts[0] not in ALGORITHMS:
        raise BadRequest(
            "public_key must start with one of " + ", ".join(ALGORITHMS) + " (OpenSSH format)"
        )
    if len(parts) < 2:
        raise BadRequest("public_key has no key data after its algorithm")
    try:
        key = asyncssh.import_public_key(f"{parts[0]} {parts[1]}")
    except (asyncssh.KeyImportError, ValueError):
        raise BadRequest("public_key is not a valid OpenSSH public key") from None
    algorithm = key.algorithm.decode()
    if algorithm != parts[0]:
        raise BadRequest("public_key's data does not match its algorithm")
    if algorithm == "ssh-rsa":
        pyca = key.pyca_key
        bits = pyca.key_size if isinstance(pyca, rsa.RSAPublicKey) else 0
        if bits < MIN_RSA_BITS:
            raise BadRequest(f"RSA keys must have at least {MIN_RSA_BITS} bits (this one: {bits})")
    return PublicKey(
        algorithm=algorithm,
        openssh=f"{parts[0]} {parts[1]}",
        fingerprint=key.get_fingerprint("sha256"),
        comment=parts[2].strip() if len(parts) > 2 else "",
    )
