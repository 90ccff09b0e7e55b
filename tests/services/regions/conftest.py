import pytest
import sqlalchemy as sa


@pytest.fixture
def session(session):
    """These tests import into an empty table: the demo seed (committed by the API tests when the
    whole suite runs) is removed inside the test's transaction, which is rolled back after."""
    session.execute(sa.text("DELETE FROM regions"))
    return session
