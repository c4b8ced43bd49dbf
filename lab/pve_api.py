#!/usr/bin/python3
"""The Proxmox HTTP API of one simulated node (HTTPS, GET endpoints only).

    pve_api.py --root R --node N --addr 127.0.0.1 --port P --token-file F

Auth: `Authorization: PVEAPIToken=root@pam!drswitch=<secret>` (a space may
replace the first `=`); the secret is the content of the token file. Anything
else gets 401 with an empty body (real pveproxy also waits ~3 s; we do not).
Certificate and key: /etc/pve/nodes/<node>/pve-ssl.{pem,key} under the root.
"""
import argparse
import hmac
import json
import os
import ssl
import sys
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))

from pvesim.apidata import ApiError, get  # noqa: E402
from pvesim.host import Host  # noqa: E402

TOKEN_ID = "root@pam!drswitch"
PREFIX = "/api2/json"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def version_string(self):
        return "pve-api-daemon/3.0"

    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (self.address_string(), fmt % args))

    def _authorized(self):
        header = self.headers.get("Authorization", "")
        if not header.startswith("PVEAPIToken"):
            return False
        credential = header[len("PVEAPIToken"):]
        if not credential[:1] in ("=", " "):
            return False
        token, sep, secret = credential[1:].rpartition("=")
        return bool(sep) and token == TOKEN_ID and hmac.compare_digest(secret, self.server.secret)

    def _send(self, status, reason, body=b""):
        self.send_response(status, reason)
        if body:
            self.send_header("Content-Type", "application/json;charset=UTF-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "max-age=0")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        if not url.path.startswith(PREFIX + "/"):
            self._send(404, "Not Found")
            return
        if not self._authorized():
            reason = "No ticket" if "Authorization" not in self.headers else "Authentication failed!"
            self._send(401, reason)
            return
        query = dict(urllib.parse.parse_qsl(url.query))
        try:
            data = get(self.server.host, url.path[len(PREFIX):], query)
            self._send(200, "OK", json.dumps({"data": data}).encode())
        except ApiError as exc:
            body = {"data": None, "message": exc.message + "\n"}
            if exc.errors:
                body["errors"] = exc.errors
            self._send(exc.status, exc.message.split("\n")[0], json.dumps(body).encode())
        except Exception as exc:  # an unexpected fault must not kill the server thread silently
            self._send(500, "Internal Server Error",
                       json.dumps({"data": None, "message": f"{exc}\n"}).encode())
            raise

    def _not_implemented(self):
        if not self._authorized():
            self._send(401, "Authentication failed!")
            return
        message = f"Method '{self.command} {self.path.split('?')[0][len(PREFIX):]}' not implemented"
        self._send(501, message, json.dumps({"data": None, "message": message + "\n"}).encode())

    do_POST = do_PUT = do_DELETE = _not_implemented


class TlsServer(ThreadingHTTPServer):
    """TLS handshakes happen in the request thread, so one stuck client
    cannot block the accept loop."""

    daemon_threads = True

    def __init__(self, address, context, host, secret):
        super().__init__(address, Handler)
        self.context = context
        self.host = host
        self.secret = secret

    def finish_request(self, request, client_address):
        request.settimeout(30)
        try:
            request = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        super().finish_request(request, client_address)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root", required=True)
    parser.add_argument("--node", required=True)
    parser.add_argument("--addr", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token-file", required=True)
    args = parser.parse_args()
    host = Host(args.root, args.node)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    node_dir = host.real(f"/etc/pve/nodes/{host.node}")
    context.load_cert_chain(f"{node_dir}/pve-ssl.pem", f"{node_dir}/pve-ssl.key")
    with open(args.token_file) as f:
        secret = f.read().strip()
    TlsServer((args.addr, args.port), context, host, secret).serve_forever()


if __name__ == "__main__":
    main()
