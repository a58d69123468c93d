"""deploy/kubernetes/: Dispatch itself on a cluster. Every manifest is valid strictly for
Kubernetes 1.29 and the newest release; the kustomization lists every file; what the server and
the gateway are configured with is what their code accepts; every Secret and ConfigMap key a
pod refers to exists."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from dispatch_kernel import plugins
from dispatch_kernel.gateway.standalone import parser as gateway_parser

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"
FILES = sorted(path.name for path in DEPLOY.glob("*.yaml") if path.name != "kustomization.yaml")
VERSIONS = ["1.29.0", kubernetes_validate.latest_version()]


def _documents() -> list[dict]:
    return [doc for name in FILES for doc in yaml.safe_load_all((DEPLOY / name).read_text()) if doc]


def _find(kind: str, name: str) -> dict:
    return next(doc for doc in _documents() if doc["kind"] == kind and doc["metadata"]["name"] == name)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("name", FILES)
def test_every_manifest_is_valid_strictly(name, version):
    documents = [doc for doc in yaml.safe_load_all((DEPLOY / name).read_text()) if doc]
    assert documents
    for document in documents:
        assert kubernetes_validate.validate(document, version, strict=True)


def test_the_kustomization_lists_every_manifest_and_the_parts_are_all_there():
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == FILES
    kinds = {(doc["kind"], doc["metadata"]["name"]) for doc in _documents()}
    for part in [("Deployment", "dispatch-server"), ("Deployment", "dispatch-gateway"),
                 ("StatefulSet", "postgres"), ("StatefulSet", "nats"), ("Service", "postgres"),
                 ("Service", "nats"), ("Service", "dispatch-server"), ("Service", "dispatch-gateway")]:
        assert part in kinds


def test_the_server_configuration_is_what_the_server_accepts():
    from dispatch_kernel.server.app import DispatchApp

    config = json.loads(_find("ConfigMap", "dispatch-config")["data"]["jupyter_server_config.json"])
    dispatch = config["DispatchApp"]
    assert set(dispatch) <= set(DispatchApp.class_trait_names(config=True))
    assert dispatch["driver"] in plugins.names("driver") and dispatch["bus"] in plugins.names("bus")
    assert dispatch["images"] in plugins.names("image builder")
    # The PostgreSQL store is another issue's plug-in; its name and option are the ones it documents.
    assert dispatch["store"] == "postgres" and "dsn" in dispatch["plugin_options"]["postgres"]
    assert dispatch["plugin_options"]["kubernetes"]["access"] in ("service", "proxy")


def test_the_gateway_command_is_what_dispatch_gateway_accepts():
    config = _find("ConfigMap", "dispatch-config")["data"]
    options = json.loads(config["plugin_options.json"])
    container = _find("Deployment", "dispatch-gateway")["spec"]["template"]["spec"]["containers"][0]
    script = container["command"][-1]
    words = shlex.split(script.replace('"$(cat /etc/dispatch/plugin_options.json)"', shlex.quote(json.dumps(options))))
    assert words[:3] == ["exec", "dispatch", "gateway"]
    args = gateway_parser().parse_args(words[3:])
    assert args.address == "0.0.0.0" and json.loads(args.plugin_options) == options
    assert args.port == container["ports"][0]["containerPort"]


def test_every_key_a_pod_refers_to_exists():
    secrets = {doc["metadata"]["name"]: set(doc.get("stringData", {})) | set(doc.get("data", {}))
               for doc in _documents() if doc["kind"] == "Secret"}
    maps = {doc["metadata"]["name"]: set(doc["data"]) for doc in _documents() if doc["kind"] == "ConfigMap"}
    for doc in _documents():
        if doc["kind"] not in ("Deployment", "StatefulSet"):
            continue
        pod = doc["spec"]["template"]["spec"]
        for container in pod["containers"]:
            for source in container.get("envFrom", []):
                assert source["secretRef"]["name"] in secrets
            for variable in container.get("env", []):
                ref = (variable.get("valueFrom") or {}).get("secretKeyRef")
                if ref:
                    assert ref["key"] in secrets[ref["name"]], (doc["metadata"]["name"], ref)
        for volume in pod.get("volumes", []):
            if "configMap" in volume:
                for item in volume["configMap"].get("items", []):
                    assert item["key"] in maps[volume["configMap"]["name"]]
