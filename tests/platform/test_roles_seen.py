"""`gateway/services.RolesSeen`: the process's hint of each caller's role, bounded."""

from __future__ import annotations

from gateway.services import RolesSeen


def test_the_last_role_read_is_the_one_seen() -> None:
    seen = RolesSeen(10)
    seen.saw("org-1", "usr-1", "member")
    seen.saw("org-1", "usr-1", "admin")
    assert seen.get("org-1", "usr-1") == "admin"
    assert seen.get("org-1", "usr-2") is None
    assert seen.get("org-2", "usr-1") is None


def test_no_membership_forgets_the_role() -> None:
    seen = RolesSeen(10)
    seen.saw("org-1", "usr-1", "owner")
    seen.saw("org-1", "usr-1", None)
    assert seen.get("org-1", "usr-1") is None


def test_the_least_recently_seen_go_first_past_the_bound() -> None:
    seen = RolesSeen(2)
    seen.saw("org-1", "usr-1", "owner")
    seen.saw("org-1", "usr-2", "member")
    seen.saw("org-1", "usr-1", "owner")  # seen again: now the most recent
    seen.saw("org-1", "usr-3", "admin")
    assert [seen.get("org-1", u) for u in ("usr-1", "usr-2", "usr-3")] == ["owner", None, "admin"]


def test_a_bound_of_zero_keeps_nothing() -> None:
    seen = RolesSeen(0)
    seen.saw("org-1", "usr-1", "owner")
    assert seen.get("org-1", "usr-1") is None
