"""E-certificates (电子证照): identifiers, the issuing chain, certificate types as data, and the
render -> QR -> sign pipeline that turns a decided case into a signed PDF.

The database models, the registry and the outbox job live beside these modules and call
`pipeline.produce_certificate_pdf`; nothing here touches the database.
"""
