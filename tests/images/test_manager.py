"""ImageManager without a registry: environments here, the refusal to build images with nowhere
to push them, and the checks that refuse bad base images and images before anything is stored.

What needs a registry (building and pushing) is tested in test_oci.py and test_clients.py.
"""

from __future__ import annotations

import importlib.metadata
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from dispatch_kernel.images.manager import ImageManager
from dispatch_kernel.images.oci import OciBuilder
from dispatch_kernel.images.venv import HOST_ENVIRONMENT
from dispatch_kernel.model import (
    BaseImage,
    ConflictError,
    DeployError,
    Function,
    FunctionStatus,
    Image,
    InvalidRequestError,
    NotFoundError,
)
from dispatch_kernel.packaging import FunctionSource, package
from dispatch_kernel.settings import Settings
from dispatch_kernel.store.sqlite import SqliteStore

ORG = "default"
JSONSCHEMA = f"jsonschema=={importlib.metadata.version('jsonschema')}"  # installed here


def validates(document):
    import jsonschema

    return jsonschema.__name__


@pytest.fixture(autouse=True)
def no_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    # a registry in the developer's environment would let an oci builder be made
    monkeypatch.delenv("DISPATCH_REGISTRY", raising=False)
    monkeypatch.delenv("DISPATCH_BASE_IMAGE", raising=False)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    the_store = SqliteStore(Settings(home=tmp_path / "home"))
    try:
        yield the_store
    finally:
        the_store.close()


def manager_for(store: SqliteStore, **settings) -> ImageManager:
    return ImageManager(Settings(home=store.path.parent, **settings), store)


@pytest.fixture
def images(store: SqliteStore) -> Iterator[ImageManager]:
    manager = manager_for(store)  # the defaults: images="venv", no plug-in options
    try:
        yield manager
    finally:
        manager.close()


@pytest.fixture
def ready_base(store: SqliteStore) -> BaseImage:
    """A base image as create_base_image leaves it once its registry answered."""
    return store.create(BaseImage(name="py", org=ORG, image_url="127.0.0.1:5000/python:3.11",
                                  status=FunctionStatus.READY.value, digest="sha256:" + "0" * 64))


def function_of(fn, **fields) -> tuple[Function, FunctionSource]:
    source = package(fn)
    return Function(name=fn.__name__, org=ORG, handler=source.handler, requirements=source.requirements,
                    **fields), source


def test_a_function_whose_requirements_are_installed_runs_in_the_host_environment(images, store):
    function, source = function_of(validates)
    assert JSONSCHEMA in source.requirements  # detected from the import in its code

    environment = images.environment(function, source)

    assert environment.id == HOST_ENVIRONMENT
    assert environment.python == sys.executable
    assert JSONSCHEMA in environment.requirements
    assert not (store.path.parent / "envs").exists()  # nothing was built


def test_an_images_requirements_come_first_and_its_pins_win(images, store):
    store.create(Image(name="tools", org=ORG, base_image="py", requirements=[JSONSCHEMA],
                       status=FunctionStatus.READY.value))
    function, source = function_of(validates, image_name="tools")
    source.requirements = ["jsonschema>=1", "cloudpickle>=1"]  # the image's pin replaces the first

    environment = images.environment(function, source)

    assert environment.id == HOST_ENVIRONMENT
    assert sorted(environment.requirements) == sorted([JSONSCHEMA, "cloudpickle>=1"])


def test_a_function_on_an_image_that_does_not_exist_is_not_found(images):
    function, source = function_of(validates, image_name="missing")
    with pytest.raises(NotFoundError, match="missing"):
        images.environment(function, source)


@pytest.mark.parametrize("settings", [{}, {"plugin_options": {"oci": {"base_image": "127.0.0.1:5000/py:1"}}}],
                         ids=["no options", "oci options without a registry"])
def test_a_function_image_needs_a_registry(store, settings):
    manager = manager_for(store, **settings)
    try:
        function, source = function_of(validates)
        with pytest.raises(DeployError) as info:
            manager.function_image(function, source)
        message = str(info.value)
        assert "registry" in message
        assert 'plugin_options["oci"]["registry"]' in message and "DISPATCH_REGISTRY" in message
    finally:
        manager.close()


def test_every_oci_call_returns_the_same_builder(store):
    # made lazily and once, even when several threads ask at the same moment; nothing is
    # contacted until something is built, so an address no one listens on will do
    manager = manager_for(store, plugin_options={"oci": {"registry": "127.0.0.1:9"}})
    try:
        found: list[OciBuilder] = []
        start = threading.Barrier(4)

        def ask() -> None:
            start.wait(timeout=30)
            found.append(manager.oci())

        threads = [threading.Thread(target=ask) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert len(found) == 4 and all(builder is found[0] for builder in found)
        assert isinstance(found[0], OciBuilder) and found[0] is manager.oci()
        assert found[0].address == "127.0.0.1:9"
    finally:
        manager.close()


def test_with_oci_images_the_environment_builder_is_the_oci_builder(store):
    manager = manager_for(store, images="oci", plugin_options={"oci": {"registry": "127.0.0.1:9"}})
    try:
        assert manager.oci() is manager.environments  # one builder, one registry connection
    finally:
        manager.close()


@pytest.mark.parametrize("name, url, language, error", [
    ("bad name", "127.0.0.1:5000/python:3.11", "python3", "not a valid base image name"),
    ("py", "127.0.0.1:5000/python:3.11", "ruby", "not supported"),
    ("py", "python:3.11", "python3", "does not name a registry"),
    ("py", "", "python3", "does not name a registry"),
])
def test_create_base_image_refuses_bad_requests_and_stores_nothing(images, name, url, language, error):
    with pytest.raises(InvalidRequestError, match=error):
        images.create_base_image(name, url, org=ORG, language=language)
    assert images.list_base_images(ORG) == []


@pytest.mark.parametrize("request_, error", [
    (dict(name="bad name"), "not a valid image name"),
    (dict(requirements=["requests>>2"]), "not a valid requirement: 'requests>>2'"),
    (dict(requirements=["jsonschema", "not a requirement!"]), "not a valid requirement"),
    (dict(system_packages=["Curl"]), "not a valid Debian package name: 'Curl'"),
    (dict(system_packages=["curl;rm -rf /"]), "not a valid Debian package name"),
    (dict(system_packages=["-curl"]), "not a valid Debian package name"),
    (dict(system_packages=["c"]), "not a valid Debian package name"),  # Debian names have two or more
], ids=["name", "specifier", "text", "uppercase", "shell", "dash", "short"])
def test_create_image_refuses_bad_requests_and_stores_nothing(images, ready_base, request_, error):
    arguments = {"name": "tools", "base": "py", **request_}
    with pytest.raises(InvalidRequestError, match=error):
        images.create_image(org=ORG, **arguments)
    assert images.list_images(ORG) == []


def test_create_image_on_a_missing_base_is_not_found_and_stores_nothing(images):
    with pytest.raises(NotFoundError, match="nowhere"):
        images.create_image("tools", "nowhere", org=ORG, requirements=[JSONSCHEMA])
    assert images.list_images(ORG) == []


def test_create_image_on_a_base_that_is_not_ready_is_a_conflict(images, store):
    store.create(BaseImage(name="broken", org=ORG, image_url="127.0.0.1:5000/python:3.11",
                           status=FunctionStatus.ERROR.value, reason="manifest unknown"))
    with pytest.raises(ConflictError, match="manifest unknown"):
        images.create_image("tools", "broken", org=ORG)
    assert images.list_images(ORG) == []
