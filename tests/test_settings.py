"""Settings: the documentation and `--help` cover every setting; parsing and precedence."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cocalc_k8s.cli import build_parser
from cocalc_k8s.core.settings import Settings, SettingsError, load_settings, setting_fields

DOCS = Path(__file__).resolve().parent.parent / "docs" / "settings.md"
FIELDS = setting_fields()
IDS = [f.name for f in FIELDS]


def squeezed(text: str) -> str:
    """Text without whitespace: line wrapping (argparse's or an editor's) does not matter."""
    return "".join(text.split())


@pytest.fixture(scope="module")
def docs() -> str:
    return DOCS.read_text()


@pytest.fixture(scope="module")
def serve_help() -> str:
    result = subprocess.run(
        [sys.executable, "-m", "cocalc_k8s", "serve", "--help"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return result.stdout


@pytest.mark.parametrize("f", FIELDS, ids=IDS)
def test_docs_describe_every_setting(docs: str, f: dataclasses.Field[Any]) -> None:
    section = docs.split(f"\n### {f.name.replace('_', '-')}\n", 1)
    assert len(section) == 2, f"docs/settings.md has no section for {f.name}"
    body = section[1].split("\n### ", 1)[0]
    assert f"`{f.metadata['flag']}" in body
    assert f"`{f.metadata['env']}`" in body
    assert "Default:" in body
    assert squeezed(f.metadata["help"]) in squeezed(body), "help text differs from the code"


def test_docs_mention_database_url(docs: str) -> None:
    assert "`DATABASE_URL`" in docs


@pytest.mark.parametrize("f", FIELDS, ids=IDS)
def test_serve_help_lists_every_setting(serve_help: str, f: dataclasses.Field[Any]) -> None:
    assert f.metadata["flag"] in serve_help
    assert f.metadata["env"] in serve_help
    assert squeezed(f.metadata["help"]) in squeezed(serve_help)


def test_every_field_has_help_env_and_flag() -> None:
    envs = [f.metadata["env"] for f in FIELDS]
    flags = [f.metadata["flag"] for f in FIELDS]
    assert len(set(envs)) == len(envs) and len(set(flags)) == len(flags)
    for f in FIELDS:
        assert f.metadata["env"] == "COCALC_" + f.name.upper()
        assert f.metadata["flag"] == "--" + f.name.replace("_", "-")
        assert len(f.metadata["help"]) > 10


def flags(*argv: str) -> dict[str, Any]:
    """The overrides `cocalc-k8s serve ARGV` passes to load_settings."""
    args = build_parser().parse_args(["serve", *argv])
    return {f.name: getattr(args, f.name) for f in FIELDS}


def test_default_when_neither_flag_nor_env(tmp_path: Path) -> None:
    settings = load_settings({"COCALC_DATA_DIR": str(tmp_path)}, flags())
    assert settings.port == 8080
    assert settings.allow_sign_up is True
    assert settings.public_url == "http://127.0.0.1:8080"


def test_env_beats_default_and_flag_beats_env(tmp_path: Path) -> None:
    env = {"COCALC_DATA_DIR": str(tmp_path), "COCALC_PORT": "9000", "COCALC_HOST": "0.0.0.0"}
    assert load_settings(env, flags()).port == 9000
    settings = load_settings(env, flags("--port", "9001"))
    assert settings.port == 9001
    assert settings.host == "0.0.0.0"  # the environment still fills what no flag set


def test_bool_flag_beats_env(tmp_path: Path) -> None:
    env = {"COCALC_DATA_DIR": str(tmp_path), "COCALC_ALLOW_SIGN_UP": "no"}
    assert load_settings(env, flags()).allow_sign_up is False
    assert load_settings(env, flags("--allow-sign-up")).allow_sign_up is True
    env["COCALC_ALLOW_SIGN_UP"] = "yes"
    assert load_settings(env, flags("--no-allow-sign-up")).allow_sign_up is False


def test_cocalc_database_url_beats_database_url(tmp_path: Path) -> None:
    env = {"COCALC_DATA_DIR": str(tmp_path), "DATABASE_URL": "postgresql://a@h/one"}
    assert load_settings(env).database_url == "postgresql://a@h/one"
    env["COCALC_DATABASE_URL"] = "postgresql://a@h/two"
    assert load_settings(env).database_url == "postgresql://a@h/two"
    assert load_settings(env, {"database_url": "postgresql://a@h/three"}).database_url == (
        "postgresql://a@h/three"
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        *[(raw, True) for raw in ("1", "TRUE", "yes", "on")],
        *[(raw, False) for raw in ("0", "false", "No", "off", "")],
    ],
)
def test_bool_parsing(tmp_path: Path, raw: str, expected: bool) -> None:
    env = {"COCALC_DATA_DIR": str(tmp_path), "COCALC_FIRST_ACCOUNT_ADMIN": raw}
    assert load_settings(env).first_account_admin is expected


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"COCALC_FIRST_ACCOUNT_ADMIN": "maybe"}, "--first-account-admin must be true or false"),
        ({"COCALC_PORT": "abc"}, "--port must be a number, not 'abc'"),
        ({"COCALC_PORT": "8080.5"}, "--port must be a number"),
        ({"COCALC_PORT": "70000"}, "--port must be between 1 and 65535"),
        ({"COCALC_SESSION_DAYS": "0"}, "--session-days must be at least 1"),
        ({"COCALC_LOG_FORMAT": "xml"}, "--log-format must be one of text, json"),
        ({"COCALC_DATABASE_URL": "mysql://x@y/z"}, "--database-url must be a postgresql://"),
        ({"COCALC_BASE_URL": "https://h/sub"}, "--base-url must not have a path"),
    ],
)
def test_invalid_values_name_the_setting(tmp_path: Path, env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings({"COCALC_DATA_DIR": str(tmp_path), **env})
    assert message in info.value.message


def test_bad_flag_value_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        flags("--port", "abc")
    assert info.value.code == 2
    assert "--port must be a number, not 'abc'" in capsys.readouterr().err


def test_empty_env_unsets_an_optional_setting(tmp_path: Path) -> None:
    env = {"COCALC_DATA_DIR": str(tmp_path), "COCALC_BASE_URL": "", "COCALC_TLS_CERT": ""}
    settings = load_settings(env)
    assert settings.base_url is None
    assert settings.tls_cert is None


def test_secrets_are_hidden_in_repr(tmp_path: Path) -> None:
    url = "postgresql://cocalc:s3cret-pa55@db.example.org:5432/cocalc"
    settings = Settings(data_dir=tmp_path, database_url=url)
    shown = repr(settings)
    assert "s3cret-pa55" not in shown
    assert "db.example.org" not in shown
    assert "database_url=<hidden>" in shown
    assert "port=8080" in shown
    assert settings.database_url == url
    assert "database_url=None" in repr(Settings(data_dir=tmp_path))


def test_data_dir_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings({"COCALC_DATA_DIR": "relative/data"})
    assert settings.data_dir == tmp_path / "relative" / "data"


def test_default_data_dir_follows_xdg(tmp_path: Path) -> None:
    (tmp_path / "cocalc-k8s").mkdir()  # as root, only an existing one (see test_isolation)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_DATA_HOME", str(tmp_path))
        assert load_settings({}).data_dir == tmp_path / "cocalc-k8s"


def test_tls_files_implied_by_cert_and_key(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, tls_cert=tmp_path / "c", tls_key=tmp_path / "k")
    assert settings.tls == "files"
    assert settings.public_url == "https://127.0.0.1:8080"


@pytest.mark.parametrize(
    "where",
    [
        {},
        {"host": "127.0.0.1"},
        {"host": "127.0.0.2"},
        {"host": "::1"},
        {"host": "localhost"},
        {"host": "127.0.0.1", "base_url": "http://localhost:8080"},
    ],
    ids=["default", "127.0.0.1", "127.0.0.2", "::1", "localhost", "base-url-localhost"],
)
def test_first_sign_up_admin_flags_on_a_loopback_hub(tmp_path: Path, where: dict[str, str]) -> None:
    for flag in ({"first_account_admin": True}, {"admin_email": "me@example.org"}):
        settings = Settings(data_dir=tmp_path, **where, **flag)  # type: ignore[arg-type]
        assert settings.local_only


@pytest.mark.parametrize(
    "where",
    [
        {"host": "0.0.0.0"},
        {"host": "::"},
        {"host": "10.1.2.3"},
        {"host": "cocalc.example.org"},
        {"host": "127.0.0.1", "base_url": "https://cocalc.example.org"},
    ],
    ids=["0.0.0.0", "::", "10.1.2.3", "name", "behind-a-proxy"],
)
def test_first_sign_up_admin_flags_refused_on_a_reachable_hub(
    tmp_path: Path, where: dict[str, str]
) -> None:
    for flag, name in (
        ({"first_account_admin": True}, "--first-account-admin"),
        ({"admin_email": "me@example.org"}, "--admin-email"),
    ):
        with pytest.raises(SettingsError) as info:
            Settings(data_dir=tmp_path, **where, **flag)  # type: ignore[arg-type]
        message = info.value.message
        assert message.startswith(name) and "whoever signs up first" in message
        assert "cocalc-k8s make-admin" in message
    content = {"content_url": "https://*.projects.example.org"}  # needed when reachable
    assert not Settings(data_dir=tmp_path, **where, **content).local_only  # type: ignore[arg-type]
