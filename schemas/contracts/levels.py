"""The four-colour risk levels (四色预警): red (I) is the most severe, blue (IV) the least."""

from __future__ import annotations

import enum


class RiskLevel(str, enum.Enum):
    red = "red"  # I 级 特别重大
    orange = "orange"  # II 级 重大
    yellow = "yellow"  # III 级 较大
    blue = "blue"  # IV 级 一般

    @property
    def grade(self) -> int:
        """1 for red (I) to 4 for blue (IV)."""
        return _GRADE[self]

    @property
    def roman(self) -> str:
        return ("I", "II", "III", "IV")[self.grade - 1]

    @property
    def chinese(self) -> str:
        return ("红色", "橙色", "黄色", "蓝色")[self.grade - 1]

    def label(self) -> str:
        """As an operator reads it: 黄色(III)."""
        return f"{self.chinese}({self.roman})"

    def __gt__(self, other: object) -> bool:  # more severe
        if not isinstance(other, RiskLevel):
            return NotImplemented
        return self.grade < other.grade

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, RiskLevel):
            return NotImplemented
        return self.grade <= other.grade

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, RiskLevel):
            return NotImplemented
        return self.grade > other.grade

    def __le__(self, other: object) -> bool:
        if not isinstance(other, RiskLevel):
            return NotImplemented
        return self.grade >= other.grade


_GRADE = {RiskLevel.red: 1, RiskLevel.orange: 2, RiskLevel.yellow: 3, RiskLevel.blue: 4}
