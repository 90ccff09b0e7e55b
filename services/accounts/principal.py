from dataclasses import dataclass


@dataclass(frozen=True)
class Principal:
    """Who is calling, resolved from a verified access token and the current account row."""

    kind: str  # citizen | staff
    account_id: int
    roles: tuple[str, ...]
    name: str = ""
    subject_id: int | None = None  # a citizen's verified subject
    subject_hash: str | None = None  # its number's keyed hash: "is this applicant me?" without a query
    service_point_id: int | None = None  # a staff member's point
    jurisdiction_code: str | None = None  # the region the staff member's point serves

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.account_id}"

    @property
    def is_staff(self) -> bool:
        return self.kind == "staff"
