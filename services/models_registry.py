"""Imports every domain's models so SQLModel.metadata knows all tables (Alembic, tests)."""

from services.discovery import import_domain_modules

import_domain_modules("models")
