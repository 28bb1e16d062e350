"""PyJWT as a peer of auth-core's JWT tests. Reads a JSON request on stdin, writes JSON.

verify: {"token", "alg", "key"}  key is a JWK (dict) or {"secret_b64": ...} for HMAC
sign:   {"alg", "secret_b64"?}   signs {"sub": "from-pyjwt", "exp": now + 600} with kid "py"
jwks:   {"url", "token", "alg"}  PyJWKClient fetches the JWK Set and verifies the token
"""
import base64
import json
import sys
import time

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa


def b64decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def verify(request):
    key = request["key"]
    if "secret_b64" in key:
        key = b64decode(key["secret_b64"])
    else:
        key = jwt.PyJWK(key, algorithm=request["alg"])
    return jwt.decode(request["token"], key=key, algorithms=[request["alg"]])


def sign(request):
    alg = request["alg"]
    claims = {"sub": "from-pyjwt", "exp": int(time.time()) + 600}
    if alg.startswith("HS"):
        key = b64decode(request["secret_b64"])
        jwk = None
    elif alg.startswith(("RS", "PS")):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    elif alg == "ES256":
        key = ec.generate_private_key(ec.SECP256R1())
        jwk = jwt.algorithms.ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    elif alg == "EdDSA":
        key = ed25519.Ed25519PrivateKey.generate()
        jwk = jwt.algorithms.OKPAlgorithm.to_jwk(key.public_key(), as_dict=True)
    else:
        raise ValueError(alg)
    if jwk is not None:
        jwk.update({"kid": "py", "alg": alg, "use": "sig"})
    token = jwt.encode(claims, key, algorithm=alg, headers={"kid": "py"})
    return {"token": token, "jwk": jwk}


def jwks(request):
    client = jwt.PyJWKClient(request["url"], cache_keys=False)
    signing_key = client.get_signing_key_from_jwt(request["token"])
    return jwt.decode(request["token"], key=signing_key, algorithms=[request["alg"]])


if __name__ == "__main__":
    command = sys.argv[1]
    request = json.load(sys.stdin)
    result = {"verify": verify, "sign": sign, "jwks": jwks}[command](request)
    json.dump(result, sys.stdout)
