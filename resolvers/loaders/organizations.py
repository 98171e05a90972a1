"""Organizations' loaders: live (not deleted) organizations by id."""

from __future__ import annotations

from sqlmodel import col

from gateway.db.models import Organization
from resolvers.loaders.shapes import PlainRowByKey, RowByKey

LIVE_ORGANIZATION = (col(Organization.deleted_at).is_(None),)

organization_by_id = RowByKey(Organization, col(Organization.id), LIVE_ORGANIZATION)
# Read-only rows, for reads (writers: `organization_by_id`).
organization_row_by_id = PlainRowByKey(Organization, col(Organization.id), LIVE_ORGANIZATION)
