"""API keys, attacked: the secret is never stored, and every wrong, revoked or malformed key gets the same None."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tether.errors import RequestError
from tether.service import KeyStore


def test_a_key_authenticates_to_its_tenant_and_role_and_its_secret_is_not_stored(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys.db")
    token, key = store.create("ci-bot", "acme", "clerk")
    assert token.startswith("tth_") and key.active
    got = store.authenticate(token)
    assert got is not None and (got.tenant, got.role, got.id) == ("acme", "clerk", key.id) and got.last_used
    secret = _secret(token)
    store.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert secret.encode() not in raw and token.encode() not in raw
    assert stat.S_IMODE((tmp_path / "keys.db").stat().st_mode) == 0o600


def _secret(token: str) -> str:
    """The secret part of ``tth_<16 hex>_<secret>``; the secret itself may contain ``_``."""
    return token[len("tth_") + 17 :]


@pytest.mark.parametrize(
    "forge",
    [
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # one character of the secret changed
        lambda t: t.replace("tth_", "TTH_"),
        lambda t: t + " ",
        lambda t: " " + t,
        lambda t: "tth_" + "0" * 16 + "_" + _secret(t),  # another id, the same secret
        lambda t: "",
        lambda t: "tth_",
        lambda t: t + "\x00",
        lambda t: t.replace("_", "\uff3f"),  # fullwidth low line
        lambda t: t * 50,
        lambda t: None,
        lambda t: 12345,
        lambda t: t.encode(),
    ],
)
def test_forged_and_malformed_keys_are_refused_without_an_error(tmp_path: Path, forge: object) -> None:
    store = KeyStore(tmp_path / "keys.db")
    token, _ = store.create("ci-bot", "acme", "user")
    assert store.authenticate(forge(token)) is None  # type: ignore[operator]


def test_a_revoked_key_stops_working_and_stays_listed(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys.db")
    token, key = store.create("laptop", "acme", "user")
    other, _ = store.create("server", "globex", "user")
    revoked = store.revoke(key.id)
    assert revoked.revoked is not None and store.authenticate(token) is None
    assert store.authenticate(other) is not None  # only that key
    assert store.revoke(key.id).revoked == revoked.revoked  # revoking again keeps the first time
    assert [k.name for k in store.list()] == ["laptop", "server"] and [k.name for k in store.list(tenant="globex")] == [
        "server"
    ]
    with pytest.raises(RequestError, match="no API key with id 'nope'"):
        store.revoke("nope")


def test_names_tenants_and_roles_must_be_canonical(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys.db")
    for bad in ("", "ac\u200bme", "acme ", "\uff41cme"):
        with pytest.raises(RequestError):
            store.create("k", bad, "user")


def test_keys_are_unique_under_concurrent_creation(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys.db")
    tokens: list[str] = []

    def make() -> None:
        for _ in range(20):
            tokens.append(store.create("k", "acme", "user")[0])

    threads = [threading.Thread(target=make) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(set(tokens)) == 80 and len(store.list()) == 80
    assert all(store.authenticate(t) is not None for t in tokens)


def _tether(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tether", *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def test_the_cli_shows_a_key_once_and_refuses_unknown_tenants(tmp_path: Path) -> None:
    (tmp_path / "tether.yaml").write_text("tenants:\n  acme: {sources: ['acme/*']}\n", encoding="utf-8")
    made = _tether(tmp_path, "keys", "create", "--tenant", "acme", "--role", "clerk", "--name", "ci-bot")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert token.startswith("tth_") and "not shown again" in made.stderr
    listed = _tether(tmp_path, "keys", "list", "--json")
    keys = json.loads(listed.stdout)
    assert [k["name"] for k in keys] == ["ci-bot"] and _secret(token) not in listed.stdout
    gone = _tether(tmp_path, "keys", "revoke", keys[0]["id"])
    assert gone.returncode == 0 and "revoked" in gone.stdout
    bad = _tether(tmp_path, "keys", "create", "--tenant", "initech")
    assert bad.returncode != 0 and "unknown tenant 'initech'" in bad.stderr and "Traceback" not in bad.stderr
    (tmp_path / "tether.yaml").write_text("{}\n", encoding="utf-8")
    none = _tether(tmp_path, "keys", "create", "--tenant", "acme")
    assert none.returncode != 0 and "no tenants are configured" in none.stderr
