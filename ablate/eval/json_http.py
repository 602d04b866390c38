"""The JSON request handler behind ablate's local OpenAI-compatible endpoints (the judge proxy
that lmms-eval's judged tasks call, and the rehearsal's stand-in judge): read a JSON body,
answer with a JSON payload, log nothing (the caller's own output says what it served)."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from typing import Any


class JSONHandler(BaseHTTPRequestHandler):
    def json_body(self) -> Any:
        """The request's JSON body; None when it is not JSON."""
        try:
            return json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"null")
        except ValueError:
            return None

    def send_json(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass
