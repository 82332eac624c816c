#!/usr/bin/env python3
"""A token server for distribution's `auth: token`, for tests/registry/.

    token_server.py PORT CERT_PEM USER PASSWORD ISSUER LOG

The Bearer token flow has three parties: the registry, which trusts a
certificate; the token server, which holds that certificate's private key and
decides who may do what; and the client, which asks the token server for a
token and shows it to the registry. This is the token server, in the
standard library plus `cryptography` (Debian: python3-cryptography).

At start it makes an ECDSA P-256 key and a self-signed certificate for it,
and writes the certificate to CERT_PEM: the registry's `rootcertbundle`.
Then `GET /token?service=S&scope=repository:app:pull,push` answers:

- 401 if an Authorization header is sent and is not Basic USER:PASSWORD;
- a token granting every requested action to USER, when authenticated;
- a token granting nothing to an anonymous client (the registry then answers
  401 again: the client must log in), as Docker Hub does for private images.

The token is a JWT signed with ES256. distribution (2.x, libtrust) finds the
verification key by the JWT header's `kid`, which must be the *libtrust key
ID* of a public key in the bundle: the first 240 bits of the sha256 of the
key's DER SubjectPublicKeyInfo, base32, in 12 groups of 4 characters joined
by ':'. It then checks `iss` (the registry's `issuer`), `aud` (its
`service`), `nbf`/`exp`, and that `access` covers the request.

Every request is appended to LOG as one JSON line, for the test to read.
"""

import base64
import datetime
import hashlib
import http.server
import json
import os
import sys
import time
import urllib.parse

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

PORT, CERT, USER, PASSWORD, ISSUER, LOG = sys.argv[1:7]


def b64url(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def libtrust_key_id(public_key):
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    b32 = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(b32[i : i + 4] for i in range(0, len(b32), 4))


KEY = ec.generate_private_key(ec.SECP256R1())
KID = libtrust_key_id(KEY.public_key())
now = datetime.datetime.now(datetime.timezone.utc)
name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dockyard test token issuer")])
cert = (
    x509.CertificateBuilder()
    .subject_name(name)
    .issuer_name(name)
    .public_key(KEY.public_key())
    .serial_number(x509.random_serial_number())
    .not_valid_before(now - datetime.timedelta(hours=1))
    .not_valid_after(now + datetime.timedelta(days=1))
    .sign(KEY, hashes.SHA256())
)
tmp = CERT + ".tmp"
with open(tmp, "wb") as f:
    f.write(cert.public_bytes(serialization.Encoding.PEM))
os.rename(tmp, CERT)


def sign(claims):
    header = {"typ": "JWT", "alg": "ES256", "kid": KID}
    signing_input = (
        b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
    )
    der = KEY.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    # JWS wants r || s, 32 bytes each, not DER.
    return signing_input + "." + b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


def access(scopes):
    """repository:app:pull,push -> {"type","name","actions"}; the name may hold ':'."""
    out = []
    for scope in scopes:
        parts = scope.split(":")
        if len(parts) < 3:
            continue
        out.append(
            {"type": parts[0], "name": ":".join(parts[1:-1]), "actions": parts[-1].split(",")}
        )
    return out


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, status, doc):
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        query = urllib.parse.parse_qs(url.query)
        auth = self.headers.get("Authorization")
        user = None
        if auth is not None:
            expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
            user = USER if auth == expected else False
        scopes = query.get("scope", [])
        with open(LOG, "a") as log:
            entry = {"path": url.path, "scope": scopes, "user": user,
                     "service": query.get("service", [None])[0]}
            log.write(json.dumps(entry) + "\n")
        if url.path != "/token":
            return self.answer(404, {"errors": [{"code": "NOT_FOUND"}]})
        if user is False:
            return self.answer(401, {"details": "incorrect username or password"})
        t = int(time.time())
        claims = {
            "iss": ISSUER,
            "sub": user or "",
            "aud": query.get("service", [""])[0],
            "exp": t + 300,
            "nbf": t - 10,
            "iat": t,
            "jti": b64url(os.urandom(12)),
            "access": access(scopes) if user else [],
        }
        token = sign(claims)
        self.answer(200, {"token": token, "access_token": token, "expires_in": 300})


http.server.ThreadingHTTPServer(("127.0.0.1", int(PORT)), Handler).serve_forever()
