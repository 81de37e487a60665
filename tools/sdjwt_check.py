#!/usr/bin/env python3
"""Checks staffpass SD-JWT VCs with an implementation nobody here wrote.

The SD-JWT reference implementation (PyPI `sd-jwt`, 0.10.4) verifies the
issuer signature and unpacks the disclosures, the issuer's key taken from
the trust's JWT VC issuer metadata (`staffpass-admin node issuer-metadata`)
by the token's `kid`. That verifier is lenient: it ignores a disclosure
whose digest the token does not reference and never checks `exp`, `typ`,
`vct` or `iss`. So this script adds RFC 9901 section 7.1's strict rules
(every disclosure referenced exactly once, none repeated, no disclosed name
overwriting a payload claim) and those claim checks; and, with
--holder-key, key binding: it makes a KB-JWT with the staff member's
Ed25519 key (RFC 9901 section 4.3) and verifies it against the token's
`cnf`.

    sdjwt_check.py --metadata META.json TOKEN_FILE... [--holder-key STAFF_KEY_FILE]
    sdjwt_check.py --metadata META.json --tamper TOKEN_FILE [--other-issuer-key ISSUER_KEY_FILE]

Key files are staffpass's (`staffpass-admin key gen`): `staff-sk:<hex>`,
`issuer-sk:<hex>`.

With --tamper it checks that tampered copies of a good token fail: a
changed disclosure, an added one, a repeated one, a wrong `typ`, the token
expired (checked a year after its `exp`), and verification with another
issuer's key. Exit status 0 only if every good token passes and every
tampered one fails.
"""

import argparse
import base64
import hashlib
import json
import sys
import time

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from jwcrypto.jwk import JWK
from jwcrypto.jws import JWS
from sd_jwt.verifier import SDJWTVerifier

TYP = "dc+sd-jwt"
VCT = "https://staffpass.org.uk/vct/nhs-staff-passport/1"
SKEW = 300


def b64d(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def b64e(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def digest(disclosure):
    return b64e(hashlib.sha256(disclosure.encode("ascii")).digest())


class Refused(Exception):
    pass


def key_file_jwk(path, kind):
    """A staffpass secret key file (`<kind>-sk:<hex>`) as an Ed25519 JWK (with `d`)."""
    text = open(path).read().strip()
    prefix = f"{kind}-sk:"
    if not text.startswith(prefix):
        raise SystemExit(f"{path} is not a {kind} secret key file")
    seed = bytes.fromhex(text[len(prefix):])
    public = Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return {"kty": "OKP", "crv": "Ed25519", "d": b64e(seed), "x": b64e(public)}


def check(token, metadata, now):
    """Verifies one SD-JWT VC (no key binding); returns its disclosed claims."""
    if not token.endswith("~"):
        raise Refused("an SD-JWT without key binding ends with ~")
    parts = token.split("~")[:-1]
    jwt, disclosures = parts[0], parts[1:]
    header = json.loads(b64d(jwt.split(".")[0]))
    payload = json.loads(b64d(jwt.split(".")[1]))

    keys = {k["kid"]: k for k in metadata["jwks"]["keys"]}

    def issuer_key(iss, hdr):
        if iss != metadata["issuer"]:
            raise Refused(f"iss {iss!r} is not the metadata's issuer {metadata['issuer']!r}")
        kid = hdr.get("kid")
        if kid not in keys:
            raise Refused(f"kid {kid!r} is not in the issuer's jwks")
        return JWK(**keys[kid])

    # The reference implementation: signature, then disclosures unpacked.
    try:
        verifier = SDJWTVerifier(token, issuer_key)
        claims = verifier.get_verified_payload()
    except Refused:
        raise
    except Exception as e:  # the library raises several kinds
        # The type only: the message can quote a disclosure (personal data).
        raise Refused(f"sd-jwt refused it: {type(e).__name__}")

    # What the library does not check.
    if header.get("typ") != TYP:
        raise Refused(f"typ is {header.get('typ')!r}, not {TYP}")
    if header.get("alg") not in ("EdDSA", "Ed25519"):
        raise Refused(f"alg is {header.get('alg')!r}")
    if payload.get("vct") != VCT:
        raise Refused(f"vct is {payload.get('vct')!r}")
    if not str(payload.get("iss", "")).startswith("https://"):
        raise Refused("iss is not an HTTPS URL")
    if payload.get("_sd_alg") != "sha-256":
        raise Refused("_sd_alg is not sha-256")
    if not isinstance(payload.get("exp"), int) or payload["exp"] <= now:
        raise Refused("expired (or no exp)")
    if not isinstance(payload.get("iat"), int) or payload["iat"] > now + SKEW:
        raise Refused("iat in the future (or none)")
    if not isinstance(payload.get("sub"), str):
        raise Refused("no sub")
    sd = payload.get("_sd", [])
    if len(sd) != len(set(sd)):
        raise Refused("_sd repeats a digest")
    seen, names = set(), set()
    for d in disclosures:
        h = digest(d)
        if h not in sd:
            raise Refused("a disclosure the token does not reference (RFC 9901 7.1 step 3)")
        if h in seen:
            raise Refused("a disclosure repeated (RFC 9901 7.1 step 4)")
        seen.add(h)
        arr = json.loads(b64d(d))
        if not (isinstance(arr, list) and len(arr) == 3 and isinstance(arr[1], str)):
            raise Refused("a disclosure that is not [salt, name, value]")
        name = arr[1]
        if name in ("_sd", "...") or name in payload or name in names:
            raise Refused(f"a disclosure names {name!r}, reserved or already present")
        names.add(name)
    return {k: v for k, v in claims.items() if k in names}


def key_binding(token, holder_jwk, now):
    """Presents the token with a KB-JWT signed by the holder and verifies it."""
    jwt = token.split("~")[0]
    payload = json.loads(b64d(jwt.split(".")[1]))
    cnf = payload.get("cnf", {}).get("jwk")
    if not cnf:
        raise Refused("no cnf in the token: the staff member holds no key")
    holder = JWK(**holder_jwk)
    if holder.export_public(as_dict=True)["x"] != cnf["x"]:
        raise Refused("the holder key is not the token's cnf key")
    nonce, aud = b64e(hashlib.sha256(str(now).encode()).digest()[:12]), "https://host-trust.example/verifier"
    kb_payload = {"iat": now, "aud": aud, "nonce": nonce, "sd_hash": b64e(hashlib.sha256(token.encode()).digest())}
    kb = JWS(json.dumps(kb_payload).encode())
    kb.add_signature(holder, alg="EdDSA", protected=json.dumps({"typ": "kb+jwt", "alg": "EdDSA"}))
    presentation = token + kb.serialize(compact=True)

    # The verifier's side: the KB-JWT against cnf, typ, aud, nonce, sd_hash.
    sd_jwt_part, kb_jwt = presentation.rsplit("~", 1)
    parsed = JWS()
    parsed.deserialize(kb_jwt)
    parsed.verify(JWK(**cnf), alg="EdDSA")
    hdr, body = parsed.jose_header, json.loads(parsed.payload)
    if hdr.get("typ") != "kb+jwt":
        raise Refused("KB-JWT typ")
    if body["aud"] != aud or body["nonce"] != nonce:
        raise Refused("KB-JWT aud/nonce")
    if body["sd_hash"] != b64e(hashlib.sha256((sd_jwt_part + "~").encode()).digest()):
        raise Refused("KB-JWT sd_hash")
    if abs(body["iat"] - now) > SKEW:
        raise Refused("KB-JWT iat")


def tampered(token):
    """(what, token, checked at) for each kind of tampering."""
    parts = token.split("~")[:-1]
    jwt, ds = parts[0], parts[1:]
    out = []
    arr = json.loads(b64d(ds[0]))
    arr[2] = {"changed": True}
    out.append(("a changed disclosure", "~".join([jwt, b64e(json.dumps(arr).encode())] + ds[1:]) + "~", None))
    extra = b64e(json.dumps([b64e(b"\x09" * 16), "dbs", {"level": "basic"}]).encode())
    out.append(("an added disclosure", "~".join([jwt] + ds + [extra]) + "~", None))
    out.append(("a repeated disclosure", "~".join([jwt] + ds + [ds[0]]) + "~", None))
    h, p, s = jwt.split(".")
    hdr = json.loads(b64d(h))
    hdr["typ"] = "JWT"
    out.append(("a wrong typ", "~".join([".".join([b64e(json.dumps(hdr).encode()), p, s])] + ds) + "~", None))
    exp = json.loads(b64d(p))["exp"]
    out.append(("an expired token", token, exp + 365 * 86400))
    return out


def status_bit(token, list_token, metadata, now):
    """The status bit of an SD-JWT VC in a Token Status List
    (draft-ietf-oauth-status-list): the list JWT's typ, its signature by a
    key of the issuer's jwks (jwcrypto), sub the uri the token names, exp,
    bits 1; then lst inflated (zlib) and the token's idx read, least
    significant bit first."""
    import zlib

    payload = json.loads(b64d(token.split("~")[0].split(".")[1]))
    entry = payload.get("status", {}).get("status_list")
    if not entry or not isinstance(entry.get("idx"), int) or not isinstance(entry.get("uri"), str):
        raise Refused("the token names no status list entry")
    header = json.loads(b64d(list_token.split(".")[0]))
    if header.get("typ") != "statuslist+jwt":
        raise Refused(f"status list typ {header.get('typ')!r}")
    keys = {k["kid"]: k for k in metadata["jwks"]["keys"]}
    if header.get("kid") not in keys:
        raise Refused("the status list's kid is not in the issuer's jwks")
    jws = JWS()
    try:
        jws.deserialize(list_token.strip())
        jws.verify(JWK(**keys[header["kid"]]))
    except Exception as e:
        raise Refused(f"the status list signature does not verify ({type(e).__name__})")
    body = json.loads(jws.payload)
    if body.get("sub") != entry["uri"]:
        raise Refused(f"the status list is {body.get('sub')!r}, the token names {entry['uri']!r}")
    if not isinstance(body.get("exp"), int) or body["exp"] <= now:
        raise Refused("the status list expired")
    sl = body.get("status_list", {})
    if sl.get("bits") != 1:
        raise Refused("status_list.bits is not 1")
    bits = zlib.decompress(b64d(sl["lst"]))
    idx = entry["idx"]
    if idx // 8 >= len(bits):
        raise Refused(f"idx {idx} is beyond the list ({len(bits) * 8} entries)")
    return (bits[idx // 8] >> (idx % 8)) & 1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--metadata", required=True)
    ap.add_argument("--other-issuer-key", help="another issuer's secret key file: the token must not verify with it")
    ap.add_argument("--holder-key", help="the staff member's secret key file (staff-sk:...)")
    ap.add_argument("--tamper", action="store_true")
    ap.add_argument("--status-list", help="the issuer's statuslist+jwt: each token's status bit is checked")
    ap.add_argument("--expect-status", choices=["valid", "invalid"], default="valid",
                    help="what each token's bit must say (valid: 0; invalid: 1)")
    ap.add_argument("tokens", nargs="+")
    a = ap.parse_args()
    metadata = json.load(open(a.metadata))
    now = int(time.time())
    failed = 0
    for path in a.tokens:
        token = open(path).read().strip()
        try:
            claims = check(token, metadata, now)
            print(f"ok    {path}: {len(claims)} claims ({', '.join(sorted(claims))})")
        except Refused as e:
            print(f"FAIL  {path}: {e}")
            failed += 1
            continue
        if a.status_list:
            try:
                bit = status_bit(token, open(a.status_list).read().strip(), metadata, now)
                want = 0 if a.expect_status == "valid" else 1
                if bit != want:
                    print(f"FAIL  {path}: status bit {bit}, expected {want} ({a.expect_status})")
                    failed += 1
                else:
                    print(f"ok    {path}: status list bit {bit} ({a.expect_status})")
            except Refused as e:
                print(f"FAIL  {path}: status list: {e}")
                failed += 1
        if a.holder_key:
            try:
                key_binding(token, key_file_jwk(a.holder_key, "staff"), now)
                print(f"ok    {path}: key binding with the holder's Ed25519 key")
            except Exception as e:
                print(f"FAIL  {path}: key binding: {e}")
                failed += 1
        if a.tamper:
            cases = tampered(token)
            if a.other_issuer_key:
                # Another issuer's key under this token's kid and issuer: only
                # the signature can tell them apart.
                kid = json.loads(b64d(token.split(".")[0]))["kid"]
                pub = {k: v for k, v in key_file_jwk(a.other_issuer_key, "issuer").items() if k != "d"}
                other = {"issuer": metadata["issuer"], "jwks": {"keys": [dict(pub, kid=kid)]}}
                cases.append(("another issuer's key", token, None, other))
            for case in cases:
                what, t, at = case[:3]
                meta = case[3] if len(case) > 3 else metadata
                try:
                    check(t, meta, at or now)
                    print(f"FAIL  {path}: {what} was accepted")
                    failed += 1
                except Refused as e:
                    print(f"ok    {path}: {what} refused ({e})")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
