"""`dispatch iam ...` and `dispatch whoami`: organizations, service accounts and policies.

    dispatch iam create organization NAME [--description D]
    dispatch iam create policy NAME --subject S ... --action A ... --resource R ... [--global]
    dispatch iam create serviceaccount NAME --public-key FILE.pem
    dispatch iam get organizations|organization NAME|policies|policy NAME|serviceaccounts|serviceaccount NAME
    dispatch iam delete organization|policy|serviceaccount NAME [--global]
    dispatch iam explain SUBJECT ACTION RESOURCE
    dispatch whoami
"""

from __future__ import annotations

import argparse
from typing import Any

from .documents import read_file
from .errors import CliError
from .output import Kind, emit, show, table, when

IAM_KINDS: dict[str, Kind] = {
    "organization": Kind(
        lambda c: c.list_organizations(), lambda c, n: c.get_organization(n), lambda c, n: c.delete_organization(n),
        ["NAME", "DESCRIPTION", "CREATED BY", "MODIFIED"],
        lambda o: [o.name, o.description or "-", o.created_by or "-", when(o.modified)],
        lambda o: [("name", o.name), ("description", o.description or "-"), ("created by", o.created_by or "-"),
                   ("modified", when(o.modified))]),
    "policy": Kind(
        lambda c: c.list_policies(), lambda c, n: c.get_policy(n), lambda c, n: c.delete_policy(n),
        ["NAME", "SCOPE", "SUBJECTS", "ACTIONS", "RESOURCES", "UPDATED BY"],
        lambda p: [p.name, "global" if p.is_global else p.org,
                   " | ".join(",".join(r["subjects"]) for r in p.rules),
                   " | ".join(",".join(r["actions"]) for r in p.rules),
                   " | ".join(",".join(r["resources"]) for r in p.rules), p.updated_by or "-"],
        lambda p: [("name", p.name), ("scope", "global" if p.is_global else p.org), ("rules", p.rules),
                   ("revision", str(p.revision)), ("created by", p.created_by or "-"),
                   ("updated by", p.updated_by or "-"), ("modified", when(p.modified))]),
    "serviceaccount": Kind(
        lambda c: c.list_service_accounts(), lambda c, n: c.get_service_account(n),
        lambda c, n: c.delete_service_account(n),
        ["NAME", "ALGORITHM", "DESCRIPTION", "CREATED BY", "MODIFIED"],
        lambda a: [a.name, a.algorithm, a.description or "-", a.created_by or "-", when(a.modified)],
        lambda a: [("name", a.name), ("algorithm", a.algorithm), ("issuer", f"{a.org}/{a.name}"),
                   ("description", a.description or "-"), ("public key", a.public_key),
                   ("created by", a.created_by or "-"), ("modified", when(a.modified))]),
}
IAM_PLURALS = {"organizations": "organization", "policies": "policy", "serviceaccounts": "serviceaccount"}
_KINDS = tuple(IAM_KINDS)


def add_parsers(commands: Any) -> None:
    """The `iam` and `whoami` commands."""
    iam = commands.add_parser("iam", help="organizations, service accounts and policies")
    verbs = iam.add_subparsers(dest="iam_command", metavar="VERB", required=True)
    create = verbs.add_parser("create", help="create an organization, policy or service account")
    create.add_argument("kind", choices=_KINDS)
    create.add_argument("name")
    create.add_argument("--description", default="")
    create.add_argument("--subject", action="append", metavar="SUBJECT",
                        help="policy: a user, group:NAME or serviceaccount:NAME (repeatable)")
    create.add_argument("--action", action="append", metavar="ACTION",
                        help="policy: get, create, update, delete, invoke or * (repeatable)")
    create.add_argument("--resource", action="append", metavar="RESOURCE",
                        help="policy: functions, functions/nightly-*, * ... (repeatable)")
    create.add_argument("--global", dest="is_global", action="store_true",
                        help="policy: applies in every organization")
    create.add_argument("--public-key", metavar="FILE.pem", help="serviceaccount: its public key (PEM)")
    get = verbs.add_parser("get", help="list or show organizations, policies, service accounts")
    get.add_argument("what", choices=(*_KINDS, *IAM_PLURALS))
    get.add_argument("name", nargs="?")
    get.add_argument("--global", dest="is_global", action="store_true", help="policy: a global one")
    delete = verbs.add_parser("delete", help="delete an organization, policy or service account")
    delete.add_argument("kind", choices=_KINDS)
    delete.add_argument("name")
    delete.add_argument("--global", dest="is_global", action="store_true", help="policy: a global one")
    explain = verbs.add_parser("explain", help="which rule lets SUBJECT do ACTION on RESOURCE")
    explain.add_argument("subject")
    explain.add_argument("action")
    explain.add_argument("resource")
    for sub in verbs.choices.values():
        sub.add_argument("-o", "--output", choices=("table", "json", "yaml"), default=argparse.SUPPRESS)
        sub.add_argument("--org", default=argparse.SUPPRESS, help="the organization to work in")
    commands.add_parser("whoami", help="who you are: subject, groups, organizations, what you may do")


def cmd_iam(args: argparse.Namespace, client: Any) -> None:
    """`dispatch iam VERB ...`."""
    {"create": _create, "get": _get, "delete": _delete, "explain": _explain}[args.iam_command](args, client)


def _create(args: argparse.Namespace, client: Any) -> None:
    if args.kind == "organization":
        org = client.create_organization(args.name, description=args.description)
        emit(args, org, lambda: f"created organization {org.name} (you administer it: policy admins)")
    elif args.kind == "policy":
        missing = [flag for flag, value in (("--subject", args.subject), ("--action", args.action),
                                            ("--resource", args.resource)) if not value]
        if missing:
            raise CliError(f"dispatch iam create policy NAME needs {', '.join(missing)}")
        rule = {"subjects": args.subject, "resources": args.resource, "actions": args.action}
        policy = client.create_policy(args.name, [rule], is_global=args.is_global)
        emit(args, policy, lambda: f"created {'global ' if policy.is_global else ''}policy {policy.name}")
    else:
        if not args.public_key:
            raise CliError("dispatch iam create serviceaccount NAME needs --public-key FILE.pem")
        account = client.create_service_account(args.name, read_file(args.public_key), description=args.description)
        emit(args, account, lambda: f"created service account {account.name} ({account.algorithm}); "
                                    f"its JWTs carry iss {account.org}/{account.name}")


def _get(args: argparse.Namespace, client: Any) -> None:
    kind = IAM_KINDS[IAM_PLURALS.get(args.what, args.what)]
    if args.name is None and args.what in IAM_KINDS:
        raise CliError(f"usage: dispatch iam get {args.what} NAME")
    policy = args.what in ("policy", "policies")
    show(args, kind, client, (lambda c, name: c.get_policy(name, is_global=args.is_global)) if policy else None)


def _delete(args: argparse.Namespace, client: Any) -> None:
    if args.kind == "policy":
        client.delete_policy(args.name, is_global=args.is_global)
    else:
        IAM_KINDS[args.kind].delete(client, args.name)
    print(f"deleted {args.kind} {args.name}")


def _explain(args: argparse.Namespace, client: Any) -> None:
    answer = client.explain(args.subject, args.action, args.resource)
    emit(args, answer, lambda: ("ALLOWED: " if answer["allowed"] else "DENIED: ") + answer["explanation"])


def cmd_whoami(args: argparse.Namespace, client: Any) -> None:
    """`dispatch whoami`."""
    me = client.whoami()

    def text() -> str:
        lines = [f"subject:       {me['subject']}", f"groups:        {', '.join(me['groups']) or '-'}",
                 f"organization:  {me['org']}", f"organizations: {', '.join(me['organizations']) or '-'}"]
        if me["rules"]:
            lines.append(table(["POLICY", "ACTIONS", "RESOURCES"],
                               [[("*/" if r["global"] else "") + r["policy"], ",".join(r["actions"]),
                                 ",".join(r["resources"])] for r in me["rules"]]))
        else:
            lines.append("no policy names you in this organization: you may do nothing here")
        return "\n".join(lines)

    emit(args, me, text)


__all__ = ["IAM_KINDS", "add_parsers", "cmd_iam", "cmd_whoami"]
