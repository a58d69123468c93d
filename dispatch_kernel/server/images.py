"""REST API v1: base-images, images, and one of each (an image POST builds it, and streams the
build log with `Accept: application/x-ndjson`)."""

from __future__ import annotations

import asyncio
import json
from typing import Any, Callable

from jupyter_server.auth.decorator import authorized
from tornado import web
from tornado.iostream import StreamClosedError

from ..model import Image
from .base import ApiError, DispatchHandler


class BaseImagesHandler(DispatchHandler):
    """List base images; register one (READY once its manifest is read, else ERROR)."""

    auth_resource = "dispatch:images"
    path = "base-images"

    @web.authenticated
    @authorized
    async def get(self) -> None:
        bases = await self.call(self.core.images.list_base_images, self.org)
        self.reply({"items": [b.to_dict() for b in bases]})

    @web.authenticated
    @authorized
    async def post(self) -> None:
        spec = self.body("BaseImageCreate")
        base = await self.call(self.core.images.create_base_image, spec["name"], spec["image_url"],
                               language=spec.get("language", "python3"), org=self.org, tags=spec.get("tags"))
        self.created(base.name, base.to_dict())


class BaseImageHandler(DispatchHandler):
    """One base image; forget it (what is in the registry stays)."""

    auth_resource = "dispatch:images"
    path = "base-images/{name}"

    @web.authenticated
    @authorized
    async def get(self, name: str) -> None:
        base = await self.call(self.core.images.get_base_image, name, self.org)
        self.reply(base.to_dict())

    @web.authenticated
    @authorized
    async def delete(self, name: str) -> None:
        await self.call(self.core.images.delete_base_image, name, self.org)
        self.no_content()


class ImagesHandler(DispatchHandler):
    """GET lists images; POST builds one, answering when the build is done: 201 with the image,
    or 422 with the image in ERROR. With `Accept: application/x-ndjson` the build log streams
    as it happens, one JSON object a line ({"log"}), ending with {"image"} or {"error", "image"}."""

    auth_resource = "dispatch:images"
    path = "images"

    @web.authenticated
    @authorized
    async def get(self) -> None:
        images = await self.call(self.core.images.list_images, self.org)
        self.reply({"items": [i.to_dict() for i in images]})

    @web.authenticated
    @authorized
    async def post(self) -> None:
        spec = self.body("ImageCreate")
        if "application/x-ndjson" in self.request.headers.get("Accept", ""):
            await self._stream(spec)
            return
        image = await self._build(spec, None)
        self.created(image.name, image.to_dict())

    async def _build(self, spec: dict[str, Any], progress: Callable[[str], None] | None) -> Image:
        try:
            return await self.call(self.core.images.create_image, spec["name"], spec["base_image"],
                                   requirements=spec.get("requirements"),
                                   system_packages=spec.get("system_packages"),
                                   org=self.org, tags=spec.get("tags"), progress=progress)
        except ApiError as exc:
            if exc.status_code == 422:  # the build failed: the image is left in ERROR
                image = await self.call(self.core.images.get_image, spec["name"], self.org)
                exc.extra = {"image": image.to_dict()}
            raise

    async def _stream(self, spec: dict[str, Any]) -> None:
        loop = asyncio.get_running_loop()
        lines: asyncio.Queue[str | None] = asyncio.Queue()

        def progress(line: str) -> None:  # on the build's thread
            try:
                loop.call_soon_threadsafe(lines.put_nowait, str(line))
            except RuntimeError:  # the loop has closed: the server is stopping
                pass

        build = asyncio.ensure_future(self._build(spec, progress))
        build.add_done_callback(lambda _: lines.put_nowait(None))
        started = closed = False
        while True:
            line = await lines.get()
            if line is None and build.done():
                break
            if line is None or closed:
                continue
            if not started:  # the answer is committed to 200 only once there is a log to stream
                self._start_stream()
                started = True
            try:
                self.write(json.dumps({"log": line}) + "\n")
                await self.flush()
            except StreamClosedError:
                closed = True  # the build goes on; its outcome is in GET images/{name}
        if not started:
            image = build.result()  # an error before any log line is an ordinary error answer
            self._start_stream()
            self.finish(json.dumps({"image": image.to_dict()}) + "\n")
            return
        try:
            last: dict[str, Any] = {"image": build.result().to_dict()}
        except ApiError as exc:
            last = {"error": {"code": exc.status_code, "message": exc.message}, **exc.extra}
        except Exception as exc:
            last = {"error": {"code": 500, "message": f"internal error: {type(exc).__name__}: {exc}"}}
        if not closed:
            try:
                self.finish(json.dumps(last) + "\n")
            except StreamClosedError:
                pass

    def _start_stream(self) -> None:
        self.set_status(200)
        self.set_header("Content-Type", "application/x-ndjson")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")


class ImageHandler(DispatchHandler):
    """One image; forget it (functions built on it keep running)."""

    auth_resource = "dispatch:images"
    path = "images/{name}"

    @web.authenticated
    @authorized
    async def get(self, name: str) -> None:
        image = await self.call(self.core.images.get_image, name, self.org)
        self.reply(image.to_dict())

    @web.authenticated
    @authorized
    async def delete(self, name: str) -> None:
        await self.call(self.core.images.delete_image, name, self.org)
        self.no_content()


HANDLERS = [BaseImagesHandler, BaseImageHandler, ImagesHandler, ImageHandler]
