"""Subjects (natural persons and organisations): identity-number validation and
personal-data protection. Pure code, no database."""
