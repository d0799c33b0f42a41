"""Problems in input files, in one style: file, line (1-based, the header is line 1), column and
what to do. :class:`DataError` collects all of them before anything is raised."""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence

from ..errors import UserError
from ..utils import PathLike

#: How many problems/warnings a message shows before "... and N more" (0: all).
MAX_SHOWN = 50


@dataclass(frozen=True)
class Problem:
    """One problem (or warning) in the data. ``row`` is the 1-based line in ``file`` (header = 1)."""

    file: PathLike | None = None
    row: int | None = None
    column: str | None = None
    message: str = ""

    def __str__(self) -> str:
        where = [f"line {self.row}"] if self.row is not None else []
        if self.column is not None:
            where.append(f"column {self.column}")
        prefix = [str(self.file)] if self.file is not None else []
        if where:
            prefix.append(", ".join(where))
        return ": ".join(prefix + [self.message])


def format_problems(problems: Sequence[Problem], limit: int | None = MAX_SHOWN) -> List[str]:
    """One line per problem, the first ``limit`` of them (0 or None: all), then
    ``... and N more``."""
    if not limit or limit < 0:
        limit = len(problems)
    lines = [str(p) for p in problems[:limit]]
    if len(problems) > limit:
        lines.append(f"... and {len(problems) - limit} more")
    return lines


class DataError(UserError, ValueError):
    """Bad input data; ``.problems`` lists every problem found, its str one line per problem."""

    def __init__(self, problems: Sequence[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(format_problems(self.problems)))
