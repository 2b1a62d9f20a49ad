"""Grades: a card's score as the band a manager pays, promotes and trains by.

The reference ties results to bonus, promotion and training (薪酬、晋升、培训资源挂钩)
but names no bands; the defaults below are ours (S >= 0.95, A >= 0.85, B >= 0.7,
C >= 0.5, D below) and live under ``scorecard: grades:``. Each band says what it
means (en and zh-CN) and carries a bonus coefficient. A major violation (a veto on
the card) lowers the grade one band, D staying D (重大违规需连带绩效降级): the card
records why. One function decides, ``grade_of``; the card, the team view, the API,
the page and the CLI all show its answer.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field, field_validator

from watcher.rules.model import LANGUAGES


class GradeBand(BaseModel):
    """Scores from ``min_score`` up (to the next band) earn ``grade``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    grade: str = Field(min_length=1, max_length=20)
    min_score: float = Field(ge=0.0, le=1.0)
    bonus: float = Field(ge=0.0, le=100.0, description="bonus coefficient of the grade")
    meaning: dict[str, str] = Field(description="what the grade means for pay, promotion and "
                                                "training, per language (en, zh-CN)")

    @field_validator("meaning")
    @classmethod
    def _languages(cls, value: dict[str, str]) -> dict[str, str]:
        missing = [lang for lang in LANGUAGES if not value.get(lang)]
        if missing:
            raise ValueError(f"meaning needs a text in {', '.join(missing)}")
        return value


def _band(grade: str, min_score: float, bonus: float, en: str, zh: str) -> GradeBand:
    return GradeBand(grade=grade, min_score=min_score, bonus=bonus,
                     meaning={"en": en, "zh-CN": zh})


DEFAULT_GRADES: tuple[GradeBand, ...] = (
    _band("S", 0.95, 1.5, "Bonus x1.5; first in line for promotion; may mentor and lead training.",
          "奖金系数 1.5；优先晋升；可担任带教导师、主讲培训。"),
    _band("A", 0.85, 1.2, "Bonus x1.2; promotion candidate; advanced training offered.",
          "奖金系数 1.2；列入晋升候选；提供进阶培训。"),
    _band("B", 0.7, 1.0, "Standard bonus (x1.0); on track; regular training.",
          "标准奖金（系数 1.0）；正常发展；常规培训。"),
    _band("C", 0.5, 0.6, "Bonus x0.6; no promotion this period; targeted training on the "
                         "failing indicators.",
          "奖金系数 0.6；本期不晋升；针对未达标指标安排专项培训。"),
    _band("D", 0.0, 0.0, "No bonus; no promotion; coaching and an improvement plan.",
          "无奖金；不予晋升；安排辅导并制定改进计划。"),
)


def check_bands(bands: Sequence[GradeBand]) -> tuple[GradeBand, ...]:
    """Bands from the best down, every score in exactly one: distinct grades, strictly
    falling minimums, the last starting at 0."""
    ordered = tuple(sorted(bands, key=lambda b: -b.min_score))
    if not ordered:
        raise ValueError("grades: at least one band is needed")
    names = [b.grade for b in ordered]
    if len(set(names)) != len(names):
        raise ValueError(f"grades: a grade is named twice ({', '.join(names)})")
    minimums = [b.min_score for b in ordered]
    if len(set(minimums)) != len(minimums):
        raise ValueError("grades: two bands start at the same min_score")
    if ordered[-1].min_score != 0:
        raise ValueError(f"grades: the lowest band ('{ordered[-1].grade}') must start at "
                         f"min_score 0, or some scores would have no grade")
    return ordered


class Grade(BaseModel):
    """The grade a card earned, and what it means."""

    model_config = ConfigDict(frozen=True)

    grade: str
    by_score: str  # the band of the score alone, before any downgrade
    bonus: float
    meaning: dict[str, str]
    downgraded: str | None  # why the grade is one band below its score's, if it is


def grade_of(score: float | None, bands: Sequence[GradeBand],
             major_violation: str | None = None) -> Grade | None:
    """The grade of ``score`` (None for a card with nothing judged), one band lower when
    ``major_violation`` (its description) is given. ``bands`` as ``check_bands`` orders."""
    if score is None:
        return None
    index = next(i for i, band in enumerate(bands) if score >= band.min_score)
    by_score = bands[index].grade
    # the lowest band has nowhere lower to go: D stays D, and is not said to be lowered
    lowered = major_violation is not None and index + 1 < len(bands)
    band = bands[index + 1] if lowered else bands[index]
    return Grade(grade=band.grade, by_score=by_score, bonus=band.bonus,
                 meaning=dict(band.meaning),
                 downgraded=f"major violation: {major_violation}" if lowered else None)
