"""`gateway seed-demo`: a demo owner with an API key, an organization and two members."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from gateway.db.models import Account, AccountKind, Member, Organization, Role, User
from resolvers.api_keys import insert_api_key
from resolvers.users import create_user

DEMO_OWNER = "demo@example.com"
DEMO_MEMBERS = (
    ("ada@example.com", "Ada Lovelace", Role.ADMIN),
    ("alan@example.com", "Alan Turing", Role.MEMBER),
)


async def seed_demo(session: AsyncSession) -> str:
    """Create the demo data once; on later runs only issue a fresh key for the demo owner."""
    owner = (
        await session.execute(select(User).where(col(User.email) == DEMO_OWNER))
    ).scalar_one_or_none()
    created = owner is None
    if owner is None:
        owner = await create_user(session, email=DEMO_OWNER, display_name="Demo Owner")
        org = Organization(name="Demo Org")
        session.add(org)
        await session.flush()
        session.add(Account(kind=AccountKind.ORGANIZATION.value, organization_id=org.id))
        session.add(Member(organization_id=org.id, user_id=owner.id, role=Role.OWNER.value))
        for email, name, role in DEMO_MEMBERS:
            user = await create_user(session, email=email, display_name=name)
            session.add(Member(organization_id=org.id, user_id=user.id, role=role.value))
    _, token = await insert_api_key(session, user_id=owner.id, name="demo key")
    await session.commit()
    what = "created demo owner, 'Demo Org' and two members" if created else "demo data exists"
    return f"{what}\nuser:    {owner.id} ({DEMO_OWNER})\napi key: {token}   (shown once)"
