"""`tether keys create|list|revoke`: API keys, each for one tenant and one role; the secret is shown once."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from tether.cli._common import ConfigOpt, JsonOpt, _emit_json, err, keys_app, out


@keys_app.command("create")
def create(
    tenant: Annotated[str, typer.Option("--tenant", help="the tenant (of tenants: in tether.yaml) the key reads as")],
    role: Annotated[str, typer.Option("--role", help="the policy role requests with this key have")] = "user",
    name: Annotated[str, typer.Option("--name", help="a label to find the key by (no spaces)")] = "key",
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a key and print it once: it is stored only as a digest and cannot be shown again."""
    from tether.config import load_settings
    from tether.service._keys import check_tenant, open_key_store

    settings = load_settings(config)
    check_tenant(settings, tenant)
    store = open_key_store(settings)
    try:
        token, key = store.create(name, tenant, role)
    finally:
        store.close()
    if as_json:
        _emit_json({"key": token, **key.model_dump(mode="json")})
        return
    out.print(token, highlight=False, soft_wrap=True)
    err.print(
        f"key {key.id} ({escape(key.name)}) for tenant {escape(tenant)}, role {escape(role)}: keep it now, it is not "
        "shown again"
    )


@keys_app.command("list")
def list_keys(
    tenant: Annotated[str | None, typer.Option("--tenant", help="only this tenant's keys")] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Every key: id, name, tenant, role, created, last used, revoked (never a secret)."""
    from tether.config import load_settings
    from tether.service._keys import open_key_store

    store = open_key_store(load_settings(config))
    try:
        keys = store.list(tenant=tenant)
    finally:
        store.close()
    if as_json:
        _emit_json([k.model_dump(mode="json") for k in keys])
        return
    if not keys:
        out.print("no API keys (`tether keys create --tenant T`)")
    for k in keys:
        state = f"revoked {k.revoked:%Y-%m-%d}" if k.revoked else "active"
        used = f"{k.last_used:%Y-%m-%d %H:%M}" if k.last_used else "never used"
        out.print(
            f"{k.id}  {escape(k.name):<16} tenant {escape(k.tenant):<12} role {escape(k.role):<10} "
            f"created {k.created:%Y-%m-%d}  {used}  {state}"
        )


@keys_app.command("revoke")
def revoke(
    key_id: Annotated[str, typer.Argument(help="the key's id (`tether keys list`)")],
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Revoke a key: requests with it are refused from now on (the record stays, for the audit)."""
    from tether.config import load_settings
    from tether.service._keys import open_key_store

    store = open_key_store(load_settings(config))
    try:
        key = store.revoke(key_id)
    finally:
        store.close()
    if as_json:
        _emit_json(key.model_dump(mode="json"))
        return
    out.print(f"revoked {key.id} ({escape(key.name)}, tenant {escape(key.tenant)})")
