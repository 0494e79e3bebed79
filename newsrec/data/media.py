"""Pictures of an ingested corpus, copied into its own `media/` folder at ingest.

The dashboard serves that folder and nothing else (see newsrec/ui/media.py), and the models read images
from it, so neither ever touches a path outside the corpus. Each picture has already passed
`images.check_image`; JPEG, PNG and WebP are copied byte for byte, any other format (GIF, BMP, TIFF, ...)
is re-encoded as PNG. Files are named by the sha256 of their bytes, so re-ingesting is free and two items
showing one photo share one file. A copy rather than a hard link: a later edit of the source file must not
change, unchecked, a picture the app serves.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from pathlib import Path

from PIL import Image

from newsrec.images import load_image

MEDIA = "media"  # folder name inside the corpus; stored image uris are "media/<sha256>.<ext>"
SERVED_FORMATS = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp"}
SERVED_SUFFIXES = frozenset(SERVED_FORMATS.values())


def publish_image(path: Path, media_dir: Path) -> str:
    """Copy (or re-encode) a checked local image into `media_dir`; returns its uri relative to the corpus."""
    with Image.open(path) as image:
        kind = image.format
    if kind in SERVED_FORMATS:
        data, suffix = path.read_bytes(), SERVED_FORMATS[kind]
    else:
        buffer = io.BytesIO()
        load_image(path).save(buffer, "PNG")
        data, suffix = buffer.getvalue(), ".png"
    name = hashlib.sha256(data).hexdigest() + suffix
    target = media_dir / name
    if not target.is_file():
        media_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=media_dir, suffix=".tmp", delete=False) as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(handle.name, 0o644)
        os.replace(handle.name, target)
    return f"{MEDIA}/{name}"
