"""REST API v1: identity (iam/...): organizations, service accounts, policies, whoami, explain.

Policies and service accounts belong to the request's organization; organizations are listed
as far as the caller is a member. Global policies (`?global=true`, `"is_global": true`) are
managed from the default organization only.
"""

from __future__ import annotations

from typing import Any

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..entities import Organization, Policy, ServiceAccount
from .base import ApiError, DispatchHandler


def _organization(org: Organization) -> dict[str, Any]:
    data = org.to_dict()
    data.pop("org", None)  # organizations are kept in the pseudo-organization "*"
    return data


def _policy(policy: Policy) -> dict[str, Any]:
    return policy.to_dict()


def _account(account: ServiceAccount) -> dict[str, Any]:
    return account.to_dict()


class IamBase(DispatchHandler):
    """The handlers of the identity resource."""

    auth_resource = "dispatch:iam"

    def is_global(self) -> bool:
        """Whether the request is about a global policy (`?global=true`), which only the default
        organization manages."""
        wanted = (self.get_query_argument("global", "false") or "").lower() in ("true", "1", "yes")
        if wanted and self.org != self.state.org:
            raise ApiError(400, f"global policies are managed from the default organization {self.state.org!r}")
        return wanted


class OrganizationsHandler(IamBase):
    """The organizations the caller is a member of; create one (its creator administers it)."""

    path = "iam/organizations"

    def target(self) -> tuple[str, str] | None:
        return None if self.request.method == "GET" else super().target()  # a list shows one's own

    @web.authenticated
    @authorized
    async def get(self) -> None:
        orgs = await self.call(self.core.identity.list_organizations, self.principal)
        self.reply({"items": [_organization(o) for o in orgs]})

    @web.authenticated
    @authorized
    async def post(self) -> None:
        spec = self.body("OrganizationCreate")
        org = await self.call(self.core.identity.create_organization, spec["name"], self.principal,
                              description=spec.get("description", ""), tags=spec.get("tags"))
        self.created(org.name, _organization(org))


class OrganizationHandler(IamBase):
    """One organization (to its members); delete an empty one (its administrators)."""

    path = "iam/organizations/{name}"

    def target(self) -> None:
        return None  # decided in the organization named by the path, below

    @web.authenticated
    @authorized
    async def get(self, name: str) -> None:
        await self.call(self.core.identity.authorize, name, self.principal, "get", f"organizations/{name}")
        self.reply(_organization(await self.call(self.core.identity.get_organization, name)))

    @web.authenticated
    @authorized
    async def delete(self, name: str) -> None:
        await self.call(self.core.identity.authorize, name, self.principal, "delete", f"organizations/{name}")
        await self.call(self.core.identity.delete_organization, name)
        self.no_content()


class PoliciesHandler(IamBase):
    """The organization's policies and the global ones; create one."""

    path = "iam/policies"

    @web.authenticated
    @authorized
    async def get(self) -> None:
        policies = await self.call(self.core.identity.list_policies, self.org)
        self.reply({"items": [_policy(p) for p in policies]})

    @web.authenticated
    @authorized
    async def post(self) -> None:
        spec = self.body("PolicyCreate")
        is_global = bool(spec.get("is_global"))
        if is_global and self.org != self.state.org:
            raise ApiError(400, f"global policies are managed from the default organization {self.state.org!r}")
        policy = await self.call(self.core.identity.create_policy, spec["name"], self.org, spec["rules"],
                                 is_global=is_global, tags=spec.get("tags"))
        self.created(policy.name, _policy(policy))


class PolicyHandler(IamBase):
    """One policy (`?global=true` for a global one): read, replace its rules, delete. A change
    that would leave the organization without an administrator is refused (409)."""

    path = "iam/policies/{name}"

    @web.authenticated
    @authorized
    async def get(self, name: str) -> None:
        policy = await self.call(self.core.identity.get_policy, name, self.org, is_global=self.is_global())
        self.reply(_policy(policy))

    @web.authenticated
    @authorized
    async def put(self, name: str) -> None:
        spec = self.body("PolicyUpdate")
        policy = await self.call(self.core.identity.update_policy, name, self.org, spec["rules"],
                                 revision=spec.get("revision"), is_global=self.is_global())
        self.reply(_policy(policy))

    @web.authenticated
    @authorized
    async def delete(self, name: str) -> None:
        await self.call(self.core.identity.delete_policy, name, self.org, is_global=self.is_global())
        self.no_content()


class ServiceAccountsHandler(IamBase):
    """The organization's service accounts; create one from a public key."""

    path = "iam/serviceaccounts"

    @web.authenticated
    @authorized
    async def get(self) -> None:
        accounts = await self.call(self.core.identity.list_service_accounts, self.org)
        self.reply({"items": [_account(a) for a in accounts]})

    @web.authenticated
    @authorized
    async def post(self) -> None:
        spec = self.body("ServiceAccountCreate")
        account = await self.call(self.core.identity.create_service_account, spec["name"], self.org,
                                  spec["public_key"], description=spec.get("description", ""),
                                  tags=spec.get("tags"))
        self.created(account.name, _account(account))


class ServiceAccountHandler(IamBase):
    """One service account; delete it (its tokens are refused from then on)."""

    path = "iam/serviceaccounts/{name}"

    @web.authenticated
    @authorized
    async def get(self, name: str) -> None:
        self.reply(_account(await self.call(self.core.identity.get_service_account, name, self.org)))

    @web.authenticated
    @authorized
    async def delete(self, name: str) -> None:
        await self.call(self.core.identity.delete_service_account, name, self.org)
        self.no_content()


class WhoamiHandler(IamBase):
    """Who the caller is: subject, groups, organizations, and its rules in this organization."""

    path = "iam/whoami"

    def target(self) -> None:
        return None  # anyone may ask who they are

    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.reply(await self.call(self.core.identity.whoami, self.org, self.principal))


class ExplainHandler(IamBase):
    """Which rule lets SUBJECT do ACTION on RESOURCE in this organization, or why none does."""

    path = "iam/explain"

    def target(self) -> tuple[str, str]:
        return "get", "policies"

    @web.authenticated
    @authorized
    async def get(self) -> None:
        wanted = {key: self.get_query_argument(key, "") for key in ("subject", "action", "resource")}
        missing = [key for key, value in wanted.items() if not value]
        if missing:
            raise ApiError(400, f"query parameters subject, action and resource are required (missing: "
                                f"{', '.join(missing)})")
        self.reply(await self.call(self.core.identity.explain, self.org, wanted["subject"], wanted["action"],
                                   wanted["resource"]))


HANDLERS = [OrganizationsHandler, OrganizationHandler, PoliciesHandler, PolicyHandler, ServiceAccountsHandler,
            ServiceAccountHandler, WhoamiHandler, ExplainHandler]
