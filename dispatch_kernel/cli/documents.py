"""Files the command reads: function source, JSON, and `-f` YAML documents (`kind: Function |
Secret | BaseImage | Image | Subscription | EventSource | API | Organization | Policy |
ServiceAccount`), each checked against the REST API's own schema for that kind before anything
is created."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..entities import Api, EventSource, Subscription
from ..inputs import json_or_file
from ..model import BaseImage, Image, InvalidRequestError, NotFoundError
from .errors import CliError
from .output import emit


def read_file(path: str | Path) -> str:
    """The text of a file; a CliError naming it when it cannot be read."""
    try:
        return Path(path).read_text()
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or exc}") from None


def _function_spec(doc: dict[str, Any], base: Path) -> dict[str, Any]:
    """A YAML Function document as the REST body of a function (file: read, relative to base)."""
    spec = {k: v for k, v in doc.items() if k not in ("kind", "file", "code", "handler")}
    code = doc.get("code")
    filename = "<spec>"
    if doc.get("file") is not None:
        path = base / str(doc["file"])
        code, filename = read_file(path), str(path)
    if code is None:
        raise CliError(f"function {doc.get('name', '?')}: give `file:` or `code:`")
    spec["source"] = {"code": code, "filename": filename}
    if doc.get("handler") is not None:
        spec["source"]["handler"] = doc["handler"]
    for key in ("in", "out"):
        value = (spec.get("schema") or {}).get(key)
        if isinstance(value, str):
            spec["schema"][key] = json_or_file(str(base / value) if (base / value).is_file() else value, f"schema.{key}")
    return _checked("FunctionCreate", spec, f"function {doc.get('name', '?')}")


def _checked(schema: str, spec: dict[str, Any], what: str) -> dict[str, Any]:
    """`spec` when it is a valid REST body of `schema` (the server checks the same); else a
    CliError that names the document."""
    from ..server import openapi

    try:
        openapi.validate(schema, spec)
    except InvalidRequestError as exc:
        raise CliError(f"{what}: {exc}") from None
    return spec


def deploy_spec(client: Any, spec: dict[str, Any]) -> Any:
    """Deploy the function a REST body describes through `client`; its handle."""
    from ..packaging.spec import deploy_arguments

    source, name, options = deploy_arguments(spec)
    return client.deploy(source, name, **options)


def _documents(path: str) -> list[dict[str, Any]]:
    import yaml

    try:
        docs = [d for d in yaml.safe_load_all(read_file(path)) if d is not None]
    except yaml.YAMLError as exc:
        raise CliError(f"{path} is not valid YAML: {exc}".splitlines()[0]) from None
    for doc in docs:
        if not isinstance(doc, dict) or str(doc.get("kind", "")).lower() not in DOCUMENT_ORDER:
            raise CliError(f"{path}: every document needs `kind: Function`, `Secret`, `BaseImage`, `Image`, "
                           "`Subscription`, `EventSource`, `API`, `Organization`, `Policy` or `ServiceAccount`")
        if not isinstance(doc.get("name"), str):
            raise CliError(f"{path}: every document needs a `name:`")
    # Secrets first: functions may use them; base images before the images built on them.
    return sorted(docs, key=lambda d: DOCUMENT_ORDER[str(d["kind"]).lower()])


# Identity first: an organization before what lives in it, policies before what they allow.
DOCUMENT_ORDER = {"organization": -3, "serviceaccount": -2, "policy": -1, "secret": 0, "baseimage": 1, "image": 2,
                  "function": 3, "api": 4, "eventsource": 5, "subscription": 6}


def _events_document(doc: dict[str, Any]) -> dict[str, Any]:
    """A YAML Subscription or EventSource document as the REST body that creates it."""
    kind = str(doc["kind"]).lower()
    spec = {k: v for k, v in doc.items() if k != "kind"}
    schema = "SubscriptionCreate" if kind == "subscription" else "EventSourceCreate"
    return _checked(schema, spec, f"{doc['kind']} {doc['name']}")


def create_subscription(client: Any, spec: dict[str, Any]) -> Subscription:
    """Create the subscription a REST body describes."""
    options = {k: spec[k] for k in ("filters", "max_attempts", "tags") if spec.get(k) is not None}
    return client.subscribe(spec["function"], event_type=spec["event_type"], name=spec.get("name"), **options)


def create_event_source(client: Any, spec: dict[str, Any]) -> EventSource:
    """Create the event source a REST body describes."""
    return client.create_event_source(spec["name"], type=spec["type"], config=spec.get("config"),
                                      secrets=spec.get("secrets"), tags=spec.get("tags"))


def event_source_message(source: EventSource) -> str:
    """What creating a source prints: a webhook's token this once."""
    message = f"created event source {source.name} ({source.type})"
    token = source.config.get("token")
    if token:  # shown this once: the server keeps only its hash
        message += f"\nwebhook token (shown once): {token}"
    return message


def create_api(client: Any, spec: dict[str, Any]) -> Api:
    """Create the API a REST body describes."""
    options = {k: spec[k] for k in ("methods", "hosts", "protocols", "tags") if spec.get(k) is not None}
    return client.create_api(spec["name"], spec["function"], paths=spec.get("paths"), cors=spec.get("cors", False),
                             auth=spec.get("auth", "public"), enabled=spec.get("enabled", True), **options)


def api_message(client: Any, api: Api, verb: str = "created") -> str:
    """What creating or updating an API prints: its routes and where they answer."""
    routes = f"{','.join(api.methods)} {' '.join(api.paths)} -> {api.function}"
    return "\n".join([f"{verb} API {api.name} ({routes})", *(f"  {url}" for url in client.api_urls(api))])


def _apply_api(client: Any, doc: dict[str, Any], create: bool) -> tuple[Api, str]:
    spec = _checked("ApiCreate", {k: v for k, v in doc.items() if k != "kind"}, f"API {doc['name']}")
    if create:
        api = create_api(client, spec)
    else:
        client.get_api(spec["name"])  # NotFoundError: nothing to update
        api = client.update_api(spec["name"], **{k: v for k, v in spec.items() if k != "name"})
    return api, api_message(client, api, "created" if create else "updated")


def _image_document(doc: dict[str, Any]) -> dict[str, Any]:
    """A YAML BaseImage or Image document as the REST body that creates it."""
    kind = str(doc["kind"]).lower()
    spec = {k: v for k, v in doc.items() if k != "kind"}
    if kind == "image" and "base" in spec and "base_image" not in spec:
        spec["base_image"] = spec.pop("base")
    schema = "BaseImageCreate" if kind == "baseimage" else "ImageCreate"
    return _checked(schema, spec, f"{doc['kind']} {doc['name']}")


def build_log(line: str) -> None:
    """A build's log, line by line as it happens, on stderr (stdout keeps -o json clean)."""
    print(line, file=sys.stderr, flush=True)


def create_base_image(client: Any, spec: dict[str, Any]) -> BaseImage:
    """Register the base image a REST body describes; a CliError when it is not READY."""
    base = client.create_base_image(spec["name"], spec["image_url"], language=spec.get("language", "python3"),
                                    tags=spec.get("tags"))
    if base.status != "READY":
        raise CliError(f"base image {base.name} is in {base.status}: {base.reason} "
                       f"(dispatch delete base-image {base.name}, then create it again)")
    return base


def create_image(client: Any, spec: dict[str, Any]) -> Image:
    """Build the image a REST body describes, its log on stderr as it happens."""
    return client.create_image(spec["name"], spec["base_image"], requirements=spec.get("requirements"),
                               system_packages=spec.get("system_packages"), tags=spec.get("tags"),
                               progress=build_log)


def _make_secret(client: Any, doc: dict[str, Any], base: Path) -> tuple[Any, str]:
    values = doc.get("values")
    if values is None and doc.get("file") is not None:
        values = json_or_file(str(base / doc["file"]), f"secret {doc['name']}")
    secret = client.create_secret(doc["name"], values if values is not None else {})
    return secret, f"created secret {secret.name}"


def _make_image(client: Any, doc: dict[str, Any], base: Path) -> tuple[Any, str]:
    based = str(doc["kind"]).lower() == "baseimage"
    made = (create_base_image if based else create_image)(client, _image_document(doc))
    return made, f"created {'base image' if based else 'image'} {made.name} ({made.status})"


def _make_event_entity(client: Any, doc: dict[str, Any], base: Path) -> tuple[Any, str]:
    spec = _events_document(doc)
    if str(doc["kind"]).lower() == "subscription":
        sub = create_subscription(client, spec)
        return sub, f"created subscription {sub.name} ({sub.event_type} -> {sub.function})"
    source = create_event_source(client, spec)
    return source, event_source_message(source)


def _make_iam_entity(client: Any, doc: dict[str, Any], base: Path) -> tuple[Any, str]:
    kind = str(doc["kind"]).lower()
    spec = {k: v for k, v in doc.items() if k not in ("kind", "public_key_file")}
    what = f"{doc['kind']} {doc['name']}"
    if kind == "organization":
        spec = _checked("OrganizationCreate", spec, what)
        org = client.create_organization(spec["name"], description=spec.get("description", ""), tags=spec.get("tags"))
        return org, f"created organization {org.name}"
    if kind == "policy":
        spec = _checked("PolicyCreate", spec, what)
        policy = client.create_policy(spec["name"], spec["rules"], is_global=spec.get("is_global", False),
                                      tags=spec.get("tags"))
        return policy, f"created policy {policy.name}"
    if doc.get("public_key_file") is not None:
        spec["public_key"] = read_file(base / str(doc["public_key_file"]))
    spec = _checked("ServiceAccountCreate", spec, what)
    account = client.create_service_account(spec["name"], spec["public_key"], description=spec.get("description", ""),
                                            tags=spec.get("tags"))
    return account, f"created service account {account.name} ({account.algorithm})"


# What `create -f` makes of each kind but functions; none of these can be updated in place.
_MAKERS = {"organization": (_make_iam_entity, "organizations"), "policy": (_make_iam_entity, "policies"),
           "serviceaccount": (_make_iam_entity, "service accounts"),
           "secret": (_make_secret, "secrets"), "baseimage": (_make_image, "images"),
           "image": (_make_image, "images"), "subscription": (_make_event_entity, "subscriptions"),
           "eventsource": (_make_event_entity, "eventsources")}


def apply(args: argparse.Namespace, client: Any, create: bool) -> None:
    """Create (or, for functions, update) what the documents of `-f FILE` describe, in order."""
    base = Path(args.file).resolve().parent
    done: list[Any] = []
    messages = []
    for doc in _documents(args.file):
        kind, name = str(doc["kind"]).lower(), doc["name"]
        if kind == "api":  # the one kind besides functions that an update changes in place
            made, message = _apply_api(client, doc, create)
            done.append(made)
            messages.append(message)
            continue
        if kind in _MAKERS:
            make, plural = _MAKERS[kind]
            if not create:
                raise CliError(f"{doc['kind']} {name}: {plural} cannot be updated; delete and create it")
            made, message = make(client, doc, base)
            done.append(made)
            messages.append(message)
            continue
        spec = _function_spec(doc, base)
        try:
            client.get_function(name)
            exists = True
        except NotFoundError:
            exists = False
        if create and exists:
            raise CliError(f"function {name!r} already exists (dispatch update -f {args.file})")
        if not create and not exists:
            raise CliError(f"no function named {name!r} (dispatch create -f {args.file})")
        function = deploy_spec(client, spec).function
        done.append(function)
        messages.append(f"{'created' if create else 'updated'} function {function.name} "
                        f"({function.status}, revision {function.revision})")
    emit(args, done, lambda: "\n".join(messages))


__all__ = ["DOCUMENT_ORDER", "api_message", "apply", "build_log", "create_api", "create_base_image", "create_event_source", "create_image",
           "create_subscription", "deploy_spec", "event_source_message", "read_file"]
