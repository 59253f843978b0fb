"""The bench's ResponseURLs are plain HTTP on loopback, and crhelper always opens HTTPS (S3's URLs are):
with BENCH_RESPONSE_HTTP=1 (set by `make bench` only) its PUT goes over HTTP, all else unchanged."""

import http.client
import os

import crhelper.utils


class _PlainConnection(http.client.HTTPConnection):
    def __init__(self, host, context=None, **kwargs):
        super().__init__(host, **kwargs)


if os.environ.get("BENCH_RESPONSE_HTTP") == "1":
    crhelper.utils.HTTPSConnection = _PlainConnection
