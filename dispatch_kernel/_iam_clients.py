"""The identity part of both clients: organizations, service accounts, policies, whoami and
explain, over REST (HttpIam) and in this process (LocalIam). Mixed into HttpClient and
LocalClient, whose public methods a test keeps the same.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from .model import Organization, Policy, ServiceAccount, actor

if TYPE_CHECKING:
    from .core import Dispatch
    from .identity.policies import Principal


def _segment(value: str) -> str:
    return quote(value, safe="")


def _global(is_global: bool) -> dict[str, Any] | None:
    return {"global": "true"} if is_global else None


class HttpIam:
    """Identity over REST API v1 (iam/...), in the client's organization."""

    def _request(self, method: str, path: str, body: Any = None, query: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None) -> tuple[int, Any]:
        raise NotImplementedError  # HttpClient's

    def create_organization(self, name: str, *, description: str = "",
                            tags: dict[str, str] | None = None) -> Organization:
        """A new organization, administered by its creator."""
        body = {"name": name, "description": description, **({"tags": tags} if tags else {})}
        return Organization.from_dict(self._request("POST", "iam/organizations", body)[1])

    def get_organization(self, name: str) -> Organization:
        """One organization the caller is a member of."""
        return Organization.from_dict(self._request("GET", f"iam/organizations/{_segment(name)}")[1])

    def list_organizations(self) -> list[Organization]:
        """The organizations the caller is a member of, by name."""
        return [Organization.from_dict(o) for o in self._request("GET", "iam/organizations")[1]["items"]]

    def delete_organization(self, name: str) -> None:
        """Remove an empty organization with its policies and service accounts."""
        self._request("DELETE", f"iam/organizations/{_segment(name)}")

    def create_service_account(self, name: str, public_key: str, *, description: str = "",
                               tags: dict[str, str] | None = None) -> ServiceAccount:
        """A service account that signs JWTs with the private half of `public_key` (PEM)."""
        body = {"name": name, "public_key": public_key, "description": description, **({"tags": tags} if tags else {})}
        return ServiceAccount.from_dict(self._request("POST", "iam/serviceaccounts", body)[1])

    def get_service_account(self, name: str) -> ServiceAccount:
        """One service account (its public key)."""
        return ServiceAccount.from_dict(self._request("GET", f"iam/serviceaccounts/{_segment(name)}")[1])

    def list_service_accounts(self) -> list[ServiceAccount]:
        """The organization's service accounts, by name."""
        return [ServiceAccount.from_dict(a) for a in self._request("GET", "iam/serviceaccounts")[1]["items"]]

    def delete_service_account(self, name: str) -> None:
        """Remove a service account: its tokens are refused from then on."""
        self._request("DELETE", f"iam/serviceaccounts/{_segment(name)}")

    def create_policy(self, name: str, rules: list[dict[str, list[str]]], *, is_global: bool = False,
                      tags: dict[str, str] | None = None) -> Policy:
        """A policy: rules [{subjects, resources, actions}] (global: in every organization)."""
        body = {"name": name, "rules": rules, "is_global": is_global, **({"tags": tags} if tags else {})}
        return Policy.from_dict(self._request("POST", "iam/policies", body)[1])

    def get_policy(self, name: str, *, is_global: bool = False) -> Policy:
        """One policy of the organization (or a global one)."""
        return Policy.from_dict(self._request("GET", f"iam/policies/{_segment(name)}", query=_global(is_global))[1])

    def list_policies(self) -> list[Policy]:
        """The organization's policies, then the global ones."""
        return [Policy.from_dict(p) for p in self._request("GET", "iam/policies")[1]["items"]]

    def update_policy(self, name: str, rules: list[dict[str, list[str]]], *, revision: int | None = None,
                      is_global: bool = False) -> Policy:
        """Replace a policy's rules (ConflictError when no administrator would be left)."""
        body: dict[str, Any] = {"rules": rules, **({"revision": revision} if revision is not None else {})}
        return Policy.from_dict(self._request("PUT", f"iam/policies/{_segment(name)}", body,
                                              query=_global(is_global))[1])

    def delete_policy(self, name: str, *, is_global: bool = False) -> None:
        """Remove a policy (ConflictError when no administrator would be left)."""
        self._request("DELETE", f"iam/policies/{_segment(name)}", query=_global(is_global))

    def whoami(self) -> dict[str, Any]:
        """Who this client is: subject, groups, organizations, its rules in this organization."""
        return self._request("GET", "iam/whoami")[1]

    def explain(self, subject: str, action: str, resource: str) -> dict[str, Any]:
        """Which rule lets `subject` do `action` on `resource` here, or why none does."""
        query = {"subject": subject, "action": action, "resource": resource}
        return self._request("GET", "iam/explain", query=query)[1]


class LocalIam:
    """Identity in this process: the core's IdentityManager, acting as this process's user
    (the embedded client is its store's owner: it is not authorized by policy)."""

    dispatch: Dispatch
    org: str

    def _me(self) -> Principal:
        from .identity.policies import Principal

        self.dispatch.identity.bootstrap([actor()])  # a new store: its user administers it
        return Principal(actor())

    def create_organization(self, name: str, *, description: str = "",
                            tags: dict[str, str] | None = None) -> Organization:
        """A new organization, administered by its creator."""
        return self.dispatch.identity.create_organization(name, self._me(), description=description, tags=tags)

    def get_organization(self, name: str) -> Organization:
        """One organization."""
        return self.dispatch.identity.get_organization(name)

    def list_organizations(self) -> list[Organization]:
        """The organizations this process's user is a member of, by name."""
        return self.dispatch.identity.list_organizations(self._me())

    def delete_organization(self, name: str) -> None:
        """Remove an empty organization with its policies and service accounts."""
        self.dispatch.identity.delete_organization(name)

    def create_service_account(self, name: str, public_key: str, *, description: str = "",
                               tags: dict[str, str] | None = None) -> ServiceAccount:
        """A service account that signs JWTs with the private half of `public_key` (PEM)."""
        return self.dispatch.identity.create_service_account(name, self.org, public_key, description=description,
                                                             tags=tags)

    def get_service_account(self, name: str) -> ServiceAccount:
        """One service account (its public key)."""
        return self.dispatch.identity.get_service_account(name, self.org)

    def list_service_accounts(self) -> list[ServiceAccount]:
        """The organization's service accounts, by name."""
        return self.dispatch.identity.list_service_accounts(self.org)

    def delete_service_account(self, name: str) -> None:
        """Remove a service account: its tokens are refused from then on."""
        self.dispatch.identity.delete_service_account(name, self.org)

    def create_policy(self, name: str, rules: list[dict[str, list[str]]], *, is_global: bool = False,
                      tags: dict[str, str] | None = None) -> Policy:
        """A policy: rules [{subjects, resources, actions}] (global: in every organization)."""
        return self.dispatch.identity.create_policy(name, self.org, rules, is_global=is_global, tags=tags)

    def get_policy(self, name: str, *, is_global: bool = False) -> Policy:
        """One policy of the organization (or a global one)."""
        return self.dispatch.identity.get_policy(name, self.org, is_global=is_global)

    def list_policies(self) -> list[Policy]:
        """The organization's policies, then the global ones."""
        return self.dispatch.identity.list_policies(self.org)

    def update_policy(self, name: str, rules: list[dict[str, list[str]]], *, revision: int | None = None,
                      is_global: bool = False) -> Policy:
        """Replace a policy's rules (ConflictError when no administrator would be left)."""
        return self.dispatch.identity.update_policy(name, self.org, rules, revision=revision, is_global=is_global)

    def delete_policy(self, name: str, *, is_global: bool = False) -> None:
        """Remove a policy (ConflictError when no administrator would be left)."""
        self.dispatch.identity.delete_policy(name, self.org, is_global=is_global)

    def whoami(self) -> dict[str, Any]:
        """Who this client is: subject, groups, organizations, its rules in this organization."""
        return self.dispatch.identity.whoami(self.org, self._me())

    def explain(self, subject: str, action: str, resource: str) -> dict[str, Any]:
        """Which rule lets `subject` do `action` on `resource` here, or why none does."""
        return self.dispatch.identity.explain(self.org, subject, action, resource)


__all__ = ["HttpIam", "LocalIam"]
