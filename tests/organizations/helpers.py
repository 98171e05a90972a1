"""Helpers of the organization tests (no tests here): a team of three roles."""

from __future__ import annotations

from tests.conftest import Client, Env


async def team(env: Env) -> tuple[str, Client, Client, Client]:
    """An organization with an owner, an admin and a member."""
    owner = await env.user("owner@example.com", "Owner")
    admin = await env.user("admin@example.com", "Admin")
    member = await env.user("member@example.com", "Member")
    org_id = await env.organization(owner)
    await env.add_member(org_id, admin, "admin")
    await env.add_member(org_id, member, "member")
    return org_id, owner, admin, member
