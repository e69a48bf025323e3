"""``pausepoint keys``: API keys, managed in the database directly (no server needed)."""

from __future__ import annotations

import argparse

from rich.table import Table

from pausepoint.cli.render import console
from pausepoint.cli.target import Target


async def cmd_keys(target: Target, args: argparse.Namespace) -> int:
    engine = target.engine
    assert engine is not None  # keys are never managed over --url
    if args.keys_command == "create":
        key, record = await engine.as_org(args.org).create_api_key(
            args.role, args.name, user=args.user, groups=args.groups
        )
        acts_as = f", user {record.user}" if record.user else ""
        if record.groups:
            acts_as += f", groups {', '.join(record.groups)}"
        console.print(
            f"key {record.id} ({record.role}, org {record.org_id}{acts_as}) — shown once:"
        )
        console.print(key, markup=False, soft_wrap=True)
        return 0
    if args.keys_command == "list":
        from pausepoint.engine.state import iso

        table = Table("id", "org", "role", "name", "user", "groups", "created", "revoked")
        for record in await engine.api_keys_of(args.org):
            table.add_row(
                record.id,
                record.org_id,
                record.role,
                record.name,
                record.user or "",
                ", ".join(record.groups),
                iso(record.created_at),
                iso(record.revoked_at) if record.revoked_at else "",
            )
        console.print(table)
        return 0
    await engine.revoke_key_of_any_org(args.key_id)
    console.print(f"revoked key {args.key_id}")
    return 0
