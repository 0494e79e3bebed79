"""Opening images safely and sizing them for vision-language models.

Every image a model or the dashboard sees goes through `load_image`: it refuses decompression bombs
before decoding, applies EXIF rotation, and always returns RGB (alpha composited on white). Ingest uses
`check_image` to drop unusable files with a reason. Remote images are opt-in (`allow_remote_images`):
`fetch_remote_image` guards against SSRF by resolving the host itself, refusing any non-public address,
pinning the connection to the checked address and following at most a few redirects by hand.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import io
import ipaddress
import logging
import math
import socket
import threading
import time
import warnings
from pathlib import Path
from urllib.parse import urljoin, urlsplit

from PIL import Image, ImageOps, UnidentifiedImageError

from newsrec.config import Settings
from newsrec.errors import InputError

__all__ = [
    "ImageError",
    "load_image",
    "load_image_uri",
    "check_image",
    "smart_resize",
    "image_hash",
    "is_public_address",
    "fetch_remote_image",
]

log = logging.getLogger(__name__)

MAX_DECODE_PIXELS = 50_000_000  # ~7000x7000: larger than any news photo, small enough to decode in RAM (150 MB RGB)
MAX_FILE_BYTES = 50 * 1024 * 1024  # local files
MAX_REMOTE_BYTES = 10 * 1024 * 1024  # downloads are streamed and cut off here
REMOTE_TIMEOUT_S = 10.0  # per connect / read; the whole download, redirects included, gets 3x this
MAX_REDIRECTS = 3
MAX_ASPECT_RATIO = 200  # beyond this a picture cannot be tiled into patches sensibly (Qwen-VL's own limit)
DEFAULT_FACTOR = 32  # Qwen3-VL: 16-pixel patches merged 2x2
DEFAULT_MAX_PIXELS = 256 * 32 * 32  # 256 visual tokens, as Settings.image_max_pixels

# Pillow's own guard (warning above the limit, error above twice the limit) as a second line of defence;
# load_image checks the header size explicitly before decoding anyway.
Image.MAX_IMAGE_PIXELS = MAX_DECODE_PIXELS


class ImageError(InputError):
    """An image that cannot be used: missing, not an image, corrupt, truncated, too large, or refused."""


# --- local images ------------------------------------------------------------------------------


def load_image(source: str | Path | bytes, max_pixels: int = MAX_DECODE_PIXELS) -> Image.Image:
    """Decode an image file (or its bytes) into an upright RGB picture, or raise ImageError with the reason."""
    name = "image bytes" if isinstance(source, (bytes, bytearray)) else str(source)
    image = _open(source, name, max_pixels)
    try:
        image.load()  # the full decode; truncated or corrupt data fails here
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise ImageError(f"{name}: corrupt or truncated image ({_reason(error)})") from None
    try:
        image = ImageOps.exif_transpose(image)
    except Exception as error:  # noqa: BLE001 - a broken EXIF block is no reason to lose the picture
        log.warning("%s: ignoring unreadable EXIF orientation (%s)", name, error)
    return _to_rgb(image)


def check_image(path: str | Path, max_pixels: int = MAX_DECODE_PIXELS) -> str | None:
    """The problem that makes a local image unusable, or None when it decodes cleanly.

    Decodes the whole file (truncation only shows at the end of the data), but JPEGs at 1/8 scale via
    draft mode, which still reads every byte while skipping most of the work.
    """
    try:
        image = _open(path, str(path), max_pixels)
        image.draft("RGB", (max(1, image.width // 8), max(1, image.height // 8)))
        image.load()
    except ImageError as error:
        return str(error).removeprefix(f"{path}: ")
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        return f"corrupt or truncated image ({_reason(error)})"
    return None


def _open(source: str | Path | bytes, name: str, max_pixels: int) -> Image.Image:
    """Read only the header, and refuse the image before any pixel is decoded when it is too large."""
    if isinstance(source, (bytes, bytearray)):
        if not source:
            raise ImageError(f"{name}: empty (0 bytes)")
        stream: io.BytesIO | Path = io.BytesIO(source)
    else:
        path = Path(source)
        if not path.is_file():
            raise ImageError(f"{name}: no such file" if not path.exists() else f"{name}: not a file")
        size = path.stat().st_size
        if size == 0:
            raise ImageError(f"{name}: empty file (0 bytes)")
        if size > MAX_FILE_BYTES:
            raise ImageError(f"{name}: file too large ({size / 2**20:.0f} MB > {MAX_FILE_BYTES // 2**20} MB)")
        stream = path
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(stream)
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image (unrecognised format)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"{name}: image too large (over {Image.MAX_IMAGE_PIXELS:,} pixels)") from None
    except (OSError, ValueError, SyntaxError) as error:
        raise ImageError(f"{name}: unreadable image ({_reason(error)})") from None
    width, height = image.size
    if width <= 0 or height <= 0:
        raise ImageError(f"{name}: image has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise ImageError(f"{name}: image too large ({width}x{height} px, limit {max_pixels:,} pixels)")
    return image


def _to_rgb(image: Image.Image) -> Image.Image:
    """RGB for every mode: transparency is composited on white (a photo on a page), not dropped to black."""
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        # 16-bit / float greyscale: scale into 0..255 before the 8-bit conversion
        low, high = image.getextrema()
        scale = 255.0 / (high - low) if high > low else 1.0
        image = image.point(lambda value: (value - low) * scale).convert("L")
    return image if image.mode == "RGB" else image.convert("RGB")


def _reason(error: BaseException) -> str:
    return str(error).strip() or type(error).__name__


def smart_resize(
    height: int,
    width: int,
    factor: int = DEFAULT_FACTOR,
    min_pixels: int = 4 * DEFAULT_FACTOR * DEFAULT_FACTOR,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> tuple[int, int]:
    """Target (height, width) for a VL model: both multiples of `factor`, area within [min_pixels, max_pixels],
    aspect ratio kept as closely as the rounding allows.

    Qwen-VL's published recipe: round each side to the nearest multiple of the factor; if the area is then
    too large, scale both sides down by sqrt(area / max_pixels) and round down; if too small, scale up by
    sqrt(min_pixels / area) and round up. Sides never go below one factor. Hand-written because
    qwen-vl-utils cannot be used here; tests check it against the transformers image processor's copy.
    """
    if height <= 0 or width <= 0:
        raise ImageError(f"image size must be positive, got {height}x{width}")
    if factor <= 0 or min_pixels > max_pixels or max_pixels < factor * factor:
        raise ImageError(f"impossible resize bounds: factor={factor}, min_pixels={min_pixels}, max_pixels={max_pixels}")
    ratio = max(height, width) / min(height, width)
    if ratio > MAX_ASPECT_RATIO:
        raise ImageError(
            f"aspect ratio {ratio:.0f}:1 of a {height}x{width} image is above the limit of {MAX_ASPECT_RATIO}:1"
        )
    new_h = round(height / factor) * factor  # 0 for a side under half a factor: the min branch scales it up
    new_w = round(width / factor) * factor
    if new_h * new_w > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        new_h = max(factor, math.floor(height / beta / factor) * factor)
        new_w = max(factor, math.floor(width / beta / factor) * factor)
    elif new_h * new_w < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        new_h = math.ceil(height * beta / factor) * factor
        new_w = math.ceil(width * beta / factor) * factor
    new_h, new_w = max(factor, new_h), max(factor, new_w)
    # Beyond the published recipe: rounding a very thin image can push it over the budget (its short side
    # clamped to one factor) or past the 200:1 ratio that the processor itself rejects; trim the long side.
    short, long = min(new_h, new_w), max(new_h, new_w)
    long = min(long, max(factor, max_pixels // short // factor * factor), MAX_ASPECT_RATIO * short)
    new_h, new_w = (long, short) if new_h > new_w else (short, long)
    return new_h, new_w


def image_hash(path: str | Path) -> str:
    """sha256 of the file's bytes: a cache key that changes exactly when the picture does."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_image_uri(uri: str, settings: Settings, base: str | Path | None = None, **kwargs) -> Image.Image:
    """load_image for an ImageRef uri: a local path (relative to `base`) or, when allowed, an http(s) URL."""
    if "://" in uri:
        return load_image(fetch_remote_image(uri, settings), **kwargs)
    path = Path(uri)
    if base is not None and not path.is_absolute():
        path = Path(base) / path
    return load_image(path, **kwargs)


# --- remote images -----------------------------------------------------------------------------


def is_public_address(address: str) -> bool:
    """True only for globally routable unicast addresses: no private, loopback, link-local (cloud metadata),
    shared, multicast, reserved or unspecified ones, also when wrapped in IPv6 (v4-mapped, 6to4, NAT64 well-known)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip in ipaddress.ip_network("64:ff9b::/96"):
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None and not is_public_address(str(embedded)):
            return False
        if ip.teredo is not None:
            return False
    return ip.is_global and not ip.is_multicast and not ip.is_reserved and not ip.is_unspecified


def _resolve(host: str, port: int) -> list[str]:
    """Every address the host resolves to (tests replace this function; no network in tests)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise ImageError(f"cannot resolve {host!r}: {error}") from None
    return list(dict.fromkeys(info[4][0] for info in infos))


def _checked_target(url: str) -> tuple[str, str, int, str, str]:
    """(scheme, host, port, path+query, pinned address) for a URL that is safe to connect to."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ImageError(f"refusing image URL {url!r}: only http and https are allowed")
    if not parts.hostname:
        raise ImageError(f"refusing image URL {url!r}: no host")
    if parts.username or parts.password:
        raise ImageError(f"refusing image URL {url!r}: credentials in URLs are not allowed")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        raise ImageError(f"refusing image URL {url!r}: bad port") from None
    addresses = _resolve(parts.hostname, port)
    if not addresses:
        raise ImageError(f"cannot resolve {parts.hostname!r}")
    blocked = [address for address in addresses if not is_public_address(address)]
    if blocked:
        # One bad address is enough to refuse: DNS answers can rotate between checking and connecting.
        raise ImageError(f"refusing image URL {url!r}: {parts.hostname} resolves to non-public {', '.join(blocked)}")
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return scheme, parts.hostname, port, target, addresses[0]


def _connect(scheme: str, host: str, port: int, address: str, timeout: float) -> http.client.HTTPConnection:
    """A connection to `address` that still speaks to `host` (Host header, TLS SNI and certificate check).

    Hand-written because no HTTP client we ship lets us pin the checked address: a second DNS lookup at
    connect time could otherwise return a private address (DNS rebinding).
    """
    cls = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
    connection = cls(host, port, timeout=timeout)

    def create_connection(_address, timeout=timeout, source_address=None):
        return socket.create_connection((address, port), timeout, source_address)

    connection._create_connection = create_connection  # the documented-in-source hook HTTPConnection.connect uses
    return connection


def fetch_remote_image(
    url: str,
    settings: Settings,
    max_bytes: int = MAX_REMOTE_BYTES,
    timeout: float = REMOTE_TIMEOUT_S,
    max_redirects: int = MAX_REDIRECTS,
) -> bytes:
    """Download an image over http(s) with the SSRF guard; the bytes are not decoded here (use load_image)."""
    if not settings.allow_remote_images:
        raise ImageError(
            f"refusing image URL {url!r}: remote images are off (set NEWSREC_ALLOW_REMOTE_IMAGES=1 "
            "or pass --allow-remote-images)"
        )
    deadline = time.monotonic() + 3 * timeout  # one budget for everything: a dripping server cannot stretch it
    for _hop in range(max_redirects + 1):
        scheme, host, port, target, address = _checked_target(url)
        connection = _connect(scheme, host, port, address, min(timeout, max(0.01, deadline - time.monotonic())))
        # Socket timeouts apply to each read, so a server sending a byte every few seconds never trips them;
        # this timer shuts the socket at the deadline, which ends whatever read is blocked at that moment.
        watchdog = threading.Timer(max(0.0, deadline - time.monotonic()), _shut, (connection,))
        watchdog.daemon = True
        watchdog.start()
        try:
            connection.request("GET", target, headers={"Accept": "image/*", "User-Agent": "newsrec"})
            response = connection.getresponse()
            if response.status in (301, 302, 303, 307, 308):
                location = response.getheader("Location")
                if not location:
                    raise ImageError(f"{url}: redirect without a Location header")
                url = urljoin(url, location)
                continue  # the next hop is checked from scratch
            if response.status != 200:
                raise ImageError(f"{url}: HTTP {response.status} {response.reason}")
            content_type = (response.getheader("Content-Type") or "").split(";")[0].strip().lower()
            if not content_type.startswith("image/"):
                raise ImageError(f"{url}: not an image (Content-Type {content_type or 'missing'!r})")
            length = response.getheader("Content-Length")
            if length and length.isdigit() and int(length) > max_bytes:
                raise ImageError(f"{url}: too large ({int(length):,} bytes > {max_bytes:,})")
            data = _read_capped(response, max_bytes, url, deadline)
            if not data:
                raise ImageError(f"{url}: empty response")
            return data
        except (OSError, ValueError, http.client.HTTPException) as error:
            if time.monotonic() >= deadline:
                raise ImageError(f"{url}: download too slow (gave up after {3 * timeout:.0f} s)") from None
            raise ImageError(f"{url}: download failed ({_reason(error)})") from None
        finally:
            watchdog.cancel()
            connection.close()
    raise ImageError(f"refusing image URL: more than {max_redirects} redirects")


def _shut(connection: http.client.HTTPConnection) -> None:
    sock = getattr(connection, "sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):  # already closed
            sock.shutdown(socket.SHUT_RDWR)


def _read_capped(response, max_bytes: int, url: str, deadline: float) -> bytes:
    """Stream the body, stopping at the size cap or the deadline (a server dripping bytes must not hang us)."""
    chunks, total = [], 0
    while chunk := response.read1(64 * 1024):  # whatever has arrived, up to 64 KiB: no waiting for a full block
        total += len(chunk)
        if total > max_bytes:
            raise ImageError(f"{url}: too large (over {max_bytes:,} bytes)")
        if time.monotonic() > deadline:
            raise ImageError(f"{url}: download too slow (gave up at the deadline)")
        chunks.append(chunk)
    if time.monotonic() >= deadline:  # the watchdog shut the socket: what arrived is a truncated file
        raise ImageError(f"{url}: download too slow (gave up at the deadline)")
    return b"".join(chunks)
