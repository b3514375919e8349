"""Moved to `rnadiff.io.c1csv` (the writer beside its reader, `rnadiff.io.submission`); this name
stays importable until every caller has switched."""
from __future__ import annotations

from rnadiff.io.c1csv import c1_rows, write_c1_csv

__all__ = ["c1_rows", "write_c1_csv"]
