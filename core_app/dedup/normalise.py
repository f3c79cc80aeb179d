"""The Python twin of kntc.norm(): unaccented, lower case, single spaces.

The database's function is the one that decides matches; this one is for code that must
produce or compare spellings before they reach the database (the generator, CSV checks).
"""

from __future__ import annotations

import re
import unicodedata

_SPACES = re.compile(r"\s+")
# NFD splits every Vietnamese letter into a base letter and combining marks, except đ/Đ,
# which is a letter of its own.
_TABLE = str.maketrans({"đ": "d", "Đ": "D"})


def strip_accents(text: str) -> str:
    decomposed = unicodedata.normalize("NFD", text.translate(_TABLE))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def norm(text: str | None) -> str | None:
    if text is None:
        return None
    return _SPACES.sub(" ", strip_accents(text).lower()).strip()
