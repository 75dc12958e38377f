"""A minimal Kubernetes API client for the test tier: JSON over HTTPS with a bearer token.

Test equipment, not product. The standard library only, so the test venv needs
nothing more; certificates of the local API server are self-signed, so TLS is
not verified (traffic stays on loopback).
"""

import json
import ssl
import time
import urllib.error
import urllib.request


class ApiError(Exception):
    def __init__(self, code, body):
        super().__init__(f"HTTP {code}: {body[:500]}")
        self.code = code
        self.body = body


class Kube:
    def __init__(self, server, token):
        self.server = server.rstrip("/")
        self.token = token
        self.ctx = ssl.create_default_context()
        self.ctx.check_hostname = False
        self.ctx.verify_mode = ssl.CERT_NONE

    def request(self, method, path, body=None, content_type="application/json", timeout=30):
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        req = urllib.request.Request(self.server + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token}")
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(req, context=self.ctx, timeout=timeout) as r:
                raw = r.read()
                if not raw:
                    return None
                try:
                    return json.loads(raw)
                except ValueError:
                    return raw.decode(errors="replace")
        except urllib.error.HTTPError as e:
            raise ApiError(e.code, e.read().decode(errors="replace")) from None

    def get(self, path):
        return self.request("GET", path)

    def get_opt(self, path):
        try:
            return self.get(path)
        except ApiError as e:
            if e.code == 404:
                return None
            raise

    def post(self, path, body):
        return self.request("POST", path, body)

    def put(self, path, body):
        return self.request("PUT", path, body)

    def merge(self, path, body):
        return self.request("PATCH", path, body, "application/merge-patch+json")

    def delete(self, path, body=None):
        try:
            return self.request("DELETE", path, body)
        except ApiError as e:
            if e.code == 404:
                return None
            raise

    def apply(self, path, body, manager="e2e"):
        """Server-side apply of one object to its full path (.../kind/name)."""
        return self.request("PATCH", f"{path}?fieldManager={manager}&force=true", body, "application/apply-patch+yaml")

    def wait(self, what, fn, timeout=60, interval=0.25):
        """Polls fn() until it returns a true value, which is returned."""
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            try:
                last = fn()
            except ApiError as e:
                last = e
            if last and not isinstance(last, Exception):
                return last
            time.sleep(interval)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")
