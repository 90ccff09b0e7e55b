"""Consents to assisted applications (帮办代办授权): a citizen's consent created in their own
mini-program, or a signed paper consent a helper uploads for a person without a phone (which
the receiving clerk must confirm before the case can be accepted)."""
