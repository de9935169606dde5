"""``dallmi keys create/list/revoke`` and the bind policy of ``dallmi serve`` (real processes, SQLite)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from app.auth.cli import BindRefused, bind_policy, is_loopback, keys_app
from app.config import Settings, get_settings

from .helpers import REPO, make_client, wait_for


def cli_env(home: Path) -> dict[str, str]:
    """An embedded-mode environment in ``home`` with ``DALLMI_AUTH`` unset."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DALLMI_")}
    return {
        **env,
        "DALLMI_DATABASE_URL": f"sqlite:///{home}/dallmi.db",
        "DALLMI_BROKER_URL": "filesystem://",
        "DALLMI_ARTIFACTS_DIR": str(home / "artifacts"),
        "HF_HUB_OFFLINE": "1",
        "PYTHONWARNINGS": "ignore",
    }


def dallmi(home: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``dallmi ARGS`` to the end."""
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args], cwd=REPO, env=cli_env(home), capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.1", "localhost", "::1", "[::1]"])
def test_loopback_addresses(host):
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.5", "example.com", "127.0.0.1.example.com"])
def test_other_addresses(host):
    assert not is_loopback(host)


def test_the_bind_policy():
    unset, required, disabled = Settings(), Settings(auth="required"), Settings(auth="disabled")
    assert bind_policy("127.0.0.1", unset, usable_keys=0) == "disabled"  # the embedded default runs open
    assert bind_policy("127.0.0.1", unset, usable_keys=1) == "required"  # once a key exists, keys are used
    assert bind_policy("127.0.0.1", required, usable_keys=0) == "required"
    assert bind_policy("127.0.0.1", disabled, usable_keys=3) == "disabled"
    assert bind_policy("0.0.0.0", unset, usable_keys=1) == "required"
    for settings in (unset, required):
        with pytest.raises(BindRefused, match="dallmi keys create"):
            bind_policy("0.0.0.0", settings, usable_keys=0)
    with pytest.raises(BindRefused, match="loopback"):
        bind_policy("10.1.2.3", disabled, usable_keys=2)


def test_serve_on_a_public_address_without_keys_refuses_to_start(tmp_path):
    result = dallmi(tmp_path, "serve", "--host", "0.0.0.0", "--port", str(free_port()), "--no-with-worker")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "refusing to serve on 0.0.0.0 without an API key" in result.stderr
    assert "dallmi keys create" in result.stderr


@pytest.fixture
def keys_cli(tmp_path, monkeypatch):
    """Run ``dallmi keys ...`` in this process against an SQLite database in ``tmp_path``."""
    for name, value in cli_env(tmp_path).items():
        if name.startswith("DALLMI_"):
            monkeypatch.setenv(name, value)
    monkeypatch.delenv("DALLMI_AUTH", raising=False)
    get_settings.cache_clear()
    runner = CliRunner()
    yield lambda *args: runner.invoke(keys_app, list(args))
    get_settings.cache_clear()


def test_keys_create_list_revoke(tmp_path, keys_cli):
    created = keys_cli("create", "--name", "ci", "--scope", "predict", "--scope", "train")
    assert created.exit_code == 0, created.output
    key = created.stdout.strip()
    prefix = key.split("_")[1]
    assert key.startswith("dallmi_") and "not shown again" in created.stderr
    listed = keys_cli("list")
    assert listed.exit_code == 0 and listed.stdout.split("\t")[:4] == [prefix, "ci", "predict,train", "active"]
    assert key.split("_", 2)[2] not in listed.stdout + (tmp_path / "dallmi.db").read_bytes().decode("latin-1")

    settings = Settings(database_url=f"sqlite:///{tmp_path}/dallmi.db", artifacts_dir=tmp_path / "artifacts")
    with make_client(settings) as client:
        assert client.get("/corpora", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    assert keys_cli("revoke", prefix).exit_code == 0
    assert "\trevoked\t" in keys_cli("list").stdout
    with make_client(settings) as client:
        assert client.get("/corpora", headers={"Authorization": f"Bearer {key}"}).status_code == 401

    bad = keys_cli("create", "--name", "x", "--scope", "root")
    assert bad.exit_code == 2 and "scopes must be" in bad.stderr
    assert keys_cli("revoke", "ffffffffffff").exit_code == 2


def serve_and_get(home: Path, key: str | None = None) -> tuple[list[int], str]:
    """Start ``dallmi serve`` on 127.0.0.1 without a worker, GET /corpora without (and with) ``key``, stop it:
    (statuses, server log)."""
    port, log = free_port(), home / f"serve-{free_port()}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--no-with-worker"],
            cwd=REPO, env=cli_env(home), stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"

        def up() -> bool:
            assert proc.poll() is None, log.read_text()
            try:
                return httpx.get(f"{url}/health", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(up, timeout=120, what="dallmi serve", interval=0.3)
        headers = [{}, *([{"Authorization": f"Bearer {key}"}] if key else [])]
        return [httpx.get(f"{url}/corpora", headers=h, timeout=10).status_code for h in headers], log.read_text()
    finally:
        proc.terminate()
        proc.wait(timeout=60)


@pytest.mark.slow
def test_serve_on_loopback_runs_open_until_a_key_exists_and_says_so(tmp_path):
    statuses, log = serve_and_get(tmp_path)
    assert statuses == [200] and "authentication disabled" in log
    key = dallmi(tmp_path, "keys", "create", "--name", "admin", "--scope", "admin").stdout.strip()
    statuses, log = serve_and_get(tmp_path, key)
    assert statuses == [401, 200] and "authentication required: 1 usable API key" in log
