"""API keys' loaders: by id, and a user's or an organization's live keys (pages and counts)."""

from __future__ import annotations

from sqlmodel import col

from gateway.db.models import ApiKey
from resolvers.loaders.shapes import CountByKey, PageByParent, RowByKey

_LIVE = (col(ApiKey.revoked_at).is_(None),)

api_key_by_id = RowByKey(ApiKey, col(ApiKey.id))
# Read-only rows (`plain`): listed keys are shown, never modified here.
api_key_pages_by_user_id = PageByParent(
    ApiKey, col(ApiKey.user_id), newest_first=True, where=_LIVE, plain=True
)
api_key_count_by_user_id = CountByKey(ApiKey, col(ApiKey.user_id), _LIVE)
api_key_pages_by_organization_id = PageByParent(
    ApiKey, col(ApiKey.organization_id), newest_first=True, where=_LIVE, plain=True
)
api_key_count_by_organization_id = CountByKey(ApiKey, col(ApiKey.organization_id), _LIVE)
