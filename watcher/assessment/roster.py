"""The roster: who each operator is (tier, team, manager, display name).

Snapshots carry ``segment.level`` when the exporting system knows it, which is
rarely; who reports to whom it never knows. The roster (the ``roster:`` config
key, a YAML or CSV file the managers keep) says it once. It decides the tier
whose weights apply to an operator's card (before ``segment.level``), which
team a card belongs to, and whose channel an operator's incidents reach
(routes match ``team`` and ``manager``).

A YAML roster::

    people:
      - {operator: li.wei, tier: junior, team: east, manager: zhang.min, name: 李伟}

A CSV roster has the header ``operator,tier,team,manager,name``. Tiers are
``junior``, ``mid`` or ``senior`` (also 初级, 中级, 高级). Errors name the file,
line and key, because people edit it; the daemon reloads it on change and keeps
the previous roster when an edit is broken.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, PrivateAttr

from watcher import limits, yamlfile
from watcher.errors import ConfigError

TIERS = {"junior": "junior", "mid": "mid", "senior": "senior",
         "初级": "junior", "中级": "mid", "高级": "senior"}
FIELDS = ("operator", "tier", "team", "manager", "name")


class Person(BaseModel):
    """One operator of the roster; every field but ``operator`` may be left out."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    operator: str
    tier: str | None = None  # junior, mid or senior
    team: str | None = None
    manager: str | None = None
    name: str | None = None
    line: int | None = None

    def labels(self) -> dict[str, str]:
        """What routes match on: the operator's team and manager, where known."""
        return {k: v for k, v in (("team", self.team), ("manager", self.manager)) if v}


class Roster(BaseModel):
    """Every person of one roster file; answers "who is this operator"."""

    model_config = ConfigDict(frozen=True)

    people: tuple[Person, ...] = ()
    source: str | None = None
    _by_operator: dict[str, Person] = PrivateAttr(default_factory=dict)

    def model_post_init(self, _context: Any) -> None:
        self._by_operator.update((p.operator, p) for p in self.people)

    def get(self, operator: str | None) -> Person | None:
        return self._by_operator.get(operator) if operator else None

    def tier_of(self, operator: str | None) -> str | None:
        person = self.get(operator)
        return person.tier if person else None

    def team_of(self, operator: str | None) -> str | None:
        person = self.get(operator)
        return person.team if person else None

    def labels_of(self, operator: str | None) -> dict[str, str]:
        person = self.get(operator)
        return person.labels() if person else {}

    def unknown(self, *, team: str | None = None, manager: str | None = None) -> str | None:
        """Why a filter by ``team`` or ``manager`` would show nobody because nobody on the
        roster has it (a typo must not read as "no data"); None when both are known."""
        for kind, wanted, known in (("team", team, {p.team for p in self.people}),
                                    ("manager", manager, set(self.managers()))):
            if wanted is not None and wanted not in known:
                listed = ", ".join(sorted(k for k in known if k)) or "none"
                where = f" ({self.source})" if self.source else ""
                return f"no {kind} '{wanted}' on the roster{where}; known: {listed}"
        return None

    def managers(self) -> dict[str, list[Person]]:
        """Each manager's people, in roster order."""
        found: dict[str, list[Person]] = {}
        for person in self.people:
            if person.manager:
                found.setdefault(person.manager, []).append(person)
        return found


def load_optional(path: Path | None) -> Roster:
    """No roster configured is an empty roster: tiers from ``segment.level`` only."""
    return Roster() if path is None else load_roster(path)


def load_roster(path: Path) -> Roster:
    if path.suffix.lower() == ".csv":
        return parse_csv(yamlfile.read_text(path, max_bytes=limits.ROSTER_MAX_BYTES,
                                            encoding="utf-8-sig"), str(path))
    data, lines = yamlfile.load(path, max_bytes=limits.ROSTER_MAX_BYTES)
    return parse_roster(data, lines, str(path))


def parse_csv(text: str, name: str) -> Roster:
    reader = csv.reader(io.StringIO(text))
    rows = list(reader)
    if not rows:
        return Roster(source=name)
    header = [h.strip().lower() for h in rows[0]]
    for column, key in enumerate(header):
        if key not in FIELDS:
            raise ConfigError(f"is not a known column (expected {', '.join(FIELDS)})",
                              file=name, line=1, key=key or f"column {column + 1}")
    if "operator" not in header:
        raise ConfigError("the header needs an 'operator' column", file=name, line=1)
    people: list[Person] = []
    seen: dict[str, int | None] = {}
    for number, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) > len(header):
            raise ConfigError(f"has {len(row)} cells; the header has {len(header)}",
                              file=name, line=number)
        item = {key: cell for key, cell in zip(header, row, strict=False) if cell.strip()}
        people.append(_person(item, number, name, f"row {number}", seen))
    return Roster(people=tuple(people), source=name)


def parse_roster(data: Any, lines: yamlfile.Lines, name: str) -> Roster:
    if data is None:
        return Roster(source=name)
    if not isinstance(data, dict) or not isinstance(data.get("people"), list):
        raise ConfigError("a roster file is a mapping with a 'people:' list (or a CSV file "
                          "with the header operator,tier,team,manager,name)", file=name,
                          line=yamlfile.line_of(lines, ()))
    unknown = sorted(set(data) - {"people", "description"})
    if unknown:
        raise ConfigError("is not a known key (expected people, description)", file=name,
                          key=unknown[0], line=yamlfile.line_of(lines, (unknown[0],)))
    people: list[Person] = []
    seen: dict[str, int | None] = {}
    for index, item in enumerate(data["people"]):
        line = yamlfile.line_of(lines, ("people", index))
        if not isinstance(item, dict):
            raise ConfigError("an entry is a mapping such as {operator: li.wei, tier: junior, "
                              "team: east, manager: zhang.min}", file=name, line=line,
                              key=f"people.{index}")
        for key in item:
            if key not in FIELDS:
                raise ConfigError(f"is not a known key (expected {', '.join(FIELDS)})",
                                  file=name, key=f"people.{index}.{key}",
                                  line=yamlfile.line_of(lines, ("people", index, str(key))))
        person = _person(item, line, name, f"people.{index}", seen,
                         lambda key, i=index: yamlfile.line_of(lines, ("people", i, key)))
        people.append(person)
    return Roster(people=tuple(people), source=name)


def _person(item: dict[Any, Any], line: int | None, name: str, at: str,
            seen: dict[str, int | None], line_of: Any = None) -> Person:
    def fail(message: str, key: str) -> ConfigError:
        return ConfigError(message, file=name, key=f"{at}.{key}" if at.startswith("people")
                           else key, line=line_of(key) if line_of else line)

    values: dict[str, str | None] = {}
    for key in FIELDS:
        value = item.get(key)
        if value is None:
            values[key] = None
            continue
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise fail("must be text", key)
        text = str(value).strip()
        if len(text) > limits.ROSTER_MAX_FIELD or "\x00" in text:
            raise fail(f"must be text of at most {limits.ROSTER_MAX_FIELD} characters", key)
        values[key] = text or None
    operator = values["operator"]
    if not operator:
        raise fail("is required", "operator")
    if values["tier"] is not None:
        tier = TIERS.get(values["tier"].lower())
        if tier is None:
            raise fail(f"'{values['tier']}' is not a tier (junior, mid, senior; 初级, 中级, "
                       "高级)", "tier")
        values["tier"] = tier
    if operator in seen:
        raise fail(f"'{operator}' is already on the roster (line {seen[operator]})", "operator")
    seen[operator] = line
    return Person(operator=operator, tier=values["tier"], team=values["team"],
                  manager=values["manager"], name=values["name"], line=line)
