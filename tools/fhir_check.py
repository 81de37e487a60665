#!/usr/bin/env python3
"""Checks staffpass FHIR exports with an implementation nobody here wrote.

PyPI `fhir.resources` 6.4.0 (FHIR 4.0.1, R4; pydantic < 2) parses each
Bundle into its resource models, which checks every element's name, type,
cardinality and primitive format (dates, instants, URIs, codes). It does
not check what a Bundle means, so this script adds:

- every `reference` resolves to an entry's `fullUrl` in the Bundle;
- no period ends before it starts;
- every ODS identifier is 3 to 6 capital letters or digits;
- nothing anywhere is shaped like an NI number.

    fhir_check.py BUNDLE.json...
    fhir_check.py --tamper BUNDLE.json

With --tamper, broken copies of a good Bundle must fail: a dangling
reference, a period ending before it starts, an NI number in a name, a
malformed ODS code, a date that is not a date, an unknown element.
"""

import argparse
import copy
import json
import re
import sys

from fhir.resources import __fhir_version__
from fhir.resources.bundle import Bundle

ODS = "https://fhir.nhs.uk/Id/ods-organization-code"
# Any two capitals, six digits (maybe spaced in pairs) and A to D: wider
# than the real NI prefixes, so a synthetic one (ZZ...) counts too.
NI = re.compile(r"\b[A-Z]{2}\s?\d{2}\s?\d{2}\s?\d{2}\s?[A-D]\b")


class Refused(Exception):
    pass


def walk(v, key=None):
    """Every (key, value) pair, recursively."""
    if isinstance(v, dict):
        for k, x in v.items():
            yield k, x
            yield from walk(x, k)
    elif isinstance(v, list):
        for x in v:
            yield from walk(x, key)


def check(doc):
    if __fhir_version__ != "4.0.1":
        raise Refused(f"fhir.resources models FHIR {__fhir_version__}, not R4 4.0.1")
    try:
        Bundle.parse_obj(doc)
    except Exception as e:  # pydantic's ValidationError and friends
        # The first line only: the rest can quote values (personal data).
        raise Refused(f"fhir.resources refused it: {type(e).__name__}: {str(e).splitlines()[0]}")
    if doc.get("type") != "collection":
        raise Refused("not a collection Bundle")
    urls = {e.get("fullUrl") for e in doc.get("entry", [])}
    for k, x in walk(doc):
        if k == "reference" and x not in urls:
            raise Refused(f"reference {x!r} does not resolve in the Bundle")
        if k == "period" and isinstance(x, dict) and "start" in x and "end" in x:
            if x["end"][:10] < x["start"][:10]:
                raise Refused(f"a period ends ({x['end']}) before it starts ({x['start']})")
        if k == "identifier":
            for i in x if isinstance(x, list) else [x]:
                if isinstance(i, dict) and i.get("system") == ODS and not re.fullmatch(r"[A-Z0-9]{3,6}", i.get("value", "")):
                    raise Refused("an ODS identifier is not an ODS code")
    if NI.search(json.dumps(doc)):
        raise Refused("something shaped like an NI number is in it")
    return len(doc.get("entry", []))


def tampered(doc):
    cases = []

    def case(what, f):
        d = copy.deepcopy(doc)
        f(d)
        cases.append((what, d))

    def first(d, kind):
        return next(e["resource"] for e in d["entry"] if e["resource"]["resourceType"] == kind)

    case("a dangling reference", lambda d: first(d, "Provenance")["target"][0].update(reference="urn:uuid:00000000-0000-4000-8000-000000000000"))
    case("a period ending before it starts", lambda d: first(d, "PractitionerRole").update(period={"start": "2026-01-02", "end": "2026-01-01"}))
    case("an NI number in a name", lambda d: first(d, "Practitioner").update(name=[{"text": "ZZ 12 34 56 C"}]))
    case("a malformed ODS code", lambda d: first(d, "Organization")["identifier"][0].update(value="rjz!"))
    case("a date that is not a date", lambda d: first(d, "Practitioner").update(birthDate="1st April"))
    case("an unknown element", lambda d: first(d, "Practitioner").update(niNumber="x"))
    return cases


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tamper", action="store_true")
    ap.add_argument("bundles", nargs="+")
    a = ap.parse_args()
    failed = 0
    for path in a.bundles:
        doc = json.load(open(path))
        try:
            n = check(doc)
            print(f"ok    {path}: a valid FHIR {__fhir_version__} collection of {n} resources; references resolve, periods ordered, no NI number")
        except Refused as e:
            print(f"FAIL  {path}: {e}")
            failed += 1
            continue
        if a.tamper:
            for what, d in tampered(doc):
                try:
                    check(d)
                    print(f"FAIL  {path}: {what} was accepted")
                    failed += 1
                except Refused as e:
                    print(f"ok    {path}: {what} refused ({e})")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
