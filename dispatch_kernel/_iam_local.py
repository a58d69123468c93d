"""LocalIam: the identity part of LocalClient (organizations, service accounts, policies,
whoami and explain) on the core in this process; _iam_http.py is the same for HttpClient.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .model import actor

if TYPE_CHECKING:
    from .core import Dispatch
    from .entities import Organization, Policy, ServiceAccount
    from .identity.policies import Principal


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


__all__ = ["LocalIam"]
