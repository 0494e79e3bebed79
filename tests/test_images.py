"""Safe image loading, VL resize arithmetic, content hashes and the SSRF guard (no network anywhere)."""

from __future__ import annotations

import hashlib
import io
import math
import struct
import zlib

import pytest
from PIL import Image

from newsrec import images
from newsrec.config import Settings
from newsrec.errors import InputError
from newsrec.images import (
    ImageError,
    check_image,
    fetch_remote_image,
    image_hash,
    is_public_address,
    load_image,
    smart_resize,
)


def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def noisy_jpeg(width: int = 64, height: int = 48) -> bytes:
    # random pixels so the entropy-coded data is long enough to truncate meaningfully
    return encode(Image.frombytes("RGB", (width, height), bytes(range(256)) * (width * height * 3 // 256 + 1)), "JPEG")


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height but carries almost no pixel data: decoding it would fail."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


# --- load_image / check_image -------------------------------------------------------------------


def test_rgb_jpeg_loads_from_path_and_bytes(tmp_path):
    data = encode(Image.new("RGB", (40, 30), (10, 200, 30)), "JPEG", quality=95)
    (tmp_path / "a.jpg").write_bytes(data)
    for source in (tmp_path / "a.jpg", str(tmp_path / "a.jpg"), data):
        image = load_image(source)
        assert image.mode == "RGB" and image.size == (40, 30)
        r, g, b = image.getpixel((20, 15))
        assert g > 180 and r < 40 and b < 60
    assert check_image(tmp_path / "a.jpg") is None


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    cmyk = Image.new("CMYK", (32, 32), (0, 255, 255, 0))  # pure red in CMYK
    path = tmp_path / "cmyk.jpg"
    path.write_bytes(encode(cmyk, "JPEG", quality=95))
    assert Image.open(path).mode == "CMYK"
    image = load_image(path)
    assert image.mode == "RGB"
    r, g, b = image.getpixel((16, 16))
    assert r > 200 and g < 60 and b < 60


def test_alpha_is_composited_on_white(tmp_path):
    rgba = Image.new("RGBA", (20, 10), (0, 0, 0, 0))  # transparent black
    for x in range(10):
        for y in range(10):
            rgba.putpixel((x, y), (200, 0, 0, 255))  # opaque red left half
    path = tmp_path / "alpha.png"
    path.write_bytes(encode(rgba, "PNG"))
    image = load_image(path)
    assert image.mode == "RGB"
    assert image.getpixel((5, 5)) == (200, 0, 0)
    assert image.getpixel((15, 5)) == (255, 255, 255)  # not black: transparency shows the page


@pytest.mark.parametrize("mode", ["LA", "P", "L", "I;16"])
def test_other_modes_become_rgb(tmp_path, mode):
    if mode == "P":
        source = Image.new("P", (8, 8), 0)
        source.putpalette([0, 0, 0] * 256)
        data = encode(source, "PNG", transparency=0)  # palette index 0 transparent
        expected = (255, 255, 255)
    elif mode == "LA":
        data = encode(Image.new("LA", (8, 8), (0, 0)), "PNG")
        expected = (255, 255, 255)
    elif mode == "I;16":
        source = Image.new("I;16", (8, 8), 0)
        source.putpixel((0, 0), 65535)
        data = encode(source, "PNG")
        expected = (0, 0, 0)  # background pixel after scaling to 0..255
    else:
        data = encode(Image.new("L", (8, 8), 77), "PNG")
        expected = (77, 77, 77)
    image = load_image(data)
    assert image.mode == "RGB"
    assert image.getpixel((4, 4)) == expected


def test_exif_orientation_is_applied(tmp_path):
    wide = Image.new("RGB", (40, 20), (255, 255, 255))
    for y in range(20):
        wide.putpixel((0, y), (0, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = tmp_path / "rotated.jpg"
    path.write_bytes(encode(wide, "JPEG", exif=exif))
    assert Image.open(path).size == (40, 20)
    image = load_image(path)
    assert image.size == (20, 40)  # displayed upright, as a phone shows it
    assert sum(image.getpixel((10, 0))) < 200  # the dark left column is now the top row


def test_truncated_jpeg_is_rejected(tmp_path):
    data = noisy_jpeg()
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="truncated"):
        load_image(path)
    assert "truncated" in check_image(path)


def test_zero_byte_and_missing_and_text_files(tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "notes.jpg").write_text("this is not a photo\n")
    assert "empty" in check_image(tmp_path / "empty.jpg")
    assert "not an image" in check_image(tmp_path / "notes.jpg")
    assert "no such file" in check_image(tmp_path / "absent.jpg")
    assert "not a file" in check_image(tmp_path)
    with pytest.raises(ImageError, match="empty"):
        load_image(b"")
    with pytest.raises(InputError):  # ImageError is an InputError: the CLI prints it as one line
        load_image(tmp_path / "notes.jpg")


def test_huge_dimensions_rejected_from_the_header(tmp_path):
    # The file holds almost no pixel data: a decode attempt would say "truncated", so "too large" proves
    # the refusal came from the header, before decoding.
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header_only(30_000, 30_000))
    with pytest.raises(ImageError, match="too large"):
        load_image(path)
    assert "too large" in check_image(path)
    path.write_bytes(png_header_only(3000, 2000))
    assert "too large (3000x2000 px" in check_image(path, max_pixels=5_000_000)
    assert "truncated" in check_image(path)  # under the cap it is decoded, and found to be cut short


def test_explicit_pixel_cap(tmp_path):
    data = encode(Image.new("RGB", (100, 100)), "PNG")
    assert load_image(data, max_pixels=10_000).size == (100, 100)
    with pytest.raises(ImageError, match=r"100x100 px, limit 9,999"):
        load_image(data, max_pixels=9_999)


def test_image_hash_is_sha256_of_bytes(tmp_path):
    path = tmp_path / "a.png"
    path.write_bytes(encode(Image.new("RGB", (4, 4), (1, 2, 3)), "PNG"))
    first = image_hash(path)
    assert first == hashlib.sha256(path.read_bytes()).hexdigest()
    path.write_bytes(encode(Image.new("RGB", (4, 4), (1, 2, 4)), "PNG"))
    assert image_hash(path) != first


# --- smart_resize -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "height,width",
    [
        (1, 1),
        (10, 10),
        (28, 28),
        (259, 460),
        (480, 640),
        (1080, 1920),
        (4000, 3000),
        (12000, 9000),
        (32, 6400),
        (100, 20000),
        (20000, 100),
        (7, 1400),
        (333, 777),
        (47, 7000),
    ],
)
def test_smart_resize_invariants(height, width):
    factor, min_pixels, max_pixels = 32, 4 * 32 * 32, 256 * 32 * 32
    new_h, new_w = smart_resize(height, width, factor, min_pixels, max_pixels)
    assert new_h % factor == 0 and new_w % factor == 0
    assert min_pixels <= new_h * new_w <= max_pixels
    assert max(new_h, new_w) / min(new_h, new_w) <= 200
    if min(height, width) >= 4 * factor and max(height, width) / min(height, width) < 20:
        # ordinary photos keep their shape to within the rounding of one factor per side
        assert abs(math.log((new_w / new_h) / (width / height))) < 0.15


def test_smart_resize_known_values():
    assert smart_resize(224, 448) == (224, 448)  # already multiples and within budget: unchanged
    assert smart_resize(259, 460) == (256, 448)  # the NewsImages photo size, rounded to the nearest multiples
    assert smart_resize(10, 10) == (64, 64)  # tiny: scaled up to min_pixels = 4 patches
    h, w = smart_resize(3000, 4000)  # large: scaled down under the budget, 3:4 kept
    assert h * w <= 256 * 32 * 32 and (h, w) == (416, 576)
    assert smart_resize(1000, 1000, factor=28, min_pixels=56 * 56, max_pixels=28 * 28 * 100) == (280, 280)


def test_smart_resize_agrees_with_the_processor():
    """Same answer as the Qwen2-VL image processor in transformers wherever that one keeps its own bounds (area,
    200:1 ratio), and our output is always a fixed point of it: the processor never resizes (or rejects) it."""
    reference = pytest.importorskip("transformers.models.qwen2_vl.image_processing_pil_qwen2_vl").smart_resize
    sizes = [1, 5, 15, 16, 17, 31, 32, 33, 47, 100, 259, 460, 512, 777, 1080, 1920, 2500, 4000, 7000]
    bounds = [(32, 4 * 32 * 32, 256 * 32 * 32), (32, 4096, 1280 * 32 * 32), (28, 56 * 56, 28 * 28 * 64)]
    compared = 0
    for factor, min_pixels, max_pixels in bounds:
        for height in sizes:
            for width in sizes:
                if max(height, width) / min(height, width) > 200:
                    continue
                ours = smart_resize(height, width, factor, min_pixels, max_pixels)
                theirs = reference(height, width, factor, min_pixels, max_pixels)
                if min_pixels <= theirs[0] * theirs[1] <= max_pixels and max(theirs) / min(theirs) <= 200:
                    assert ours == theirs, (height, width, factor)
                    compared += 1
                assert reference(*ours, factor, min_pixels, max_pixels) == ours
    assert compared > 900


def test_smart_resize_rejects_extreme_ratio_and_bad_sizes():
    assert smart_resize(10, 2000)  # exactly 200:1 is allowed
    with pytest.raises(ImageError, match="aspect ratio 201:1"):
        smart_resize(10, 2010)
    with pytest.raises(ImageError, match="aspect ratio"):
        smart_resize(50_000, 100)
    with pytest.raises(ImageError, match="positive"):
        smart_resize(0, 10)
    with pytest.raises(ImageError, match="impossible"):
        smart_resize(100, 100, min_pixels=10_000, max_pixels=5_000)


# --- SSRF guard ---------------------------------------------------------------------------------


@pytest.mark.parametrize("address", ["8.8.8.8", "93.184.216.34", "2606:4700:4700::1111"])
def test_public_addresses(address):
    assert is_public_address(address)


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "240.0.0.1",
        "255.255.255.255",
        "192.0.2.1",
        "::1",
        "::",
        "fe80::1",
        "fe80::1%eth0",
        "fc00::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "2002:7f00:1::1",
        "64:ff9b::a00:1",
        "2001:db8::1",
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",
        "localhost",
        "not an address",
        "",
    ],
)
def test_non_public_addresses(address):
    assert not is_public_address(address)


class FakeResponse:
    def __init__(self, status=200, headers=None, body=b""):
        self.status, self.reason = status, "OK" if status == 200 else "Other"
        self.headers = {key.lower(): value for key, value in (headers or {}).items()}
        self.stream = io.BytesIO(body)

    def getheader(self, name, default=None):
        return self.headers.get(name.lower(), default)

    def read(self, size=-1):
        return self.stream.read(size)

    read1 = read


class FakeNetwork:
    """Stands in for DNS and HTTP: records every connection the guard lets through."""

    def __init__(self, dns: dict[str, list[str]], responses: list[FakeResponse]):
        self.dns, self.responses, self.connections = dns, list(responses), []

    def resolve(self, host, port):
        return self.dns[host]

    def connect(self, scheme, host, port, address, timeout):
        self.connections.append((scheme, host, port, address))
        network = self

        class Connection:
            sock = None

            def request(self, method, target, headers=None):
                self.target = target

            def getresponse(self):
                return network.responses.pop(0)

            def close(self):
                pass

        return Connection()


@pytest.fixture
def remote_on() -> Settings:
    return Settings(allow_remote_images=True)


@pytest.fixture
def no_sockets(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the guard opened a socket it should have refused")

    monkeypatch.setattr(images.socket, "create_connection", refuse)


def install(monkeypatch, network: FakeNetwork) -> FakeNetwork:
    monkeypatch.setattr(images, "_resolve", network.resolve)
    monkeypatch.setattr(images, "_connect", network.connect)
    return network


def test_remote_off_refuses_before_resolving(monkeypatch):
    monkeypatch.setattr(images, "_resolve", lambda host, port: pytest.fail("resolved a host while remote is off"))
    with pytest.raises(ImageError, match="remote images are off"):
        fetch_remote_image("https://example.com/a.jpg", Settings(allow_remote_images=False))


@pytest.mark.parametrize(
    "url,reason",
    [
        ("file:///etc/passwd", "only http and https"),
        ("ftp://example.com/a.jpg", "only http and https"),
        ("gopher://example.com/", "only http and https"),
        ("http:///nohost", "no host"),
        ("http://user:pw@example.com/a.jpg", "credentials"),
    ],
)
def test_bad_urls_refused(monkeypatch, remote_on, no_sockets, url, reason):
    monkeypatch.setattr(images, "_resolve", lambda host, port: ["93.184.216.34"])
    with pytest.raises(ImageError, match=reason):
        fetch_remote_image(url, remote_on)


@pytest.mark.parametrize(
    "addresses", [["127.0.0.1"], ["10.0.0.7"], ["169.254.169.254"], ["93.184.216.34", "192.168.0.10"], ["::1"]]
)
def test_private_resolution_refused_before_connect(monkeypatch, remote_on, no_sockets, addresses):
    network = install(monkeypatch, FakeNetwork({"example.com": addresses}, []))
    with pytest.raises(ImageError, match="non-public"):
        fetch_remote_image("http://example.com/photo.jpg", remote_on)
    assert network.connections == []


def test_literal_private_ip_url_refused(monkeypatch, remote_on, no_sockets):
    monkeypatch.setattr(images, "_resolve", lambda host, port: [host])  # getaddrinfo echoes literal IPs
    for url in ("http://127.0.0.1:8080/a.png", "http://[::1]/a.png", "http://169.254.169.254/latest/meta-data"):
        with pytest.raises(ImageError, match="non-public"):
            fetch_remote_image(url, remote_on)


def test_download_is_pinned_to_the_checked_address(monkeypatch, remote_on):
    png = encode(Image.new("RGB", (3, 3), (9, 9, 9)), "PNG")
    network = install(
        monkeypatch,
        FakeNetwork({"cdn.example": ["93.184.216.34"]}, [FakeResponse(200, {"Content-Type": "image/png"}, png)]),
    )
    assert fetch_remote_image("https://cdn.example/x.png?w=3", remote_on) == png
    assert network.connections == [("https", "cdn.example", 443, "93.184.216.34")]
    assert load_image(png).size == (3, 3)


def test_redirect_to_private_address_refused(monkeypatch, remote_on):
    network = install(
        monkeypatch,
        FakeNetwork(
            {"news.example": ["93.184.216.34"], "internal.example": ["10.0.0.5"]},
            [FakeResponse(302, {"Location": "http://internal.example/secret.png"})],
        ),
    )
    with pytest.raises(ImageError, match="internal.example resolves to non-public 10.0.0.5"):
        fetch_remote_image("http://news.example/a.jpg", remote_on)
    assert len(network.connections) == 1  # the second hop was never contacted


def test_redirects_followed_by_hand_up_to_the_limit(monkeypatch, remote_on):
    png = encode(Image.new("RGB", (2, 2)), "PNG")
    hop = FakeResponse(301, {"Location": "/next.png"})
    network = install(
        monkeypatch,
        FakeNetwork(
            {"a.example": ["93.184.216.34"]},
            [hop, FakeResponse(302, {"Location": "/n2"}), FakeResponse(200, {"Content-Type": "image/png"}, png)],
        ),
    )
    assert fetch_remote_image("http://a.example/start.png", remote_on) == png
    assert len(network.connections) == 3
    network = install(
        monkeypatch, FakeNetwork({"a.example": ["93.184.216.34"]}, [FakeResponse(302, {"Location": "/x"})] * 10)
    )
    with pytest.raises(ImageError, match="more than 3 redirects"):
        fetch_remote_image("http://a.example/loop", remote_on)
    assert len(network.connections) == 4


@pytest.mark.parametrize(
    "response,reason",
    [
        (FakeResponse(200, {"Content-Type": "text/html"}, b"<html>"), "not an image"),
        (FakeResponse(200, {}, b"\x89PNG"), "not an image"),
        (FakeResponse(404, {"Content-Type": "text/html"}), "HTTP 404"),
        (FakeResponse(200, {"Content-Type": "image/jpeg", "Content-Length": str(11 * 2**20)}), "too large"),
        (FakeResponse(200, {"Content-Type": "image/jpeg"}, b"x" * (10 * 2**20 + 1)), "too large"),  # streamed cap
        (FakeResponse(200, {"Content-Type": "image/jpeg"}, b""), "empty"),
    ],
)
def test_bad_responses_refused(monkeypatch, remote_on, response, reason):
    install(monkeypatch, FakeNetwork({"a.example": ["93.184.216.34"]}, [response]))
    with pytest.raises(ImageError, match=reason):
        fetch_remote_image("http://a.example/a.jpg", remote_on)


def test_connection_uses_pinned_address_not_a_second_lookup(monkeypatch):
    """The real _connect: the socket goes to the checked address while Host/SNI stay the name (anti-rebinding)."""
    opened = []

    def fake_create_connection(address, timeout=None, source_address=None):
        opened.append(address)
        raise OSError("no network in tests")

    monkeypatch.setattr(images.socket, "create_connection", fake_create_connection)
    monkeypatch.setattr(images.socket, "getaddrinfo", lambda *a, **k: pytest.fail("second DNS lookup"))
    for scheme, port in (("http", 80), ("https", 443)):
        connection = images._connect(scheme, "news.example", port, "93.184.216.34", 1.0)
        assert connection.host == "news.example"
        with pytest.raises(OSError, match="no network"):
            connection.connect()
    assert opened == [("93.184.216.34", 80), ("93.184.216.34", 443)]
