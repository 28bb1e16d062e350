"""Authlib's OAuth2Session against the oauth-provider example, as a real third-party client.

Usage: python authlib_client.py ISSUER CLIENT_ID CLIENT_SECRET PASSWORD

Discovers the RFC 8414 metadata, runs the authorization code flow with PKCE S256 (driving
the login and consent forms like a browser), calls the protected resource, refreshes,
introspects and revokes, and checks that a replayed code is refused and revokes its tokens.
Then OpenID Connect: discovery, a login with scope openid and a nonce, the ID token checked
with Authlib's CodeIDToken (signature with the JWKS, iss, aud, exp, nonce, at_hash), UserInfo,
a refreshed ID token, prompt=none, and UserInfo refusing a revoked token.
Prints one JSON object with what it saw; exits non-zero on the first failed check.
"""

import html
import json
import os
import re
import sys
import urllib.parse

# The provider runs on plain http on 127.0.0.1 for the test.
os.environ["AUTHLIB_INSECURE_TRANSPORT"] = "1"

import requests  # noqa: E402
from authlib.common.security import generate_token  # noqa: E402
from authlib.integrations.requests_client import OAuth2Session, OAuthError  # noqa: E402
from authlib.oidc.core import CodeIDToken  # noqa: E402
from joserfc import jwt  # noqa: E402
from joserfc.errors import InvalidClaimError  # noqa: E402
from joserfc.jwk import KeySet  # noqa: E402

issuer, client_id, client_secret, password = sys.argv[1:5]
REDIRECT = "http://127.0.0.1:53682/callback"
seen = {}


def check(condition, what):
    if not condition:
        raise SystemExit(f"check failed: {what}")


class Browser:
    """A user agent for the login and consent pages. The session and login-CSRF cookies are
    `__Host-` and `Secure`; Python's cookie jar will not send them over http, so they are
    carried by hand (a browser treats 127.0.0.1 as a secure context and sends them)."""

    def __init__(self):
        self.http = requests.Session()
        self.cookies = {}

    def request(self, method, url, **kwargs):
        headers = kwargs.pop("headers", {})
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        response = self.http.request(
            method, url, headers=headers, allow_redirects=False, **kwargs
        )
        self.http.cookies.clear()
        for set_cookie in response.raw.headers.getlist("Set-Cookie"):
            name, _, rest = set_cookie.partition("=")
            value = rest.split(";", 1)[0]
            if not value or "max-age=0" in set_cookie.lower():
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value
        return response

    @staticmethod
    def csrf(page):
        match = re.search(r'name="csrf" value="([^"]+)"', page.text)
        check(match, f"a csrf field in {page.text[:200]!r}")
        return match.group(1)

    def authorize(self, url, log_in):
        """Follows the authorization URL through login and consent; returns the callback URL."""
        page = self.request("GET", url)
        check(page.status_code == 200, f"authorize page: {page.status_code} {page.text[:200]}")
        if log_in:
            check("Log in to continue" in page.text, "a login page first")
            answer = self.request(
                "POST",
                f"{issuer}/login",
                data={
                    "username": "alice",
                    "password": password,
                    "csrf": self.csrf(page),
                    # The pending request rides in the form, as a browser would send it.
                    "authorize": html.unescape(
                        re.search(r'name="authorize" value="([^"]*)"', page.text).group(1)
                    ),
                },
            )
            check(answer.status_code == 303, f"login: {answer.status_code} {answer.text}")
            check(answer.headers["location"] == "/consent", "login leads to consent")
            page = self.request("GET", f"{issuer}/consent")
        check("asks for" in page.text, f"a consent page: {page.text[:300]}")
        answer = self.request(
            "POST",
            f"{issuer}/consent",
            data={"decision": "allow", "csrf": self.csrf(page)},
        )
        check(answer.status_code == 303, f"consent: {answer.status_code} {answer.text}")
        return answer.headers["location"]


# RFC 8414 discovery.
metadata = requests.get(f"{issuer}/.well-known/oauth-authorization-server").json()
check(metadata["issuer"] == issuer, "metadata issuer")
check(metadata["code_challenge_methods_supported"] == ["S256"], "S256 only")
seen["metadata_endpoints"] = sorted(k for k in metadata if k.endswith("_endpoint"))

client = OAuth2Session(
    client_id,
    client_secret,
    scope="profile email",
    redirect_uri=REDIRECT,
    code_challenge_method="S256",
    token_endpoint_auth_method="client_secret_basic",
)
browser = Browser()

# Authorization code + PKCE.
verifier = generate_token(48)
url, state = client.create_authorization_url(
    metadata["authorization_endpoint"], code_verifier=verifier
)
check("code_challenge=" in url and "code_challenge_method=S256" in url, "PKCE in the URL")
callback = browser.authorize(url, log_in=True)
check(callback.startswith(REDIRECT + "?"), f"callback to the redirect URI: {callback}")
query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(callback).query))
check(query.get("state") == state, "state passed through")
check(query.get("iss") == issuer, "RFC 9207 iss")
token = client.fetch_token(
    metadata["token_endpoint"], authorization_response=callback, code_verifier=verifier
)
check(token["token_type"].lower() == "bearer", "bearer token")
check(token.get("refresh_token"), "a refresh token")
seen["scope"] = token.get("scope")

# The protected resource takes the access token.
me = client.get(f"{issuer}/api/me")
check(me.status_code == 200, f"/api/me: {me.status_code} {me.text}")
seen["me"] = me.json()

# Refresh (rotation: a new refresh token).
first_refresh = token["refresh_token"]
refreshed = client.refresh_token(metadata["token_endpoint"])
check(refreshed["refresh_token"] != first_refresh, "the refresh token rotated")
check(refreshed["access_token"] != token["access_token"], "a new access token")

# Introspection (RFC 7662).
info = client.introspect_token(
    metadata["introspection_endpoint"], token=refreshed["access_token"]
).json()
check(info["active"] is True and info["sub"] == "alice", f"introspection: {info}")
seen["introspection"] = {k: info[k] for k in ("active", "sub", "client_id", "scope", "token_type")}
old = client.introspect_token(metadata["introspection_endpoint"], token=first_refresh).json()
check(old == {"active": False}, "the rotated-out refresh token is inactive")

# Revocation (RFC 7009): revoking the refresh token ends the grant.
revoked = client.revoke_token(
    metadata["revocation_endpoint"],
    token=refreshed["refresh_token"],
    token_type_hint="refresh_token",
)
check(revoked.status_code == 200, f"revocation: {revoked.status_code}")
for name in ("refresh_token", "access_token"):
    after = client.introspect_token(
        metadata["introspection_endpoint"], token=refreshed[name]
    ).json()
    check(after == {"active": False}, f"revoked {name} inactive: {after}")
try:
    client.refresh_token(metadata["token_endpoint"], refresh_token=refreshed["refresh_token"])
    check(False, "refreshing with a revoked token must fail")
except OAuthError as error:
    check(error.error == "invalid_grant", f"revoked refresh: {error.error}")

# A replayed code: refused with invalid_grant, and the tokens it issued are revoked.
client2 = OAuth2Session(
    client_id,
    client_secret,
    scope="profile",
    redirect_uri=REDIRECT,
    code_challenge_method="S256",
)
verifier2 = generate_token(48)
url2, _ = client2.create_authorization_url(
    metadata["authorization_endpoint"], code_verifier=verifier2
)
callback2 = browser.authorize(url2, log_in=False)  # still logged in: consent only
token2 = client2.fetch_token(
    metadata["token_endpoint"], authorization_response=callback2, code_verifier=verifier2
)
try:
    client2.fetch_token(
        metadata["token_endpoint"], authorization_response=callback2, code_verifier=verifier2
    )
    check(False, "a replayed code must be refused")
except OAuthError as error:
    check(error.error == "invalid_grant", f"replay: {error.error}")
    seen["replay_error"] = error.error
after = client2.introspect_token(
    metadata["introspection_endpoint"], token=token2["access_token"]
).json()
check(after == {"active": False}, "the replayed code's tokens are revoked")

# PKCE: the right code with a wrong verifier is refused.
verifier3 = generate_token(48)
url3, _ = client2.create_authorization_url(
    metadata["authorization_endpoint"], code_verifier=verifier3
)
callback3 = browser.authorize(url3, log_in=False)
try:
    client2.fetch_token(
        metadata["token_endpoint"],
        authorization_response=callback3,
        code_verifier=generate_token(48),
    )
    check(False, "a wrong verifier must be refused")
except OAuthError as error:
    check(error.error == "invalid_grant", f"wrong verifier: {error.error}")

# OpenID Connect Discovery 1.0.
discovery = requests.get(f"{issuer}/.well-known/openid-configuration").json()
check(discovery["issuer"] == issuer, "discovery issuer")
for field in (
    "authorization_endpoint",
    "token_endpoint",
    "userinfo_endpoint",
    "jwks_uri",
    "response_types_supported",
    "subject_types_supported",
    "id_token_signing_alg_values_supported",
):
    check(field in discovery, f"discovery has {field}")
check("openid" in discovery["scopes_supported"], "openid among the scopes")
check("public" in discovery["subject_types_supported"], "public subjects")
jwks = KeySet.import_key_set(requests.get(discovery["jwks_uri"]).json())
algorithms = discovery["id_token_signing_alg_values_supported"]


def id_token_claims(token, nonce):
    """Authlib's own validation of a code-flow ID token."""
    decoded = jwt.decode(token["id_token"], jwks, algorithms=algorithms)
    claims = CodeIDToken(
        decoded.claims,
        decoded.header,
        {
            "iss": {"essential": True, "value": issuer},
            "aud": {"essential": True, "value": client_id},
        },
        {"nonce": nonce, "client_id": client_id, "access_token": token["access_token"]},
    )
    claims.validate(leeway=5)
    return claims, decoded.header


oidc = OAuth2Session(
    client_id,
    client_secret,
    scope="openid profile email",
    redirect_uri=REDIRECT,
    code_challenge_method="S256",
    token_endpoint_auth_method="client_secret_basic",
)
nonce = generate_token(32)
verifier4 = generate_token(48)
url4, _ = oidc.create_authorization_url(
    discovery["authorization_endpoint"], code_verifier=verifier4, nonce=nonce
)
callback4 = browser.authorize(url4, log_in=False)
token4 = oidc.fetch_token(
    discovery["token_endpoint"], authorization_response=callback4, code_verifier=verifier4
)
check("id_token" in token4, f"an id_token for scope openid: {sorted(token4)}")
claims, header = id_token_claims(token4, nonce)
check("at_hash" in claims, "at_hash present (and verified by CodeIDToken)")
check(claims["nonce"] == nonce, "the nonce echoed")
# The peer really checks: another nonce, or another access token, is refused.
for wrong, what in (
    ({"nonce": "not-the-nonce"}, "nonce"),
    ({"access_token": "not-the-access-token"}, "at_hash"),
):
    token_copy = dict(token4)
    expected_nonce = wrong.get("nonce", nonce)
    if "access_token" in wrong:
        token_copy["access_token"] = wrong["access_token"]
    try:
        id_token_claims(token_copy, expected_nonce)
        check(False, f"a wrong {what} must be refused by the peer")
    except InvalidClaimError as error:
        check(error.claim == what, f"refused for {what}: {error}")

userinfo = oidc.get(discovery["userinfo_endpoint"])
check(userinfo.status_code == 200, f"userinfo: {userinfo.status_code} {userinfo.text}")
info = userinfo.json()
check(info["sub"] == claims["sub"], "UserInfo sub is the ID token's")
posted = oidc.post(discovery["userinfo_endpoint"])
check(posted.status_code == 200 and posted.json() == info, "UserInfo by POST")

refreshed4 = oidc.refresh_token(discovery["token_endpoint"])
check("id_token" in refreshed4, "an id_token on refresh")
renewed, _ = id_token_claims(refreshed4, None)
check("nonce" not in renewed, "no nonce in a refreshed ID token")
check(renewed["sub"] == claims["sub"], "same subject after refresh")
check(renewed["auth_time"] == claims["auth_time"], "same auth_time after refresh")

# prompt=none: consent_required for a logged-in user (this provider asks every time),
# login_required for a visitor without a session.
prompts = {}
for name, agent in (("logged_in", browser), ("anonymous", Browser())):
    url5, state5 = oidc.create_authorization_url(
        discovery["authorization_endpoint"],
        code_verifier=generate_token(48),
        nonce=generate_token(32),
        prompt="none",
    )
    answer = agent.request("GET", url5)
    check(answer.status_code == 303, f"prompt=none redirects: {answer.status_code}")
    back = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(answer.headers["location"]).query))
    check(back.get("state") == state5 and back.get("iss") == issuer, "state and iss")
    prompts[name] = back.get("error")

# Revoked: UserInfo refuses with an RFC 6750 challenge.
oidc.revoke_token(discovery["revocation_endpoint"], token=refreshed4["refresh_token"])
after = requests.get(
    discovery["userinfo_endpoint"],
    headers={"Authorization": f"Bearer {refreshed4['access_token']}"},
)
check(after.status_code == 401, f"revoked userinfo: {after.status_code}")
check('error="invalid_token"' in after.headers.get("WWW-Authenticate", ""), "invalid_token")

seen["oidc"] = {
    "alg": header["alg"],
    "aud": claims["aud"],
    "sub": claims["sub"],
    "name": claims.get("name"),
    "email": claims.get("email"),
    "nonce_echoed": claims["nonce"] == nonce,
    "userinfo": info,
    "prompt_none": prompts,
    "revoked_userinfo": after.status_code,
}

print(json.dumps(seen, sort_keys=True))
