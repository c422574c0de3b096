"""Inputs the reliability tests make themselves: photos in every awkward encoding, broken files,
a decompression bomb, and a loopback TCP proxy that can take an S3 endpoint down and back up."""

from __future__ import annotations

import io
import socket
import struct
import threading
import time
import zlib

import numpy as np
import pytest
from PIL import Image


def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def gradient_photo(height: int = 96, width: int = 128, seed: int = 0) -> np.ndarray:
    """A smooth colour photo stand-in (JPEG keeps it close to the original)."""
    rng = np.random.default_rng(seed)
    array = np.zeros((height, width, 3), np.uint8)
    array[..., 0] = np.linspace(0, 255, width)[None]
    array[..., 1] = np.linspace(0, 255, height)[:, None]
    array[..., 2] = 90
    array[height // 8: height // 3, width // 10: width // 3] = rng.integers(0, 255, 3)
    return array


def png_bomb(width: int = 50_000, height: int = 50_000) -> bytes:
    """A valid PNG header (and a tiny IDAT) claiming ``width`` x ``height`` RGB pixels."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@pytest.fixture
def photo_zoo() -> dict[str, tuple[str, bytes, np.ndarray | None]]:
    """name -> (file name, bytes, the RGB array a correct decoder returns; None = must be refused).

    Refused: zero-byte, truncated JPEG and PNG, text named .jpg, a 50k x 50k PNG bomb. Converted:
    CMYK JPEG, 16-bit grey PNG, grey, palette, RGBA (transparent half composited on white),
    EXIF-rotated JPEG (orientation 6 = shown rotated 90 degrees clockwise). ``tiny`` decodes but
    is smaller than any crop."""
    photo = gradient_photo()
    rgb = Image.fromarray(photo)
    jpeg = encode(rgb, "JPEG", quality=95)
    png = encode(rgb, "PNG")
    exif = Image.Exif()
    exif[0x0112] = 6
    rgba = np.dstack([photo, np.full(photo.shape[:2], 255, np.uint8)])
    rgba[:, :64, 3] = 0
    composited = photo.copy()
    composited[:, :64] = 255
    grey16 = photo[..., 0].astype(np.uint16) * 257
    grey = np.asarray(rgb.convert("L"))
    palette = rgb.convert("P", palette=Image.ADAPTIVE, colors=256)
    return {
        "good": ("good.jpg", jpeg, photo),
        "zero_byte": ("zero.jpg", b"", None),
        "truncated_jpeg": ("cut.jpg", jpeg[: len(jpeg) // 2], None),
        "truncated_png": ("cut.png", png[: len(png) // 2], None),
        "text_as_jpeg": ("notes.jpg", b"not an image, just a text file\n" * 20, None),
        "bomb": ("bomb.png", png_bomb(), None),
        "cmyk_jpeg": ("cmyk.jpg", encode(rgb.convert("CMYK"), "JPEG", quality=95), photo),
        "png_16bit": ("deep.png", encode(Image.fromarray(grey16), "PNG"), np.stack([photo[..., 0]] * 3, -1)),
        "grayscale": ("grey.png", encode(Image.fromarray(grey), "PNG"), np.stack([grey] * 3, -1)),
        "palette": ("palette.png", encode(palette, "PNG"), np.asarray(palette.convert("RGB"))),
        "rgba": ("alpha.png", encode(Image.fromarray(rgba, "RGBA"), "PNG"), composited),
        "exif_rotated": ("rotated.jpg", encode(rgb, "JPEG", quality=95, exif=exif.tobytes()), np.rot90(photo, k=-1)),
        "tiny": ("tiny.png", encode(Image.fromarray(gradient_photo(12, 16)), "PNG"), gradient_photo(12, 16)),
    }


class TcpOutage:
    """A loopback TCP proxy in front of an S3 endpoint, to take the endpoint down mid-run.

    ``down()`` drops every open connection and from then on resets each new one at once
    (counting the attempts and their times: the client's retries and back-off); ``up()``
    forwards again. The storage behind it keeps its state, as a restarted MinIO keeps its disk.
    """

    def __init__(self, upstream_port: int):
        self.upstream = ("127.0.0.1", upstream_port)
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.is_down = False
        self.refused_at: list[float] = []
        self.forwarded = 0
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @staticmethod
    def _reset(sock: socket.socket) -> None:
        # shutdown() first: a pump thread blocked in recv() on this socket keeps it alive through a
        # bare close(), so the peer would see neither FIN nor RST and wait forever (seen once in CI).
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            sock.close()
        except OSError:
            pass

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.is_down:
                self.refused_at.append(time.monotonic())
                self._reset(client)
                continue
            try:
                server = socket.create_connection(self.upstream)
            except OSError:
                self._reset(client)
                continue
            with self._lock:
                self._open |= {client, server}
                self.forwarded += 1
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with self._lock:
                    self._open.discard(sock)
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def down(self) -> None:
        self.is_down = True
        with self._lock:
            victims, self._open = list(self._open), set()
        for sock in victims:
            self._reset(sock)

    def up(self) -> None:
        self.is_down = False

    def close(self) -> None:
        self._closed = True
        self.down()
        self.listener.close()


@pytest.fixture(scope="session")
def tcp_outage() -> type[TcpOutage]:
    return TcpOutage
