"""Shared fixtures: the tests run offline in the smoke profile, like CI."""

import os

os.environ.setdefault("LLMBOOK_PROFILE", "smoke")
os.environ.setdefault("MPLBACKEND", "Agg")
