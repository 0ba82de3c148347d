"""The fake OpenAI upstream both proxies call in ``bench.peer``: transcriptions answered as ``json`` text only.

It reads every request body completely (Content-Length or chunked), as a real upstream would, and answers
``{"text": ...}`` with no duration, so each proxy must meter the audio itself. HTTP/1.1 keep-alive, threaded.
Run: ``python -m bench.peer_upstream PORT`` (0 picks a free port; the chosen port is printed).
"""

from __future__ import annotations

import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_ANSWER = b'{"text":"Hello there. How are you?"}'


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # As production servers do (uvicorn, nginx, the OpenAI edge): without it, http.server's answer (head, then body
    # in a second write) waits for the client's delayed ACK on a reused connection, 40 ms per request for any proxy.
    disable_nagle_algorithm = True

    def do_POST(self) -> None:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    break
                self.rfile.read(size + 2)
        else:
            left = int(self.headers.get("Content-Length") or 0)
            while left > 0:
                left -= len(self.rfile.read(min(left, 1 << 20)))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(_ANSWER)))
        self.end_headers()
        self.wfile.write(_ANSWER)

    def do_GET(self) -> None:
        body = b'{"object":"list","data":[{"id":"whisper-1","object":"model"}]}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1]) if len(sys.argv) > 1 else 0), _Handler)
    server.daemon_threads = True
    print(server.server_port, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
