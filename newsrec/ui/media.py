"""The dashboard serves pictures and nothing else.

Gradio's file route serves whatever lies under `allowed_paths`, by absolute path; given the corpus folder
it handed out news.jsonl, users.jsonl (every reader's history) and any SVG or HTML planted there, and put
absolute paths into the page. Instead, the app gets one route of its own, `/newsrec-media/<name>`, over a
single folder of checked raster pictures (an ingested corpus's `media/`, filled at ingest by
newsrec/data/media.py; the demo's `assets/demo/images`, PNGs made by assets/build_demo_images.py):

- a name must be a plain file name with a .jpg/.png/.webp suffix, directly in that folder, no symlink;
- the response's Content-Type comes from that suffix, with `X-Content-Type-Options: nosniff` (a middleware
  adds nosniff to every response of the app) so a browser never reinterprets a file as HTML or script;
- Gradio's `allowed_paths` stays empty, so its file routes serve none of our files (403).

Card URLs are relative (`newsrec-media/<name>`), so the page works behind a proxy prefix and shows no path.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from newsrec.config import ASSETS_DIR, DEMO_CORPUS
from newsrec.data.corpus import Corpus
from newsrec.data.media import MEDIA, SERVED_SUFFIXES
from newsrec.types import ImageRef

ROUTE = "newsrec-media"
CONTENT_TYPES = {".jpg": "image/jpeg", ".png": "image/png", ".webp": "image/webp"}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}\.(?:jpg|png|webp)")


def media_dir(name: str, root: Path) -> Path:
    """The one folder of pictures the app may serve for corpus `name` in folder `root`."""
    return ASSETS_DIR / "demo" / "images" if name == DEMO_CORPUS else root / MEDIA


def served_file(folder: Path, name: str) -> Path | None:
    """The file `name` names in `folder`, if it is one the app may serve, else None."""
    if not _NAME.fullmatch(name) or Path(name).suffix not in SERVED_SUFFIXES:
        return None
    path = folder / name
    if path.is_symlink() or not path.is_file():
        return None
    return path


def image_linker(corpus: Corpus, allow_remote: bool = False):
    """ImageRef -> relative URL of a served picture (or an http(s) URL when remote images are on), else None."""
    folder = media_dir(corpus.name, corpus.root).resolve()

    def link(image: ImageRef) -> str | None:
        if "://" in image.uri:
            return image.uri if allow_remote and image.uri.startswith(("http://", "https://")) else None
        path = Path(corpus.image_path(image)).resolve()
        if path.parent != folder or served_file(folder, path.name) is None:
            return None  # older corpora's absolute paths: re-ingest to copy their pictures into media/
        return f"{ROUTE}/{path.name}"

    return link


def launch_options(name: str, root: Path) -> dict[str, Any]:
    """Keyword arguments for `Blocks.launch` serving corpus `name` (folder `root`): no Gradio file access,
    the picture route, nosniff everywhere."""
    from starlette.middleware import Middleware
    from starlette.responses import FileResponse, Response
    from starlette.routing import Route

    folder = media_dir(name, root)

    async def picture(request) -> Response:
        path = served_file(folder, request.path_params["name"])
        if path is None:
            return Response("not found", status_code=404, media_type="text/plain")
        headers = {"Cache-Control": "public, max-age=86400", "Content-Disposition": "inline"}
        return FileResponse(path, media_type=CONTENT_TYPES[path.suffix], headers=headers)

    return {
        "allowed_paths": [],
        "app_kwargs": {
            "routes": [Route(f"/{ROUTE}/{{name}}", picture, methods=["GET", "HEAD"])],
            "middleware": [Middleware(NoSniff)],
        },
    }


class NoSniff:
    """ASGI middleware: `X-Content-Type-Options: nosniff` on every HTTP response of the app."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_header(message):
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-content-type-options"]
                message = {**message, "headers": [*headers, (b"x-content-type-options", b"nosniff")]}
            await send(message)

        await self.app(scope, receive, send_with_header)
