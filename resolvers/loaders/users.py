"""Users' loaders: by id, as ORM rows (writers) or read-only rows (readers)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlmodel import col

from gateway.db.models import User
from resolvers.batching import BatchLoader
from resolvers.keyset import plain_row_type
from resolvers.loaders.shapes import PlainRowByKey, RowByKey

if TYPE_CHECKING:
    from resolvers.loaders import Loaders

user_by_id = RowByKey(User, col(User.id))
_USER_ROW_BY_ID = PlainRowByKey(User, col(User.id))


def user_row_by_id(loaders: Loaders) -> BatchLoader[str, User | None]:
    """Read-only rows, for users that are only shown (Member.user, Usage.user, …).

    The caller's own row comes with it, as authentication read it (`Principal.user_row`),
    unless the request has written since: then, as for any row, what the database holds
    when it is first asked for."""
    loader = _USER_ROW_BY_ID(loaders)
    principal = loaders.context.principal
    if (
        principal is not None
        and principal.user_id is not None
        and principal.user_row is not None
        and not loaders.db.wrote
    ):
        loader.prime(principal.user_id, plain_row_type(User)._make(principal.user_row))
    return loader
