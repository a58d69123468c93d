"""HttpIam: the identity part of HttpClient (organizations, service accounts, policies,
whoami and explain) over REST API v1; _iam_local.py is the same for LocalClient. A test keeps
the two clients' public methods the same.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from .entities import Organization, Policy, ServiceAccount


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


__all__ = ["HttpIam"]
