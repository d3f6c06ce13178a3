"""TLS for the hub: a given certificate and key, or a self-signed pair made once and kept."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import socket
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from cocalc_k8s.core.settings import Settings, SettingsError

SELF_SIGNED_DAYS = 825


def self_signed_paths(data_dir: Path) -> tuple[Path, Path]:
    return data_dir / "tls" / "self-signed.crt", data_dir / "tls" / "self-signed.key"


def ensure_self_signed(data_dir: Path, hostnames: list[str]) -> tuple[Path, Path]:
    """Create the certificate on first use; later starts reuse it (browsers keep trusting)."""
    cert_path, key_path = self_signed_paths(data_dir)
    if cert_path.exists() and key_path.exists():
        return cert_path, key_path
    cert_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for host in dict.fromkeys(["localhost", *hostnames]):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    for ip in ("127.0.0.1", "::1"):
        if x509.IPAddress(ipaddress.ip_address(ip)) not in names:
            names.append(x509.IPAddress(ipaddress.ip_address(ip)))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0] or "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=SELF_SIGNED_DAYS))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_bytes = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key_bytes)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def server_ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """None for plain HTTP; otherwise a TLS 1.2+ context, or SettingsError saying why not."""
    if settings.tls == "off":
        return None
    if settings.tls == "self-signed":
        hosts = [h for h in (settings.host, socket.gethostname()) if h not in ("0.0.0.0", "::")]  # noqa: S104
        cert, key = ensure_self_signed(settings.data_dir, hosts)
    else:
        assert settings.tls_cert is not None and settings.tls_key is not None
        cert, key = settings.tls_cert, settings.tls_key
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise SettingsError(
            f"cannot load the TLS certificate {cert} and key {key}: {exc}"
        ) from None
    return context
