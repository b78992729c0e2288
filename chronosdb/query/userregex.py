"""Every regular expression a user sends (FROM /re/, WHERE =~, GROUP BY /re/, f(/re/)) is
compiled here, after ``tagexpr.check_pattern`` refused what a backtracking engine could hang on
(nested unbounded repeats, overlapping repeated alternations, backreferences, huge patterns)."""
from __future__ import annotations

import re
from functools import lru_cache

from chronosdb.model import tagexpr
from chronosdb.query.meta import StatementError


@lru_cache(maxsize=4096)
def compile_user_regex(pattern: str) -> re.Pattern:
    try:
        tagexpr.check_pattern(pattern)
        return re.compile(pattern)
    except (ValueError, re.error) as e:
        raise StatementError(str(e)) from None
