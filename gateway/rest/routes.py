"""The REST /api/v1 route table: every route of CONTRACT.md in one list (an account's billing routes
once for users and once for organizations)."""

from __future__ import annotations

from gateway.rest import api_keys, billing, invites, members, organizations, plans, usage, users
from gateway.rest.framework import Endpoint


def billing_routes(account: str, *, checkout: str | None = None) -> list[Endpoint]:
    """The routes of an account's money, for a user's personal account (`/users/{id}`) and an
    organization's (`/organizations/{orgId}`): one handler serves both (gateway/rest/billing.py)."""
    return [
        Endpoint(
            "GET", f"{account}/payments", billing.list_payments, "Succeeded payments, newest first"
        ),
        Endpoint(
            "GET",
            f"{account}/payments/provider/{{paymentId}}",
            billing.get_provider_payment,
            "The payment provider's view of a payment",
        ),
        Endpoint("GET", f"{account}/payments/{{paymentId}}", billing.get_payment, "One payment"),
        Endpoint(
            "GET",
            f"{account}/payments/{{paymentId}}/status",
            billing.get_payment_status,
            "A payment's status",
        ),
        Endpoint(
            "POST",
            checkout or f"{account}/credits/checkout",
            billing.start_checkout,
            "Start a credit checkout",
        ),
        Endpoint(
            "POST",
            f"{account}/credits/purchase",
            billing.purchase_credits,
            "Buy credits with the default payment method",
        ),
        Endpoint("GET", f"{account}/auto-top-up", billing.get_auto_top_up, "Auto top-up settings"),
        Endpoint(
            "PUT", f"{account}/auto-top-up", billing.put_auto_top_up, "Change auto top-up settings"
        ),
        Endpoint(
            "GET",
            f"{account}/payment-method/default",
            billing.get_default_payment_method,
            "The default payment method",
        ),
        Endpoint(
            "POST",
            f"{account}/payment-method/setup-session",
            billing.start_payment_method_setup,
            "Start saving a payment method",
        ),
        Endpoint("GET", f"{account}/promotions", billing.list_promotions, "Active promotions"),
        Endpoint(
            "POST",
            f"{account}/promotions/redeem",
            billing.redeem_promotion,
            "Redeem a promotion code",
        ),
    ]


ENDPOINTS: list[Endpoint] = [
    Endpoint("GET", "/users/me", users.get_me, "The caller's profile and organizations"),
    Endpoint("PATCH", "/users/me", users.update_me, "Update the caller's display name or photo"),
    Endpoint("DELETE", "/users/me", users.delete_me, "Delete the caller's account"),
    Endpoint("POST", "/users/me/accept-terms", users.accept_terms, "Accept the terms of service"),
    Endpoint(
        "GET",
        "/users/me/remote-config",
        organizations.get_user_remote_config,
        "Remote config distributed to the caller",
    ),
    Endpoint(
        "PUT",
        "/users/active-account",
        users.set_active_account,
        "Choose the account usage is billed to",
    ),
    Endpoint("GET", "/users/me/plan", plans.get_user_plan, "The caller's individual subscription"),
    Endpoint("GET", "/users/{id}/balance", billing.get_user_balance, "Personal credit balance"),
    Endpoint(
        "GET", "/users/{id}/usages", usage.list_user_usages, "Personal usage history, newest first"
    ),
    *billing_routes("/users/{id}", checkout="/users/credits/checkout"),
    Endpoint(
        "GET",
        "/organizations/{orgId}/balance",
        billing.get_organization_balance,
        "Organization credit balance",
    ),
    *billing_routes("/organizations/{orgId}"),
    Endpoint(
        "POST",
        "/organizations",
        organizations.create_organization,
        "Create an organization; the caller becomes owner",
    ),
    Endpoint("GET", "/organizations/{orgId}", organizations.get_organization, "One organization"),
    Endpoint(
        "PUT", "/organizations/{orgId}", organizations.update_organization, "Update an organization"
    ),
    Endpoint(
        "DELETE",
        "/organizations/{orgId}",
        organizations.delete_organization,
        "Delete an organization",
    ),
    Endpoint(
        "GET",
        "/organizations/{orgId}/api-keys",
        api_keys.list_organization_api_keys,
        "Provider keys and the organization's API keys",
    ),
    Endpoint(
        "GET",
        "/organizations/{orgId}/remote-config",
        organizations.get_remote_config,
        "The organization's remote config",
    ),
    Endpoint(
        "GET",
        "/organizations/{orgId}/metrics",
        usage.get_organization_metrics,
        "Usage metrics over a period",
    ),
    Endpoint(
        "GET", "/organizations/{orgId}/members", members.list_members, "Members of the organization"
    ),
    Endpoint("DELETE", "/organizations/{orgId}/members", members.remove_members, "Remove members"),
    Endpoint(
        "GET",
        "/organizations/{orgId}/members/available-roles",
        members.available_roles,
        "Roles the caller may assign",
    ),
    Endpoint(
        "PUT",
        "/organizations/{orgId}/members/{memberId}/role",
        members.change_role,
        "Change a member's role",
    ),
    Endpoint(
        "GET",
        "/organizations/{orgId}/members/{memberId}/usages",
        usage.list_member_usages,
        "A member's usage in the organization",
    ),
    Endpoint("GET", "/organizations/{orgId}/invites", invites.list_invites, "Pending invites"),
    Endpoint(
        "POST", "/organizations/{orgId}/invites", invites.send_invites, "Invite people by email"
    ),
    Endpoint(
        "GET",
        "/organizations/{orgId}/invites/count",
        invites.count_invites,
        "Number of pending invites",
    ),
    Endpoint(
        "DELETE",
        "/organizations/{orgId}/invites/{inviteId}",
        invites.revoke_invite,
        "Revoke an invite",
    ),
    Endpoint("POST", "/invites/accept", invites.accept_invite, "Accept an invite"),
    Endpoint("GET", "/plans", plans.list_plans, "The plan catalog"),
    Endpoint(
        "GET",
        "/organizations/{orgId}/plan",
        plans.get_organization_plan,
        "The organization's subscription",
    ),
    Endpoint(
        "GET", "/organizations/{orgId}/plan/history", plans.get_plan_history, "Subscription history"
    ),
    Endpoint(
        "GET",
        "/organizations/{orgId}/plan/{planId}",
        plans.get_plan_details,
        "A plan and the organization's subscription to it",
    ),
    Endpoint(
        "POST",
        "/organizations/{orgId}/plan",
        plans.subscribe,
        "Subscribe the organization to a plan",
    ),
    Endpoint(
        "PUT",
        "/organizations/{orgId}/plan",
        plans.change_plan,
        "Move to another plan (upgrade now, downgrade at period end)",
    ),
    Endpoint(
        "PUT", "/organizations/{orgId}/plan/seats", plans.change_seats, "Change the number of seats"
    ),
    Endpoint(
        "POST",
        "/organizations/{orgId}/plan/resume",
        plans.resume_plan,
        "Undo a cancellation or downgrade not yet in effect",
    ),
    Endpoint(
        "DELETE",
        "/organizations/{orgId}/plan/{planId}",
        plans.cancel_plan,
        "Cancel at the end of the period",
    ),
    Endpoint(
        "GET",
        "/organizations/{orgId}/usages",
        usage.get_organization_usage,
        "Aggregated usage over a period",
    ),
    Endpoint("GET", "/api-keys", api_keys.list_api_keys, "The caller's API keys"),
    Endpoint(
        "POST", "/api-keys", api_keys.create_api_key, "Create an API key (the secret is shown once)"
    ),
    Endpoint("DELETE", "/api-keys/{keyId}", api_keys.delete_api_key, "Revoke an API key"),
    Endpoint(
        "POST", "/internal/usages", usage.record_usages, "Record usage events (service token)"
    ),
]
