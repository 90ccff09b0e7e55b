"""Subject queries. Numbers are looked up only through their keyed hash."""

from sqlalchemy import bindparam
from sqlmodel import Session, select

from services.subjects.identity_numbers import SubjectNumber
from services.subjects.models import Subject
from services.subjects.protection import get_protector

# built once: every submission looks its applicant up
_BY_HASH = select(Subject).where(Subject.number_hash == bindparam("number_hash"))


def find_subject(session: Session, *, number: SubjectNumber) -> Subject | None:
    return session.exec(_BY_HASH, params={"number_hash": get_protector().keyed_hash(number.value)}).first()


def get_or_create_subject(session: Session, *, number: SubjectNumber, name: str) -> Subject:
    """The subject for this number, created (encrypted, hashed, masked) on first sight."""
    return find_subject(session, number=number) or create_subject(session, number=number, name=name)


def create_subject(session: Session, *, number: SubjectNumber, name: str) -> Subject:
    """A new subject for a number not seen before (encrypted, hashed, masked)."""
    protector = get_protector()
    subject = Subject(kind=number.subject_kind, number_type=number.type.value,
                      number_hash=protector.keyed_hash(number.value),
                      number_encrypted=protector.encrypt(number.value), number_masked=number.masked,
                      name=name)
    session.add(subject)
    session.flush()
    return subject
