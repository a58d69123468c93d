"""IdentityManager: organizations, service accounts and policies, and the one authorize() that
every face's requests go through.

Everything is kept through the generic EntityStore API (kinds `organization`, `serviceaccount`,
`policy`), so every store holds it: organizations and global policies in the pseudo-organization
SYSTEM_ORG ("*", never a valid organization name), the rest in their own organization.

Decisions are made from a PolicySet compiled once per organization and reused until a policy
changes (here, or in another process sharing the store: its `version()` says so).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from ..entities import Organization, Policy, ServiceAccount
from ..model import (ConflictError, DEFAULT_ORG, ForbiddenError, InvalidRequestError, NotFoundError, SYSTEM_ORG,
                     check_name)
from ..store.base import EntityStore
from .policies import Decision, PolicySet, Principal, check_rules

audit = logging.getLogger("dispatch_kernel.audit")
ADMIN_POLICY = "admins"
ADMIN_RULE = {"resources": ["*"], "actions": ["*"]}


class IdentityManager:
    """Organizations, service accounts, policies; authorization decisions."""

    def __init__(self, store: EntityStore, default_org: str = DEFAULT_ORG) -> None:
        self.store = store
        self.default_org = default_org
        self._lock = threading.Lock()
        self._generation = 0  # bumped by every change made here
        self._seen: tuple[int, int] = (-1, -1)  # (store version, generation) the caches are of
        self._sets: dict[str, PolicySet | None] = {}
        self._accounts: dict[tuple[str, str], ServiceAccount | None] = {}

    # ------------------------------------------------------------------ bootstrap

    def bootstrap(self, admins: list[str]) -> bool:
        """On a store without the default organization, create it with the policy `admins`
        that lets `admins` do everything there; True when it did. An existing store is left as
        it is (its administrators decide)."""
        names = [a for a in dict.fromkeys(admins) if a]
        if not names:
            raise InvalidRequestError("the bootstrap needs at least one administrator")
        try:
            self.store.get(Organization, SYSTEM_ORG, self.default_org)
            return False
        except NotFoundError:
            pass
        try:
            self.store.create(Organization(name=self.default_org, org=SYSTEM_ORG,
                                           description="created on the first start"))
        except ConflictError:  # another process bootstrapped it meanwhile
            return False
        self._create_admin_policy(self.default_org, names)
        return True

    def _create_admin_policy(self, org: str, subjects: list[str]) -> None:
        try:
            self.store.create(Policy(name=ADMIN_POLICY, org=org, rules=[{"subjects": subjects, **ADMIN_RULE}]))
        except ConflictError:
            pass  # kept: an organization re-created over its old policies
        self._changed()

    # ------------------------------------------------------------------ organizations

    def create_organization(self, name: str, creator: Principal, *, description: str = "",
                            tags: dict[str, str] | None = None) -> Organization:
        """A new organization whose creator administers it (the policy `admins`)."""
        check_name("organization", name)
        org = self.store.create(Organization(name=name, org=SYSTEM_ORG, description=description,
                                             tags=dict(tags or {})))
        self._create_admin_policy(name, [creator.name])
        return org

    def get_organization(self, name: str) -> Organization:
        """One organization; NotFoundError when there is none."""
        return self.store.get(Organization, SYSTEM_ORG, name)

    def list_organizations(self, principal: Principal | None = None) -> list[Organization]:
        """Every organization (that `principal` is a member of, when given), by name."""
        orgs = self.store.list(Organization, SYSTEM_ORG)
        if principal is None:
            return orgs
        return [o for o in orgs if self.member(o.name, principal)]

    def delete_organization(self, name: str) -> None:
        """Remove an empty organization with its policies and service accounts (never the
        default one); ConflictError while it still holds functions, secrets or APIs."""
        from ..entities import Api
        from ..model import Function, Secret

        if name == self.default_org:
            raise ConflictError(f"the default organization {name!r} cannot be deleted")
        self.get_organization(name)
        for kind in (Function, Secret, Api):
            if self.store.list(kind, name):
                raise ConflictError(f"organization {name!r} still has {kind.kind}s: delete them first")
        for kind in (Policy, ServiceAccount):
            for entity in self.store.list(kind, name):
                self.store.delete(kind, name, entity.name)
        self.store.delete(Organization, SYSTEM_ORG, name)
        self._changed()

    # ------------------------------------------------------------------ service accounts

    def create_service_account(self, name: str, org: str, public_key: str, *, description: str = "",
                               tags: dict[str, str] | None = None) -> ServiceAccount:
        """A service account that signs JWTs with the private half of `public_key` (PEM)."""
        from . import tokens  # PyJWT and its HTTP stack only where keys and tokens are handled

        check_name("service account", name)
        algorithm = tokens.key_algorithm(public_key)
        account = self.store.create(ServiceAccount(name=name, org=org, public_key=public_key.strip() + "\n",
                                                   algorithm=algorithm, description=description,
                                                   tags=dict(tags or {})))
        self._changed()
        return account

    def get_service_account(self, name: str, org: str) -> ServiceAccount:
        """One service account (its public key only: the server never has the private one)."""
        return self.store.get(ServiceAccount, org, name)

    def list_service_accounts(self, org: str) -> list[ServiceAccount]:
        """Every service account of the organization, by name."""
        return self.store.list(ServiceAccount, org)

    def delete_service_account(self, name: str, org: str) -> None:
        """Remove a service account: its tokens are refused from now on."""
        self.store.delete(ServiceAccount, org, name)
        self._changed()

    def verify_token(self, token: str, org: str | None = None) -> Principal:
        """The principal of a service account's JWT; UnauthorizedError for a bad token."""
        from . import tokens

        account, _ = tokens.verify(token, self._account, org=org)
        return Principal(f"serviceaccount:{account.name}")

    def token_org(self, token: str) -> str:
        """The organization a JWT's issuer names (before it is verified)."""
        from . import tokens

        return tokens.issuer(token)[0]

    def _account(self, org: str, name: str) -> ServiceAccount | None:
        self._fresh()
        key = (org, name)
        if key not in self._accounts:
            try:
                self._accounts[key] = self.store.get(ServiceAccount, org, name)
            except NotFoundError:
                self._accounts[key] = None
        return self._accounts[key]

    # ------------------------------------------------------------------ policies

    def create_policy(self, name: str, org: str, rules: Any, *, is_global: bool = False,
                      tags: dict[str, str] | None = None) -> Policy:
        """A policy of the organization (or, `is_global`, of every organization)."""
        check_name("policy", name)
        policy = Policy(name=name, org=SYSTEM_ORG if is_global else org, rules=check_rules(rules),
                        is_global=is_global, tags=dict(tags or {}))
        policy = self.store.create(policy)
        self._changed()
        return policy

    def get_policy(self, name: str, org: str, *, is_global: bool = False) -> Policy:
        """One policy of the organization, or a global one."""
        return self.store.get(Policy, SYSTEM_ORG if is_global else org, name)

    def list_policies(self, org: str) -> list[Policy]:
        """The organization's policies, then the global ones."""
        return self.store.list(Policy, org) + self.store.list(Policy, SYSTEM_ORG)

    def update_policy(self, name: str, org: str, rules: Any, *, revision: int | None = None,
                      is_global: bool = False) -> Policy:
        """Replace a policy's rules; refused when no administrator would be left."""
        with self._lock:
            policy = self.get_policy(name, org, is_global=is_global)
            if revision is not None and revision != policy.revision:
                raise ConflictError(f"policy {name!r} has changed (revision {policy.revision}, the update was "
                                    f"based on {revision}); fetch it again and retry")
            changed = Policy(**{**policy.__dict__, "rules": check_rules(rules)})
            changed.touch()
            self._keeps_an_admin(org, policy, changed)
            policy = self.store.update(changed)
        self._changed()
        return policy

    def delete_policy(self, name: str, org: str, *, is_global: bool = False) -> None:
        """Remove a policy; refused when no administrator would be left."""
        with self._lock:
            policy = self.get_policy(name, org, is_global=is_global)
            self._keeps_an_admin(org, policy, None)
            self.store.delete(Policy, policy.org, name)
        self._changed()

    def _keeps_an_admin(self, org: str, old: Policy, new: Policy | None) -> None:
        orgs = [o.name for o in self.list_organizations()] if old.is_global else [org]
        for name in orgs:
            kept = [p for p in self.list_policies(name) if (p.org, p.name) != (old.org, old.name)]
            if not PolicySet(kept + ([new] if new is not None else [])).admins:
                raise ConflictError(f"that would leave organization {name!r} without an administrator "
                                    f"(a rule with actions * on resources *): name another one first")

    # ------------------------------------------------------------------ decisions

    def _changed(self) -> None:
        with self._lock:
            self._generation += 1

    def _fresh(self) -> None:
        """Forget compiled policies and accounts when the store has changed since."""
        seen = (self.store.version(), self._generation)
        if seen != self._seen:
            self._sets = {}
            self._accounts = {}
            self._seen = seen

    def policy_set(self, org: str) -> PolicySet | None:
        """The compiled policies of `org`, or None when there is no such organization."""
        self._fresh()
        if org not in self._sets:
            try:
                self.store.get(Organization, SYSTEM_ORG, org)
            except NotFoundError:
                self._sets[org] = None
            else:
                self._sets[org] = PolicySet(self.list_policies(org))
        return self._sets[org]

    def member(self, org: str, principal: Principal) -> bool:
        """Whether any policy of `org` names the principal."""
        found = self.policy_set(org)
        return found is not None and found.member(principal.subjects)

    def decide(self, org: str, principal: Principal, action: str, resource: str) -> Decision:
        """Whether `principal` may do `action` on `resource` in `org`, and by which rule."""
        found = self.policy_set(org)
        if found is None:
            return Decision(False, False)
        return found.decide(principal.subjects, action, resource)

    def authorize(self, org: str, principal: Principal, action: str, resource: str) -> None:
        """Nothing when allowed. Otherwise: NotFoundError for an organization that does not
        exist or where no policy names the principal (so another organization's names are
        answered as names that do not exist), ForbiddenError naming the action and resource
        in the principal's own. Every denial is an audit line."""
        decision = self.decide(org, principal, action, resource)
        if decision.allowed:
            return
        audit.warning("denied subject=%s org=%s resource=%s action=%s member=%s",
                      principal.name, org, resource, action, decision.member)
        if not decision.member:
            raise NotFoundError(f"no organization named {org!r}")
        raise ForbiddenError(f"{principal.name} may not {action} {resource} in organization {org!r}")

    def explain(self, org: str, subject: str, action: str, resource: str) -> dict[str, Any]:
        """Which rule allows `subject` to do `action` on `resource`, or why nothing does."""
        decision = self.decide(org, Principal(subject), action, resource)
        return {"subject": subject, "action": action, "resource": resource, "org": org,
                "allowed": decision.allowed, "policy": decision.policy or None,
                "rule": decision.rule if decision.allowed else None,
                "explanation": decision.explain(subject, action, resource)}

    def whoami(self, org: str, principal: Principal) -> dict[str, Any]:
        """The principal, its organizations and the rules that name it in `org`."""
        found = self.policy_set(org)
        rules = []
        for policy in self.list_policies(org) if found is not None else []:
            for index, rule in enumerate(policy.rules):
                if PolicySet([Policy(name="x", rules=[rule])]).member(principal.subjects):
                    rules.append({"policy": policy.name, "global": policy.is_global, "rule": index, **rule})
        return {"subject": principal.name, "groups": list(principal.groups), "org": org,
                "organizations": [o.name for o in self.list_organizations(principal)], "rules": rules}


__all__ = ["ADMIN_POLICY", "IdentityManager", "audit"]
