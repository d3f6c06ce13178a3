"""HTTPS: a self-signed certificate kept in the data directory, or the admin's own files."""

from __future__ import annotations

import ipaddress
import ssl
from pathlib import Path

import pytest
from cryptography import x509

from cocalc_k8s.core.settings import Settings, SettingsError
from cocalc_k8s.tls import ensure_self_signed, self_signed_paths, server_ssl_context
from tests.conftest import unique_email
from tests.test_cli import (
    Api,
    Hub,
    assert_clean_error,
    free_port,
    fresh_database,  # noqa: F401 - a fixture
    hub_env,
    hubs,  # noqa: F401 - a fixture
    run_cli,
    start,
)


def client_context(ca: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca))


def san_ips(cert_path: Path) -> list[str]:
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return [str(ip) for ip in names.get_values_for_type(x509.IPAddress)]


def test_self_signed_certificate_is_made_once_and_serves_https(
    tmp_path: Path,
    fresh_database: str,  # noqa: F811
    hubs: list[Hub],  # noqa: F811
) -> None:
    env = hub_env(DATABASE_URL=fresh_database)
    args = ("--data-dir", str(tmp_path), "--port", str(free_port()), "--tls", "self-signed")
    cert_path, key_path = self_signed_paths(tmp_path)

    hub = Hub(*args, env=env)
    hubs.append(hub)
    url = hub.wait_url()
    assert url.startswith("https://127.0.0.1:")
    first = cert_path.read_bytes()
    assert "127.0.0.1" in san_ips(cert_path)
    assert key_path.stat().st_mode & 0o077 == 0
    api = Api(url, client_context(cert_path))  # verifies the chain and the name
    api.wait_ready()
    headers = api.sign_up(unique_email())
    assert "secure" in headers["Set-Cookie"].lower()
    assert hub.stop() == 0

    hub, api = start(*args, env=env, context=client_context(cert_path))
    hubs.append(hub)
    assert cert_path.read_bytes() == first
    assert api.request("GET", "/healthz")[0] == 200
    assert hub.stop() == 0


def test_certificate_files_serve_https(
    tmp_path: Path,
    fresh_database: str,  # noqa: F811
    hubs: list[Hub],  # noqa: F811
) -> None:
    cert, key = ensure_self_signed(tmp_path / "elsewhere", ["localhost"])
    env = hub_env(DATABASE_URL=fresh_database, COCALC_DATA_DIR=str(tmp_path / "data"))
    args = ("--port", str(free_port()), "--tls-cert", str(cert), "--tls-key", str(key))
    hub = Hub(*args, env=env)
    hubs.append(hub)
    url = hub.wait_url()
    assert url.startswith("https://")
    api = Api(url, client_context(cert))
    api.wait_ready()
    assert api.request("GET", "/healthz")[0] == 200
    assert not self_signed_paths(tmp_path / "data")[0].exists()
    assert hub.stop() == 0


@pytest.mark.parametrize("problem", ["missing", "garbage", "wrong-key"])
def test_unusable_certificate_files_exit_2(tmp_path: Path, problem: str) -> None:
    cert, key = ensure_self_signed(tmp_path / "a", ["localhost"])
    if problem == "missing":
        cert = tmp_path / "nowhere.crt"
        words = f"cannot read --tls-cert {cert}: No such file or directory"
    elif problem == "garbage":
        cert.write_text("not a certificate\n")
        words = "is not a PEM certificate"
    else:
        key = ensure_self_signed(tmp_path / "b", ["localhost"])[1]
        words = "cannot use the TLS certificate"
    args = ("--data-dir", str(tmp_path), "--tls-cert", str(cert), "--tls-key", str(key))
    result = run_cli("serve", "--port", str(free_port()), *args)
    assert_clean_error(result, 2, words)
    assert not (tmp_path / "postgres").exists()  # checked before the database starts


def test_self_signed_names_include_the_public_host(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        tls="self-signed",
        host="0.0.0.0",
        base_url="https://10.1.2.3:8443",
        content_url="https://10.1.2.3:8444",
    )
    assert server_ssl_context(settings) is not None
    ips = san_ips(self_signed_paths(tmp_path)[0])
    assert {"10.1.2.3", "127.0.0.1", "::1"} <= set(ips)
    assert "0.0.0.0" not in ips
    assert all(ipaddress.ip_address(ip) for ip in ips)


def test_an_expiring_self_signed_certificate_is_replaced(tmp_path: Path) -> None:
    cert_path, _ = ensure_self_signed(tmp_path, ["localhost"])
    first = cert_path.read_bytes()
    assert ensure_self_signed(tmp_path, ["localhost"])[0].read_bytes() == first
    cert_path.write_text("truncated")
    assert ensure_self_signed(tmp_path, ["localhost"])[0].read_bytes() != first


def test_tls_cert_without_key_is_a_settings_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="must be given together"):
        Settings(data_dir=tmp_path, tls_cert=tmp_path / "x.crt")


def test_plain_http_port_redirects_to_https(
    tmp_path: Path,
    fresh_database: str,  # noqa: F811
    hubs: list[Hub],  # noqa: F811
) -> None:
    import http.client

    redirect_port = free_port()
    env = hub_env(DATABASE_URL=fresh_database)
    args = (
        "--data-dir", str(tmp_path), "--port", str(free_port()), "--tls", "self-signed",
        "--redirect-port", str(redirect_port),
    )  # fmt: skip
    hub = Hub(*args, env=env)
    hubs.append(hub)
    api = Api(hub.wait_url(), client_context(self_signed_paths(tmp_path)[0]))
    api.wait_ready()
    conn = http.client.HTTPConnection("127.0.0.1", redirect_port, timeout=5)
    conn.request("GET", "/projects?x=1")
    response = conn.getresponse()
    assert response.status == 301
    assert response.getheader("Location") == api.base + "/projects?x=1"
    conn.close()
    assert hub.stop() == 0
