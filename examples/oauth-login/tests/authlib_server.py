"""A small OAuth 2.0 authorization server built with Authlib (on Flask), for the oauth-login
example's client to log in to. Test-only: the one user, "alice", is always logged in and
consents to everything, so no pages are needed.

Usage: python authlib_server.py [--openid]
Prints `listening on http://127.0.0.1:PORT` first (port chosen by the OS); that URL is the
issuer. With --openid it is an OpenID Connect provider too, with Authlib's OpenIDCode
extension: `/.well-known/openid-configuration`, ID tokens signed ES256 (the key is made at
start, listed at /jwks), a nonce required for scope openid, and /userinfo. Clients: "rust-app" (public, PKCE S256 required) and "rust-web" (confidential,
client_secret_basic, secret "rust-web-secret-0123456789"); both may redirect to
http://127.0.0.1:<any port>/callback (RFC 8252 loopback rule).
"""

import logging
import re
import sys
import time

from joserfc.jwk import ECKey

from authlib.integrations.flask_oauth2 import (
    AuthorizationServer,
    ResourceProtector,
    current_token,
)
from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6750 import BearerTokenValidator
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc9207 import IssuerParameter
from authlib.oidc.core import UserInfo
from authlib.oidc.core.grants import OpenIDCode
from flask import Flask, jsonify
from werkzeug.serving import make_server

LOOPBACK_CALLBACK = re.compile(r"^http://127\.0\.0\.1(:[0-9]{1,5})?/callback$")


class Client:
    def __init__(self, client_id, secret, method):
        self.client_id = client_id
        self.secret = secret
        self.method = method

    def get_client_id(self):
        return self.client_id

    def get_default_redirect_uri(self):
        return None

    def get_allowed_scope(self, scope):
        allowed = {"openid", "profile", "email"} if OPENID else {"profile", "email"}
        return " ".join(s for s in (scope or "").split() if s in allowed)

    def check_redirect_uri(self, redirect_uri):
        return bool(LOOPBACK_CALLBACK.match(redirect_uri))

    def check_client_secret(self, client_secret):
        return self.secret is not None and client_secret == self.secret

    def check_endpoint_auth_method(self, method, endpoint):
        return method == self.method

    def check_response_type(self, response_type):
        return response_type == "code"

    def check_grant_type(self, grant_type):
        return grant_type in ("authorization_code", "refresh_token")


CLIENTS = {
    "rust-app": Client("rust-app", None, "none"),
    "rust-web": Client("rust-web", "rust-web-secret-0123456789", "client_secret_basic"),
}


class Code:
    def __init__(self, **fields):
        self.__dict__.update(fields)

    def get_redirect_uri(self):
        return self.redirect_uri

    def get_scope(self):
        return self.scope

    def get_nonce(self):
        return self.nonce

    def get_auth_time(self):
        return self.auth_time

    def get_acr(self):
        return None

    def get_amr(self):
        return None

    def is_expired(self):
        return time.time() > self.expires_at


class Token:
    def __init__(self, data, client_id, user):
        self.data = data
        self.client_id = client_id
        self.user = user
        self.issued_at = time.time()
        self.revoked = False

    def check_client(self, client):
        return client.get_client_id() == self.client_id

    def get_scope(self):
        return self.data.get("scope", "")

    def get_expires_in(self):
        return self.data.get("expires_in", 0)

    def is_expired(self):
        return time.time() > self.issued_at + self.get_expires_in()

    def is_revoked(self):
        return self.revoked

    def get_user(self):
        return self.user

    def get_client(self):
        return CLIENTS[self.client_id]


CODES = {}
ACCESS = {}
REFRESH = {}
USER = "alice"
OPENID = "--openid" in sys.argv[1:]
# alice "logged in" when the server started.
AUTH_TIME = int(time.time())
SIGNING_KEY = ECKey.generate_key(
    "P-256", parameters={"kid": "authlib-oidc-1", "alg": "ES256", "use": "sig"}
)
SEEN = {"nonces": [], "id_tokens": 0, "userinfo": 0}


def alice_info(scope):
    return UserInfo(
        sub=USER,
        name="Alice Liddell",
        email="alice@example.org",
        email_verified=True,
    ).filter(scope)


class OpenIDCodeExtension(OpenIDCode):
    """Authlib's OpenID Connect code flow: ID tokens with nonce, auth_time and at_hash."""

    def resolve_client_private_key(self, client):
        return SIGNING_KEY

    def get_client_algorithm(self, client):
        return "ES256"

    def get_client_claims(self, client):
        return {"iss": ISSUER, "aud": [client.get_client_id()]}

    def get_encode_header(self, client):
        return {"alg": "ES256", "kid": SIGNING_KEY.kid, "typ": "JWT"}

    def exists_nonce(self, nonce, request):
        return any(code.nonce == nonce for code in CODES.values())

    def generate_user_info(self, user, scope):
        SEEN["id_tokens"] += 1
        return alice_info(scope)


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "none"]

    def save_authorization_code(self, code, request):
        CODES[code] = Code(
            code=code,
            client_id=request.client.get_client_id(),
            redirect_uri=request.payload.redirect_uri,
            scope=request.scope,
            user=request.user,
            code_challenge=request.payload.data.get("code_challenge"),
            code_challenge_method=request.payload.data.get("code_challenge_method"),
            nonce=request.payload.data.get("nonce"),
            auth_time=AUTH_TIME,
            expires_at=time.time() + 60,
        )
        SEEN["nonces"].append(request.payload.data.get("nonce"))

    def query_authorization_code(self, code, client):
        item = CODES.get(code)
        if item and item.client_id == client.get_client_id() and not item.is_expired():
            return item
        return None

    def delete_authorization_code(self, authorization_code):
        CODES.pop(authorization_code.code, None)

    def authenticate_user(self, authorization_code):
        return authorization_code.user


class RefreshTokenGrant(grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "none"]
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token):
        token = REFRESH.get(refresh_token)
        if token and not token.revoked:
            return token
        return None

    def authenticate_user(self, refresh_token):
        return refresh_token.user

    def revoke_old_credential(self, refresh_token):
        refresh_token.revoked = True


class Revocation(RevocationEndpoint):
    CLIENT_AUTH_METHODS = ["client_secret_basic", "none"]

    def query_token(self, token_string, token_type_hint):
        return ACCESS.get(token_string) or REFRESH.get(token_string)

    def revoke_token(self, token, request):
        token.revoked = True
        # The pair goes together.
        for table in (ACCESS, REFRESH):
            for other in table.values():
                if other.data is token.data:
                    other.revoked = True


class Validator(BearerTokenValidator):
    def authenticate_token(self, token_string):
        return ACCESS.get(token_string)


def save_token(data, request):
    user = request.user
    token = Token(data, request.client.get_client_id(), user)
    ACCESS[data["access_token"]] = token
    if data.get("refresh_token"):
        REFRESH[data["refresh_token"]] = token


class Issuer(IssuerParameter):
    def get_issuer(self):
        return ISSUER


app = Flask(__name__)
app.config["OAUTH2_REFRESH_TOKEN_GENERATOR"] = True
server = AuthorizationServer(app, query_client=CLIENTS.get, save_token=save_token)
extensions = [CodeChallenge(required=True)]
if OPENID:
    extensions.append(OpenIDCodeExtension(require_nonce=True))
server.register_grant(AuthorizationCodeGrant, extensions)
server.register_grant(RefreshTokenGrant)
server.register_endpoint(Revocation)
server.register_extension(Issuer())
require_oauth = ResourceProtector()
require_oauth.register_token_validator(Validator())
ISSUER = ""


@app.get("/.well-known/oauth-authorization-server")
def metadata():
    return jsonify(
        issuer=ISSUER,
        authorization_endpoint=f"{ISSUER}/authorize",
        token_endpoint=f"{ISSUER}/token",
        revocation_endpoint=f"{ISSUER}/revoke",
        response_types_supported=["code"],
        grant_types_supported=["authorization_code", "refresh_token"],
        code_challenge_methods_supported=["S256"],
        token_endpoint_auth_methods_supported=["client_secret_basic", "none"],
        authorization_response_iss_parameter_supported=True,
    )


@app.get("/.well-known/openid-configuration")
def openid_configuration():
    if not OPENID:
        return jsonify(error="not an OpenID Provider"), 404
    return jsonify(
        issuer=ISSUER,
        authorization_endpoint=f"{ISSUER}/authorize",
        token_endpoint=f"{ISSUER}/token",
        userinfo_endpoint=f"{ISSUER}/userinfo",
        jwks_uri=f"{ISSUER}/jwks",
        revocation_endpoint=f"{ISSUER}/revoke",
        scopes_supported=["openid", "profile", "email"],
        response_types_supported=["code"],
        subject_types_supported=["public"],
        id_token_signing_alg_values_supported=["ES256"],
        grant_types_supported=["authorization_code", "refresh_token"],
        code_challenge_methods_supported=["S256"],
        token_endpoint_auth_methods_supported=["client_secret_basic", "none"],
        authorization_response_iss_parameter_supported=True,
    )


@app.get("/jwks")
def jwks():
    return jsonify(keys=[SIGNING_KEY.as_dict(private=False)])


@app.route("/userinfo", methods=["GET", "POST"])
@require_oauth("openid")
def userinfo():
    SEEN["userinfo"] += 1
    return jsonify(alice_info(current_token.get_scope()))


@app.get("/authorize")
def authorize():
    # Test-only: alice is logged in and consents.
    grant = server.get_consent_grant(end_user=USER)
    return server.create_authorization_response(grant=grant, grant_user=USER)


@app.post("/token")
def token():
    return server.create_token_response()


@app.post("/revoke")
def revoke():
    return server.create_endpoint_response(Revocation.ENDPOINT_NAME)


@app.get("/api/me")
@require_oauth("profile")
def me():
    return jsonify(sub=current_token.user, scope=current_token.get_scope())


@app.get("/stats")
def stats():
    """What the test checks afterwards: tokens issued and revoked."""
    return jsonify(
        access_tokens=len(ACCESS),
        revoked=sum(1 for t in ACCESS.values() if t.revoked),
        codes_outstanding=len(CODES),
        nonces=SEEN["nonces"],
        id_tokens=SEEN["id_tokens"],
        userinfo=SEEN["userinfo"],
    )


if __name__ == "__main__":
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    httpd = make_server("127.0.0.1", 0, app)
    ISSUER = f"http://127.0.0.1:{httpd.server_port}"
    print(f"listening on {ISSUER}", flush=True)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        sys.exit(0)
