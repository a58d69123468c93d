"""Policies compiled for fast decisions: (subjects, action, resource) -> allowed, and by which rule.

A small evaluator instead of pycasbin: Dispatch's Casbin model was "subject, resource, action
with keyMatch", which is exactly a list of rules whose names may hold `*` wildcards. Compiled
here (each pattern one regular expression, rules indexed by the subject they name), a decision
for a known subject is a dictionary lookup and a few regex matches: a few microseconds with 100
policies in the organization, where a general model interpreter costs tens. It also says which
rule decided, which `dispatch iam explain` shows.

Matching: a subject is a user name, `group:NAME`, `serviceaccount:NAME` or (a JupyterHub service)
`service:NAME`, or a pattern of them
(`*` anyone, `group:*`). A resource is a kind (`functions`) or a kind and a name
(`functions/nightly-*`); a rule on a kind covers every entity of that kind, `*` covers all. An
action is get, create, update, delete or invoke, or `*`.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..entities import Policy
from ..model import InvalidRequestError

ACTIONS = ("get", "create", "update", "delete", "invoke")
RULE_KEYS = ("subjects", "resources", "actions")


@dataclass(frozen=True)
class Principal:
    """Who makes a request: a user (with the groups the identity provider gave) or a service
    account (`serviceaccount:NAME`)."""

    name: str
    groups: tuple[str, ...] = ()

    @property
    def subjects(self) -> tuple[str, ...]:
        """Every name a policy may give this principal by."""
        return (self.name, *(f"group:{g}" for g in self.groups))


@dataclass(frozen=True)
class Decision:
    """The answer for one (subjects, action, resource): allowed or not, the rule that allowed
    it, and whether the subjects have any rule at all in the organization (a non-member sees
    nothing there: its requests are answered as if the organization did not exist)."""

    allowed: bool
    member: bool
    policy: str = ""  # "ORG/POLICY" of the deciding rule ("*/POLICY" for a global one)
    rule: int = -1  # its index in the policy's rules
    rule_text: dict[str, list[str]] = field(default_factory=dict)

    def explain(self, subject: str, action: str, resource: str) -> str:
        """Why, in a sentence."""
        if self.allowed:
            return (f"{subject} may {action} {resource}: rule {self.rule} of policy {self.policy} "
                    f"{_rule_words(self.rule_text)}")
        if not self.member:
            return f"{subject} may not {action} {resource}: no policy of this organization names {subject}"
        return f"{subject} may not {action} {resource}: no rule allows it"


def _rule_words(rule: dict[str, list[str]]) -> str:
    return " ".join(f"{key}={','.join(rule.get(key, []))}" for key in RULE_KEYS)


def _pattern(text: str) -> re.Pattern[str]:
    return re.compile(fnmatch.translate(text))


@dataclass
class _Rule:
    policy: str
    index: int
    text: dict[str, list[str]]
    any_action: bool
    actions: frozenset[str]
    resources: tuple[re.Pattern[str], ...]

    def covers(self, action: str, resource: str, kind: str) -> bool:
        if not (self.any_action or action in self.actions):
            return False
        # A rule on a kind (`functions`) covers every entity of it: try the kind alone too.
        return any(p.match(resource) or (kind is not resource and p.match(kind)) for p in self.resources)


def check_rules(rules: Any) -> list[dict[str, list[str]]]:
    """The rules of a policy, checked: a list of {subjects, resources, actions}, each a
    non-empty list of strings, actions among ACTIONS or `*`; else InvalidRequestError."""
    if not isinstance(rules, list) or not rules:
        raise InvalidRequestError("a policy needs at least one rule {subjects, resources, actions}")
    checked = []
    for number, rule in enumerate(rules):
        if not isinstance(rule, dict) or set(rule) - set(RULE_KEYS):
            raise InvalidRequestError(f"rule {number}: a rule has exactly subjects, resources and actions")
        for key in RULE_KEYS:
            values = rule.get(key)
            if not isinstance(values, list) or not values or not all(isinstance(v, str) and v for v in values):
                raise InvalidRequestError(f"rule {number}: {key} must be a non-empty list of names")
        wrong = [a for a in rule["actions"] if a != "*" and a not in ACTIONS]
        if wrong:
            raise InvalidRequestError(f"rule {number}: unknown action {wrong[0]!r} "
                                      f"(actions: {', '.join(ACTIONS)}, or *)")
        checked.append({key: list(rule[key]) for key in RULE_KEYS})
    return checked


class PolicySet:
    """The policies that apply in one organization (its own and the global ones), compiled."""

    def __init__(self, policies: Iterable[Policy]) -> None:
        self._exact: dict[str, list[_Rule]] = {}
        self._wild: list[tuple[re.Pattern[str], _Rule]] = []
        self._admins: set[str] = set()
        self._cache: dict[tuple[str, ...], tuple[list[_Rule], bool]] = {}
        for policy in policies:
            where = f"{'*' if policy.is_global else policy.org}/{policy.name}"
            for index, text in enumerate(policy.rules):
                rule = _Rule(where, index, text, "*" in text["actions"], frozenset(text["actions"]),
                             tuple(_pattern(r) for r in text["resources"]))
                if rule.any_action and "*" in text["resources"]:
                    self._admins.update(text["subjects"])
                for subject in text["subjects"]:
                    if any(c in subject for c in "*?["):
                        self._wild.append((_pattern(subject), rule))
                    else:
                        self._exact.setdefault(subject, []).append(rule)

    @property
    def admins(self) -> set[str]:
        """Subjects (as written) that may do everything here."""
        return set(self._admins)

    def _rules(self, subjects: tuple[str, ...]) -> tuple[list[_Rule], bool]:
        found = self._cache.get(subjects)
        if found is None:
            rules: list[_Rule] = []
            for subject in subjects:
                rules.extend(self._exact.get(subject, ()))
                rules.extend(rule for pattern, rule in self._wild if pattern.match(subject))
            found = (rules, bool(rules))
            if len(self._cache) > 4096:  # many distinct users: forget, rather than grow
                self._cache.clear()
            self._cache[subjects] = found
        return found

    def member(self, subjects: tuple[str, ...]) -> bool:
        """Whether any rule here names one of `subjects`."""
        return self._rules(subjects)[1]

    def decide(self, subjects: tuple[str, ...], action: str, resource: str) -> Decision:
        """Whether `subjects` may do `action` on `resource` (`kind` or `kind/name`)."""
        rules, member = self._rules(subjects)
        kind = resource.partition("/")[0] if "/" in resource else resource
        for rule in rules:
            if rule.covers(action, resource, kind):
                return Decision(True, True, rule.policy, rule.index, rule.text)
        return Decision(False, member)


__all__ = ["ACTIONS", "Decision", "PolicySet", "Principal", "check_rules"]
