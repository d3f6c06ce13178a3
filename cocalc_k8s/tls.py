"""TLS for the hub: a given certificate and key, or a self-signed pair made once and kept."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import socket
import ssl
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from cocalc_k8s.core.settings import Settings, SettingsError

SELF_SIGNED_DAYS = 825
RENEW_BEFORE = dt.timedelta(days=30)


def self_signed_paths(data_dir: Path) -> tuple[Path, Path]:
    return data_dir / "tls" / "self-signed.crt", data_dir / "tls" / "self-signed.key"


def ensure_self_signed(data_dir: Path, hostnames: list[str]) -> tuple[Path, Path]:
    """Create the certificate on first use; later starts reuse it (browsers keep trusting
    it) until it is about to expire."""
    cert_path, key_path = self_signed_paths(data_dir)
    if key_path.exists() and _still_valid(cert_path):
        return cert_path, key_path
    cert_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    hostnames = [h for h in hostnames if h] or ["localhost"]
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
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0][:64])])
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
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False
        )
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


def _still_valid(cert_path: Path) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except (OSError, ValueError):
        return False
    return cert.not_valid_after_utc > dt.datetime.now(dt.UTC) + RENEW_BEFORE


def self_signed_hostnames(settings: Settings) -> list[str]:
    """The names the certificate is for: the listening host, this machine, the public URL."""
    names = [settings.host, socket.gethostname()]
    if settings.base_url:
        names.append(urlsplit(settings.base_url).hostname or "")
    return [h for h in names if h and h not in ("0.0.0.0", "::")]  # noqa: S104


def server_ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """None for plain HTTP; otherwise a TLS 1.2+ context, or SettingsError saying why not."""
    if settings.tls == "off":
        return None
    if settings.tls == "self-signed":
        cert, key = ensure_self_signed(settings.data_dir, self_signed_hostnames(settings))
    else:
        assert settings.tls_cert is not None and settings.tls_key is not None
        cert, key = settings.tls_cert, settings.tls_key
    _check_pem_files(cert, key)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except ssl.SSLError as exc:  # e.g. a key that does not belong to the certificate
        raise SettingsError(
            f"cannot use the TLS certificate {cert} with the key {key}: {exc.reason or exc}"
        ) from None
    return context


def _check_pem_files(cert: Path, key: Path) -> None:
    """Turn the usual mistakes (missing file, wrong file, garbage) into one clear line."""
    try:
        x509.load_pem_x509_certificates(_read(cert, "--tls-cert"))
    except ValueError:
        raise SettingsError(f"--tls-cert {cert} is not a PEM certificate") from None
    try:
        serialization.load_pem_private_key(_read(key, "--tls-key"), password=None)
    except (ValueError, TypeError):  # TypeError: the key is encrypted
        raise SettingsError(f"--tls-key {key} is not an unencrypted PEM private key") from None


def _read(path: Path, flag: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise SettingsError(f"cannot read {flag} {path}: {exc.strerror}") from None
