"""E-certificates (电子证照): identifiers, issuing chains, certificate types as data, the
render -> QR -> sign pipeline, and the registry.

    identifiers.py   GB/T 36904-style identifiers with their MOD 37,36 check character
    types.py         e-certificates/<type>/type.yaml: metadata, fields, layout, number scheme
    numbers.py       the printed certificate number of each scheme
    pki.py           development CA and one issuer per issuing authority; production keys
    rendering.py     WeasyPrint (one shared FontConfiguration) and the QR code's signed token
    signing.py       PAdES with a visible seal, the CRL in the signature's own revision
    pipeline.py      case context in, signed PDF out (no database)
    models.py        the registry tables
    service.py       issuing exactly once, status lifecycle, expiry, usage, grants, 免证办
    public.py        the public status (Redis cache, rate limit, check log)
    verification.py  verdict on an uploaded PDF
    cache.py, checklog.py, settings.py, seals.py   their helpers
    tasks.py         outbox jobs: issue_certificate, expire_certificates
"""
