"""A tiny HTTP front for MapServer's CGI binary (a copy of mapserver/server.py for the registry's own instance): runs `mapserv` per request with the CGI environment and
passes its Status header on (python's http.server --cgi answers 200 whatever the script says).
Usage: server.py PORT CONFIG_FILE MAPFILE. Listens on 127.0.0.1 only."""
import http.server
import os
import subprocess
import sys

PORT, CONFIG, MAPFILE = int(sys.argv[1]), sys.argv[2], sys.argv[3]


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def run(self, method):
        path, _, query = self.path.partition("?")
        if not (path == "/mapserv" or path.startswith("/mapserv/")):
            self.send_error(404)
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "MAPSERVER_CONFIG_FILE": CONFIG,
            "MS_MAPFILE": MAPFILE,
            "GATEWAY_INTERFACE": "CGI/1.1",
            "REQUEST_METHOD": method,
            "QUERY_STRING": query,
            "SCRIPT_NAME": "/mapserv",
            "PATH_INFO": path[len("/mapserv"):],
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": str(PORT),
            "SERVER_PROTOCOL": "HTTP/1.1",
            "HTTP_HOST": self.headers.get("Host", f"127.0.0.1:{PORT}"),
            "HTTP_ACCEPT": self.headers.get("Accept", "*/*"),
        }
        if body:
            env["CONTENT_LENGTH"] = str(len(body))
            env["CONTENT_TYPE"] = self.headers.get("Content-Type", "application/xml")
        proc = subprocess.run(["mapserv"], input=body, env=env, capture_output=True, timeout=60)
        head, sep, payload = proc.stdout.partition(b"\r\n\r\n")
        if not sep:
            head, sep, payload = proc.stdout.partition(b"\n\n")
        status, headers = 200, []
        for line in head.decode("latin-1").splitlines():
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.strip().split()[0])
            elif name:
                headers.append((name, value.strip()))
        if not sep or proc.returncode != 0 and not payload:
            status, headers, payload = 500, [("Content-Type", "text/plain")], proc.stderr or b"mapserv failed"
        self.send_response(status)
        for name, value in headers:
            if name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self):
        self.run("GET")

    def do_POST(self):
        self.run("POST")

    def log_message(self, fmt, *args):
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
