"""The review page's server: the standard library's threading HTTP server, one token, the run's images by index.

Every request must carry the token the server made (``?token=`` in the
address, as Jupyter's, or an ``Authorization: token ...`` header); the only
paths are the page, its state, one decision or undo at a time, and an image
by its number in the review set, so no part of a request ever reaches the
file system. It listens on 127.0.0.1 unless given another host.
"""

import hmac
import io
import json
import secrets
import socket
import sys
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from urllib.parse import parse_qs, urlsplit

from PIL import Image

from keras_apml.errors import InputError

MAX_BODY = 4096  # bytes of a decision's JSON: a few dozen are needed
PAGE = resources.files("keras_apml").joinpath("review_page.html")


class ReviewServer(ThreadingHTTPServer):
    """Serve the review of ``decisions.reviewed`` (a :class:`keras_apml.review.Decisions`) at :attr:`url`."""

    daemon_threads = True
    allow_reuse_address = False

    def __init__(self, decisions, host="127.0.0.1", port=0, token=None, title="review"):
        self.decisions, self.title = decisions, title
        self.token = token or secrets.token_urlsafe(32)
        self.page = PAGE.read_text(encoding="utf-8")
        self._png = {}  # item -> encoded image, made once
        if ":" in host:
            self.address_family = socket.AF_INET6
        try:
            super().__init__((host, port), _Handler)
        except OSError as e:
            raise InputError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None

    def handle_error(self, request, client_address):
        """One line on stderr for a request that failed here, not a traceback; the server goes on."""
        error = sys.exc_info()[1]
        print(f"error: a request from {client_address[0]} failed: {type(error).__name__}: {error}", file=sys.stderr)

    @property
    def url(self):
        """The page's address, token included."""
        host, port = self.server_address[:2]
        return f"http://{f'[{host}]' if ':' in host else host}:{port}/?token={self.token}"

    def state(self, truth=False):
        """What the page shows: the classes, every image's labels and score, the decisions, the counts; the true
        labels only when asked for (the reviewer judges first)."""
        r = self.decisions.reviewed
        items = [{"observed": int(r.observed[i]), "suggested": int(r.suggested[i]),
                  "score": round(float(r.score[i]), 4), "index": int(r.index[i]), "flagged": i < r.flagged}
                 for i in range(len(r))]
        if r.paths is not None:  # shown as text, never used to reach a file
            for item, path in zip(items, r.paths):
                item["path"] = path
        if truth and r.truth is not None:
            for item, t in zip(items, r.truth):
                item["truth"] = int(t)
        return {"title": self.title, "class_names": list(r.class_names), "items": items, **self.decided(),
                "has_truth": r.truth is not None, "image_size": list(r.images.shape[1:3])}

    def decided(self):
        """The standing decisions by flag number, and the counts."""
        now, summary = self.decisions.state()  # one replay of the log, so the two agree
        return {"decisions": {str(k): v for k, v in now.items()}, "summary": summary}

    def png(self, item):
        """Image ``item`` of the review set as PNG bytes."""
        if item not in self._png:
            out = io.BytesIO()
            Image.fromarray(self.decisions.reviewed.images[item]).save(out, format="PNG")
            self._png[item] = out.getvalue()
        return self._png[item]


class _Handler(BaseHTTPRequestHandler):
    server_version = "keras_apml-review"
    sys_version = ""

    def log_message(self, format, *args):  # noqa: A002 (the base class's name): quiet, the terminal is the URL's
        pass

    def _authorised(self, query):
        given = query.get("token", [""])[0]
        header = self.headers.get("Authorization", "")
        if header.startswith("token "):
            given = header[len("token "):]
        return hmac.compare_digest(given.encode(), self.server.token.encode())

    def _send(self, status, body, content_type="application/json; charset=utf-8"):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        elif isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Content-Security-Policy", "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; "
                                                    "script-src 'unsafe-inline'; connect-src 'self'")
        self.end_headers()
        self.wfile.write(body)

    def _refuse(self, status, why):
        self._send(status, {"error": why})

    def do_GET(self):  # noqa: N802 (http.server's name)
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        if not self._authorised(query):
            return self._refuse(HTTPStatus.FORBIDDEN, "a token is needed: open the address the review printed")
        if url.path == "/":
            return self._send(HTTPStatus.OK, self.server.page, "text/html; charset=utf-8")
        if url.path == "/api/state":
            return self._send(HTTPStatus.OK, self.server.state(truth=query.get("truth", [""])[0] == "1"))
        if url.path == "/api/decisions":
            return self._send(HTTPStatus.OK, self.server.decided())
        if url.path.startswith("/image/"):
            number = url.path[len("/image/"):]
            reviewed = self.server.decisions.reviewed
            if not (number.isascii() and number.isdigit() and len(number) < 10 and int(number) < len(reviewed)):
                return self._refuse(HTTPStatus.NOT_FOUND,
                                    f"no image {number[:20]!r}: images are 0..{len(reviewed) - 1}")
            return self._send(HTTPStatus.OK, self.server.png(int(number)), "image/png")
        return self._refuse(HTTPStatus.NOT_FOUND, "no such page")

    def do_POST(self):  # noqa: N802
        url = urlsplit(self.path)
        if not self._authorised(parse_qs(url.query)):
            return self._refuse(HTTPStatus.FORBIDDEN, "a token is needed: open the address the review printed")
        if url.path not in ("/api/decide", "/api/undo"):
            return self._refuse(HTTPStatus.NOT_FOUND, "no such action")
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY:
            return self._refuse(HTTPStatus.BAD_REQUEST, f"a body of 0..{MAX_BODY} bytes is expected")
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            return self._refuse(HTTPStatus.BAD_REQUEST, "the body is not JSON")
        if not isinstance(body, dict):
            return self._refuse(HTTPStatus.BAD_REQUEST, "the body is not a JSON object")
        decisions = self.server.decisions
        try:
            if url.path == "/api/decide":
                decisions.decide(body.get("item"), body.get("decision"), body.get("label"))
                undone = None
            else:
                undone = decisions.undo()
        except InputError as e:
            return self._refuse(HTTPStatus.BAD_REQUEST, str(e))
        except OSError as e:  # a full disk, a run directory gone: the decision is not kept, and the page says so
            return self._refuse(HTTPStatus.INTERNAL_SERVER_ERROR, f"the decisions could not be written: "
                                                                  f"{e.strerror or e}")
        self._send(HTTPStatus.OK, {**self.server.decided(), "undone": undone})
