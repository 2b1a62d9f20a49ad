"""The ``watcher`` command line. Every command honours WATCHER_DATABASE_URL and WATCHER_CONFIG."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta
from enum import Enum, StrEnum
from pathlib import Path
from typing import Annotated, Any, cast

import typer
from pydantic import ValidationError

from watcher import defaults, logs
from watcher.actions import ActionKind, act
from watcher.alerts import Alert, AlertKind
from watcher.auth import Role, create_token, list_tokens, revoke_token
from watcher.channels import ChannelDef, Renderer, build_channel, build_channels
from watcher.channels.rate import Rate
from watcher.config import Settings, load_settings, parse_duration
from watcher.dispatcher import rate_status
from watcher.errors import ConfigError, WatcherError
from watcher.incidents import INCIDENT_SORTS, Incident, IncidentSort
from watcher.outage import DATABASE_DOWN, reason
from watcher.redact import redact_text
from watcher.rules.loader import load_pack
from watcher.runtime import Runtime, freeze_heap
from watcher.silences import Silence, parse_matchers
from watcher.sources import catalog_for, platforms_for
from watcher.store import open_database, open_existing
from watcher.store import repository as repo
from watcher.store.database import utcnow
from watcher.validation import Format, RawRecord, Rejection, format_for_name, read_records

ALL_TEAMS = "*"  # what a bare ``scorecard --team`` stands for: every operator


class _Group(typer.core.TyperGroup):
    """``watcher scorecard --team`` with no value (every operator) predates ``--team
    TEAM``; the parser cannot take an optional value, so a bare one is filled in here."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if "scorecard" in args:
            at = args.index("scorecard")
            filled = list(args[:at + 1])
            for index, arg in enumerate(args[at + 1:], start=at + 1):
                filled.append(arg)
                following = args[index + 1] if index + 1 < len(args) else None
                if arg == "--team" and (following is None or following.startswith("-")):
                    filled.append(ALL_TEAMS)
            args = filled
        return super().parse_args(ctx, args)


app = typer.Typer(help="kpi-watch: KPI snapshots in, rule incidents with a timeline out.",
                  no_args_is_help=True, pretty_exceptions_enable=False, cls=_Group)
incidents_app = typer.Typer(help="List, show, acknowledge and resolve incidents.",
                            no_args_is_help=True)
rejected_app = typer.Typer(help="Records that were refused, with their raw text.",
                           no_args_is_help=True)
rules_app = typer.Typer(help="Check, test and backtest rule packs.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
channels_app = typer.Typer(help="Test channels and see how deliveries go.",
                           no_args_is_help=True)
tokens_app = typer.Typer(help="API tokens (stored hashed; shown once).", no_args_is_help=True)
silences_app = typer.Typer(help="Hold back notifications that match, for a while.",
                           no_args_is_help=True)
app.add_typer(incidents_app, name="incidents")
app.add_typer(rejected_app, name="rejected")
app.add_typer(rules_app, name="rules")
app.add_typer(db_app, name="db")
app.add_typer(silences_app, name="silences")
app.add_typer(tokens_app, name="tokens")
app.add_typer(channels_app, name="channels")
pip_app = typer.Typer(help="Performance-improvement plans: start, review, close, show.",
                      no_args_is_help=True)
app.add_typer(pip_app, name="pip")

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="Config file (YAML).",
                                                envvar="WATCHER_CONFIG")]


class OutputFormat(StrEnum):
    TABLE = "table"
    JSON = "json"


FormatOpt = Annotated[OutputFormat, typer.Option("--format", "-f")]


def _settings(config: Path | None, **overrides: Any) -> Settings:
    return load_settings(config, **overrides)


def _fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {redact_text(message)}", err=True)
    raise typer.Exit(code)


def timestamp(value: datetime) -> str:
    """The CLI's one way of writing a moment: ISO 8601, seconds, with the zone
    (``2026-11-02T06:00:00+00:00``); SQLite's zone-less values are UTC."""
    return (value.replace(tzinfo=UTC) if value.tzinfo is None else value).isoformat(
        timespec="seconds")


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return timestamp(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    return str(value)


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, ensure_ascii=False, indent=2, default=_json_value))


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime | Enum):
        return str(_json_value(value))
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, ensure_ascii=False, default=_json_value)
    return str(value)


def _fit(text: str, width: int) -> str:
    """``text`` in ``width`` columns; what is cut is marked with "…", never dropped silently."""
    return text if len(text) <= width else text[:width - 1] + "…"


LimitOpt = Annotated[int, typer.Option(min=1, max=1000, help="At most this many (a page)")]
OffsetOpt = Annotated[int, typer.Option(min=0, help="Skip this many (the next page)")]


def _page(name: str, items: list[Any], total: int, limit: int, offset: int) -> dict[str, Any]:
    """A JSON list that says how many there are in all and where the next page starts."""
    following = offset + len(items)
    return {"total": total, "limit": limit, "offset": offset,
            "next_offset": following if following < total else None, name: items}


def _page_footer(shown: int, total: int, limit: int, offset: int) -> None:
    if shown and (offset or shown < total):
        following = offset + shown
        more = f"; next page: --offset {following}" if following < total else ""
        typer.echo(f"({offset + 1}-{following} of {total}{more})")


def _table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    if not rows:
        typer.echo("(none)")
        return
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [min(60, max(len(c), *(len(row[i]) for row in cells)))
              for i, c in enumerate(columns)]
    typer.echo("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)))
    for row in cells:
        typer.echo("  ".join(_fit(v, w).ljust(w) for v, w in zip(row, widths, strict=True)))


@app.callback()
def _main(log_level: Annotated[str, typer.Option(help="debug, info, warning, error")] = "info",
          log_json: Annotated[bool | None, typer.Option(
              "--log-json/--log-text", help="Default: JSON unless stderr is a terminal")] = None,
          ) -> None:
    logs.configure(log_level, log_json)


@app.command()
def run(config: ConfigOpt = None,
        host: Annotated[str | None, typer.Option(help="Bind address")] = None,
        port: Annotated[int | None, typer.Option(help="HTTP port")] = None,
        with_examples: Annotated[bool, typer.Option(
            "--with-examples", help="Drop the bundled example data in the drop folder")] = False,
        ) -> None:
    """Run the daemon in the foreground: HTTP API, drop folder, dispatcher."""
    from watcher.daemon.runner import Daemon, listen, open_runtime

    settings = _settings(config, host=host, port=port)
    if config is None and Path("config.yaml").is_file():
        typer.echo("note: ./config.yaml is not read unless named (--config config.yaml or "
                   "WATCHER_CONFIG); running on the built-in defaults", err=True)
    sock = listen(settings.host, settings.port)  # a port in use fails before anything starts
    Path(settings.drop_folder).mkdir(parents=True, exist_ok=True)
    examples = defaults.examples() if with_examples else None
    runtime = open_runtime(settings)
    if runtime is None:  # stopped while waiting for the database
        return
    daemon = Daemon(runtime, examples=examples)
    freeze_heap()  # again: the daemon's own modules are loaded now
    daemon.serve(sock)


@app.command()
def init(folder: Annotated[Path, typer.Argument(help="Where to write (default: here)")]
         = Path("."),
         force: Annotated[bool, typer.Option(
             "--force", help="Overwrite files and folders that exist")] = False) -> None:
    """Write a commented config.yaml, editable copies of the built-in rule pack (with
    tests), templates and mappings, an empty targets file and roster, and .env.example."""
    from watcher.scaffold import init_folder

    written = init_folder(folder, force=force)
    for path in written:
        typer.echo(f"wrote {path}{'/' if path.is_dir() else ''}")
    config = (folder / "config.yaml").resolve()
    typer.echo(f"next: watcher rules test --config {config}\n"
               f"      watcher run --config {config}   (or export WATCHER_CONFIG={config})")


@app.command()
def ingest(files: Annotated[list[Path], typer.Argument(help="JSON, JSON Lines or CSV files")],
           config: ConfigOpt = None,
           fmt: Annotated[Format, typer.Option("--input-format", help="Default: by extension")]
           = Format.AUTO,
           output: FormatOpt = OutputFormat.TABLE,
           source: Annotated[str | None, typer.Option(
               help="Platform payload (amazon-spapi, shopee, tiktokshop, lingxing) or a "
                    "column mapping's name (mappings/*.yaml)")] = None,
           store: Annotated[str | None, typer.Option(help="Store id (with --source)")] = None,
           operator: Annotated[str | None, typer.Option(help="Operator (with --source)")] = None,
           ) -> None:
    """Ingest files through the same pipeline as the daemon; exit 1 if any record was rejected."""
    settings = _settings(config)
    sources = catalog_for(settings) if source else None
    if source and sources is not None:
        sources.check(source)  # an unknown name fails before anything is read
        if not store and sources.needs_store(source):
            _fail("--source needs --store (platform payloads do not name our store ids)")
    runtime = Runtime.open(settings)
    total: dict[str, Any] = {"files": []}
    any_rejected = False
    for path in files:
        try:
            content = path.read_bytes()
            if len(content) > runtime.settings.max_file_bytes:
                _fail(f"{path}: file is {len(content)} bytes; the limit is "
                      f"{runtime.settings.max_file_bytes} (max_file_bytes)")
            if source and sources is not None:
                records: Iterable[RawRecord | Rejection] = sources.records(
                    source, content, store=store, operator=operator)
            else:
                records = read_records(content, fmt if fmt is not Format.AUTO
                                       else format_for_name(path.name), max_records=None)
            report = runtime.pipeline.ingest(records, f"file:{path}")
        except OSError as exc:
            _fail(f"{path}: {exc.strerror}")
            return
        result = {"file": str(path), **report.as_dict()}
        total["files"].append(result)
        any_rejected = any_rejected or bool(report.rejected)
        if output is OutputFormat.TABLE:
            typer.echo(f"{path}: {report.accepted} accepted ({report.unchanged} unchanged, "
                       f"{report.restated} restated), {len(report.rejected)} rejected, "
                       f"{report.opened} incident(s) opened, {report.resolved} resolved")
            for r in report.rejected:
                where = f"{r.location}" + (f", field '{r.field}'" if r.field else "")
                typer.echo(f"  rejected {where}: {r.error}", err=True)
            for w in report.warnings:
                typer.echo(f"  warning {w.location}, field '{w.field}': {w.warning}", err=True)
    if output is OutputFormat.JSON:
        _print_json(total)
    runtime.close()
    raise typer.Exit(1 if any_rejected else 0)


def _incident_row(incident: Incident) -> dict[str, Any]:
    data = incident.model_dump(exclude={"fingerprint"})
    data["title"] = incident.title.get("en", "")
    return data


@incidents_app.command("list")
def incidents_list(config: ConfigOpt = None,
                   status: Annotated[str | None, typer.Option(
                       help="open, acknowledged or resolved")] = None,
                   severity: str | None = None, store: str | None = None,
                   operator: str | None = None, rule: str | None = None,
                   limit: LimitOpt = 100, offset: OffsetOpt = 0,
                   sort: Annotated[str, typer.Option(
                       help="newest (first) or severity (the most severe first, newest "
                            "first within each)")] = "newest",
                   output: FormatOpt = OutputFormat.TABLE) -> None:
    """List incidents, newest first (or most severe first), a page at a time."""
    if status not in (None, "open", "acknowledged", "resolved"):
        _fail("--status is open, acknowledged or resolved")
    if sort not in INCIDENT_SORTS:
        _fail(f"--sort is {' or '.join(INCIDENT_SORTS)}, not '{sort}'")
    order = cast(IncidentSort, sort)
    db = open_existing(_settings(config).database_url)
    with db.engine.connect() as conn:
        found = repo.list_incidents(conn, status=status, severity=severity, store=store,
                                    operator=operator, rule=rule, limit=limit, offset=offset,
                                    sort=order)
        total = repo.count_incidents(conn, status=status, severity=severity, store=store,
                                     operator=operator, rule=rule)
    rows = [i.model_dump(exclude={"fingerprint"}) for i in found]
    if output is OutputFormat.JSON:
        _print_json(_page("incidents", rows, total, limit, offset))
        return
    _table([_incident_row(i) for i in found],
           ["id", "status", "severity", "rule", "subject", "period", "opened_at", "title"])
    _page_footer(len(rows), total, limit, offset)


@incidents_app.command("show")
def incidents_show(incident_id: int, config: ConfigOpt = None,
                   output: FormatOpt = OutputFormat.TABLE) -> None:
    """One incident with its timeline."""
    db = open_existing(_settings(config).database_url)
    with db.engine.connect() as conn:
        incident = repo.get_incident(conn, incident_id)
        if incident is None:
            _fail(f"no incident {incident_id}", 1)
            return
        events = repo.incident_events_of(conn, incident_id)
    data = {**incident.model_dump(exclude={"fingerprint"}),
            "events": [{k: v for k, v in e.items() if k != "incident_id"} for e in events]}
    if output is OutputFormat.JSON:
        _print_json(data)
        return
    _show_incident(incident, events)


def _show_incident(incident: Incident, events: list[dict[str, Any]]) -> None:
    """The incident as the page shows it (the page's own view of evidence and timeline,
    in English), so that a value or a period reads the same in both."""
    from watcher.evaluation import format_value
    from watcher.web.views import evidence_rows, indicator_name, timeline

    typer.echo(f"#{incident.id} [{incident.status.value}] {incident.severity} {incident.rule}")
    typer.echo(f"  {incident.title.get('en', '')}")
    typer.echo(f"  {incident.title.get('zh-CN', '')}")
    typer.echo(f"  subject: {incident.subject_kind} {incident.subject}   store: "
               f"{incident.store or '-'}   operator: {incident.operator or '-'}   "
               f"period: {incident.period or '-'}")
    if incident.metric:
        typer.echo(f"  metric: {indicator_name(incident.metric, 'en')} "
                   f"{format_value(incident.metric, incident.value)} (threshold "
                   f"{format_value(incident.metric, incident.threshold)})")
    for row in evidence_rows(incident, "en"):
        typer.echo(f"  evidence: {row.period} {row.store} {row.indicator} {row.value} "
                   f"(target {row.target})")
    typer.echo("  timeline:")
    for line in timeline(events, "en"):
        note = f" - {line.note}" if line.note else ""
        at = timestamp(line.at) if isinstance(line.at, datetime) else str(line.at)
        typer.echo(f"    {at}  {line.label} by {line.actor}{note}")
        for detail in line.details:
            typer.echo(f"      {detail}")


def _act(kind: ActionKind, incident_id: int, by: str, note: str | None,
         config: Path | None) -> None:
    settings = _settings(config)
    incident = act(open_existing(settings.database_url), incident_id, kind, by, note,
                   public_url=settings.public_url)
    typer.echo(f"incident {incident_id} is {incident.status.value}")


ByOpt = Annotated[str, typer.Option("--by", help="Who does it")]
NoteOpt = Annotated[str | None, typer.Option("--note")]


@incidents_app.command("ack")
def incidents_ack(incident_id: int, by: ByOpt, note: NoteOpt = None,
                  config: ConfigOpt = None) -> None:
    """Acknowledge an open incident (stops escalation)."""
    _act("ack", incident_id, by, note, config)


@incidents_app.command("resolve")
def incidents_resolve(incident_id: int, by: ByOpt, note: NoteOpt = None,
                      config: ConfigOpt = None) -> None:
    """Resolve an incident by hand."""
    _act("resolve", incident_id, by, note, config)


@rejected_app.command("list")
def rejected_list(config: ConfigOpt = None, limit: LimitOpt = 100, offset: OffsetOpt = 0,
                  output: FormatOpt = OutputFormat.TABLE) -> None:
    """Rejected records, newest first, with the error and the raw text."""
    db = open_existing(_settings(config).database_url)
    with db.engine.connect() as conn:
        rows = repo.list_rejections(conn, limit, offset)
        total = repo.count_rejections(conn)
    if output is OutputFormat.JSON:
        _print_json(_page("rejected", rows, total, limit, offset))
        return
    _table(rows, ["id", "received_at", "source", "location", "field", "error", "raw"])
    _page_footer(len(rows), total, limit, offset)


@rules_app.command("check")
def rules_check(path: Annotated[Path | None, typer.Argument(
        help="Rule file or folder (default: the configured rules)")] = None,
        config: ConfigOpt = None) -> None:
    """Validate rule files; errors name the file and line."""
    settings = _settings(config)
    pack = load_pack(Path(path or settings.rules), platforms_for(settings))
    from watcher.rules.engine import RuleEngine
    RuleEngine(pack)  # compiling onto durable-rules is part of the check
    typer.echo(f"{len(pack.rules)} rule(s) OK in {len(pack.sources)} file(s), "
               f"version {pack.version}")


@rules_app.command("test")
def rules_test(paths: Annotated[list[Path] | None, typer.Argument(
        help="Rule test files or folders (default: the tests of the configured rules)")] = None,
        config: ConfigOpt = None) -> None:
    """Run rule unit tests: snapshots in, expected incidents out; exit 1 on a failure."""
    from watcher.rules.testing import rule_test_files, run_files

    settings = _settings(config)
    roots = paths or [settings.rules]
    files = [f for root in roots for f in rule_test_files(Path(root))]
    if not files:
        _fail(f"no rule tests (tests/*.yaml or *.test.yaml) under {', '.join(map(str, roots))}")
    results = run_files(files, platforms_for(settings))
    for result in results:
        for line in result.report():
            typer.echo(line)
    failed = sum(len(r.failed) for r in results)
    typer.echo(f"{len(results)} file(s), {sum(len(r.cases) for r in results)} case(s), "
               f"{failed} failed")
    if failed:
        raise typer.Exit(1)


@rules_app.command("backtest")
def rules_backtest(
    from_: Annotated[str, typer.Option("--from", help="First period, e.g. 2026-01")],
    to: Annotated[str, typer.Option("--to", help="Last period, e.g. 2026-10")],
    rules: Annotated[Path | None, typer.Option(help="Rule pack (default: configured)")] = None,
    config: ConfigOpt = None, output: FormatOpt = OutputFormat.TABLE,
) -> None:
    """Replay stored history through the current rules and report what would have fired
    and what would have changed; nobody is notified."""
    from watcher.backtest import backtest
    from watcher.period import Period
    from watcher.rules.engine import RuleEngine

    settings = _settings(config)
    try:
        first, last = Period.parse(from_), Period.parse(to)
    except ValueError as exc:
        _fail(f"--from/--to: {exc}")
        return
    pack = load_pack(Path(rules or settings.rules), platforms_for(settings))
    report = backtest(open_existing(settings.database_url), RuleEngine(pack), settings,
                      first, last)
    data = report.as_dict()
    if output is OutputFormat.JSON:
        _print_json(data)
        return
    typer.echo(f"{data['snapshots']} snapshot(s) from {first} to {last}, rules {pack.version}")
    _table(data["rules"], ["rule", "would_fire", "recorded"])
    for item in data["would_open_not_recorded"]:
        typer.echo(f"  + would open: {item['rule']} for {item['subject']}")
    for item in data["recorded_not_reproduced"]:
        typer.echo(f"  - would not open: {item['rule']} for {item['subject']}")


class CardFormat(StrEnum):
    TABLE = "table"
    JSON = "json"
    HTML = "html"


@app.command()
def scorecard(
    period: Annotated[str, typer.Option("--period", "-p",
                                        help="2026-10, 2026-Q3, 2026 or a week, 2026-W45")],
    operator: Annotated[str | None, typer.Argument(help="The operator (or --team)")] = None,
    team: Annotated[str | None, typer.Option(
        "--team", metavar="[TEAM]",
        help="One team's operators (by the roster), one row each; a bare --team: every "
             "operator with data in the period")] = None,
    config: ConfigOpt = None,
    output: Annotated[CardFormat, typer.Option("--format", "-f")] = CardFormat.TABLE,
) -> None:
    """An operator's scorecard for a month, quarter or year, or a team's (--team TEAM, or
    --team alone for everyone); --format html writes a printable page."""
    from watcher.assessment.roster import load_optional as load_roster
    from watcher.assessment.scorecard import TeamRow, card_period, operator_card, team_cards
    from watcher.assessment.scorecard_report import card_text, html_page, team_text
    from watcher.assessment.targets import load_optional
    from watcher.errors import InputError

    if (operator is None) == (team is None):
        _fail("give an OPERATOR or --team [TEAM] (not both)")
    try:
        chosen = card_period(period)
    except InputError as exc:
        _fail(f"--period: {exc.reason}")
        return
    settings = _settings(config)
    pack = load_pack(Path(settings.rules), platforms_for(settings))
    book = load_optional(settings.targets)
    roster = load_roster(settings.roster)
    one_team = None if team in (None, ALL_TEAMS) else team
    problem = roster.unknown(team=one_team)
    if problem:
        _fail(problem, 1)
    with open_existing(settings.database_url).engine.connect() as conn:
        if operator is None:
            cards = team_cards(conn, chosen, pack, book, settings.scorecard, roster, one_team)
        else:
            card = operator_card(conn, operator, chosen, pack, book, settings.scorecard, roster)
            if card is None:
                _fail(f"operator '{operator}' has no snapshots in {chosen}", 1)
                return
            cards = [card]
    if output is CardFormat.HTML:
        title = (f"Scorecards {chosen}" + (f", team {one_team}" if one_team else "")
                 if team else f"Scorecard {operator} {chosen}")
        typer.echo(html_page(title, cards))
    elif output is CardFormat.JSON:
        _print_json([TeamRow.of(c).model_dump(mode="json") for c in cards] if team
                    else cards[0].model_dump(mode="json"))
    else:
        typer.echo(team_text(cards) if team else card_text(cards[0]))


# -- PIP plans (watcher/plans.py) and the monthly report (watcher/monthly.py) -------------


class PipOutcome(StrEnum):
    PASSED = "passed"
    EXTENDED = "extended"
    FAILED = "failed"


def _pip_runtime(config: Path | None) -> tuple[Runtime, list[str]]:
    settings = _settings(config)
    runtime = Runtime.open(settings, db=open_existing(settings.database_url))
    return runtime, [r.id for r in runtime.pipeline.engine.pack.rules if r.kind == "streak"]


def _show_pip(pip_view: Any, output: OutputFormat) -> None:
    from watcher.assessment.pip import format_goal

    if output is OutputFormat.JSON:
        _print_json(pip_view.model_dump(mode="json"))
        return
    v = pip_view
    typer.echo(f"PIP #{v.incident} {v.operator}: {v.status.value}")
    typer.echo(f"  {v.title.get('en', '')}")
    if v.started_by:
        typer.echo(f"  started {v.starts_on} by {v.started_by}, ends {v.ends_on}")
    for goal in v.goals:
        typer.echo(f"  goal: {goal.metric} {format_goal(goal)}")
    for c in v.checkpoints:
        done = f"reviewed by {c.by}: {c.note}" if c.by else "not reviewed"
        typer.echo(f"  checkpoint {c.due}: {done}")
    if v.closed_by:
        typer.echo(f"  closed by {v.closed_by}{': ' + v.note if v.note else ''}")
    typer.echo("  timeline:")
    for e in v.events:
        note = f" - {e['note']}" if e.get("note") else ""
        typer.echo(f"    {e['at'].isoformat()}  {e['kind']} by {e['actor']}{note}")


def _pip_act(config: Path | None, incident_id: int, action: Any, output: OutputFormat,
             **kwargs: Any) -> None:
    from watcher import plans

    runtime, rules = _pip_runtime(config)
    try:
        found = plans.act(runtime.db, incident_id, action, rules, runtime.settings, utcnow(),
                          **kwargs)
    finally:
        runtime.close()
    _show_pip(found, output)


@pip_app.command("start")
def pip_start(incident_id: Annotated[int, typer.Argument(metavar="INCIDENT")], by: ByOpt,
              days: Annotated[int | None, typer.Option(
                  help="The plan's length (default: pip.days, 60)")] = None,
              goal: Annotated[list[str] | None, typer.Option(
                  help="METRIC=TARGET (or METRIC>=TARGET); repeat for several. Default: "
                       "the indicators the PIP evidence shows missed, with their targets")]
              = None,
              config: ConfigOpt = None, output: FormatOpt = OutputFormat.TABLE) -> None:
    """Start the plan of a PIP recommendation: goals, checkpoints, an end date."""
    from watcher.assessment.pip import parse_goal

    goals = [parse_goal(g) for g in goal or []]
    _pip_act(config, incident_id, "start", output, by=by, days=days, goals=goals)


@pip_app.command("show")
def pip_show(incident_id: Annotated[int, typer.Argument(metavar="INCIDENT")],
             config: ConfigOpt = None, output: FormatOpt = OutputFormat.TABLE) -> None:
    """A PIP: status, goals with their latest values, checkpoints, end date, timeline."""
    from watcher import plans

    runtime, rules = _pip_runtime(config)
    try:
        found = plans.show(runtime.db, incident_id, rules, utcnow())
    finally:
        runtime.close()
    _show_pip(found, output)


@pip_app.command("checkpoint")
def pip_checkpoint(incident_id: Annotated[int, typer.Argument(metavar="INCIDENT")],
                   by: ByOpt, note: Annotated[str, typer.Option("--note")],
                   config: ConfigOpt = None, output: FormatOpt = OutputFormat.TABLE) -> None:
    """A review note on a running plan (it reviews the earliest open checkpoint)."""
    _pip_act(config, incident_id, "checkpoint", output, by=by, note=note)


@pip_app.command("close")
def pip_close(incident_id: Annotated[int, typer.Argument(metavar="INCIDENT")],
              outcome: Annotated[PipOutcome, typer.Option("--outcome")], by: ByOpt,
              note: NoteOpt = None,
              days: Annotated[int | None, typer.Option(
                  help="extended: by how many days (default: pip.checkpoint_days)")] = None,
              config: ConfigOpt = None, output: FormatOpt = OutputFormat.TABLE) -> None:
    """Close a plan as passed or failed (the incident resolves), or extend it."""
    from watcher.assessment.pip import Outcome

    _pip_act(config, incident_id, "close", output, by=by, note=note, days=days,
             outcome=Outcome(outcome.value))


class ReportFormat(StrEnum):
    TEXT = "text"
    HTML = "html"
    JSON = "json"


@app.command()
def report(period: Annotated[str, typer.Option("--period", "-p", help="a month: 2026-10")],
           team: Annotated[str | None, typer.Option(help="one team (by the roster)")] = None,
           manager: Annotated[str | None, typer.Option(
               help="one manager's people (by the roster)")] = None,
           config: ConfigOpt = None,
           output: Annotated[ReportFormat, typer.Option("--format", "-f")] = ReportFormat.TEXT,
           ) -> None:
    """The monthly report managers receive: grades, scores, failing indicators, vetoes,
    PIPs due for review."""
    from watcher import monthly
    from watcher.assessment.monthly_report import report_html, report_text
    from watcher.assessment.roster import load_optional as load_roster
    from watcher.period import Period, PeriodKind

    try:
        chosen = Period.parse(period)
    except ValueError as exc:
        _fail(f"--period: {exc}")
        return
    if chosen.kind is not PeriodKind.MONTH:
        _fail("--period: the report covers a month, e.g. 2026-10")
    settings = _settings(config)
    problem = load_roster(settings.roster).unknown(team=team, manager=manager)
    if problem:
        _fail(problem, 1)
    runtime = Runtime.open(settings, db=open_existing(settings.database_url))
    try:
        with runtime.db.engine.connect() as conn:
            found = monthly.report_for(conn, runtime, chosen, utcnow(), team=team,
                                       manager=manager)
    finally:
        runtime.close()
    if output is ReportFormat.JSON:
        _print_json(found.model_dump(mode="json"))
    elif output is ReportFormat.HTML:
        typer.echo(report_html(found))
    else:
        typer.echo(report_text(found))


class DigestFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


@app.command()
def digest(week: Annotated[str | None, typer.Option(
               "--week", "-w", help="an ISO week: 2026-W47 (default: the last closed one)")]
           = None,
           route_index: Annotated[int | None, typer.Option(
               "--route", "-r", min=0,
               help="the route's place in routes: (0 is the first); default: every route "
                    "with a digest")] = None,
           language: Annotated[str, typer.Option(
               "--language", "-l", help="en or zh-CN (text)")] = "en",
           config: ConfigOpt = None,
           output: Annotated[DigestFormat, typer.Option("--format", "-f")] = DigestFormat.TEXT,
           ) -> None:
    """A route's weekly digest as its channels get it: opened, still open, resolved,
    worst stores, per team (``digest: weekly`` on a route; sends nothing)."""
    from watcher import weekly
    from watcher.assessment.roster import load_optional as load_roster
    from watcher.weekly_digest import chosen_week, digest_alert, due_week

    now = utcnow()
    try:
        chosen = chosen_week(week, now) if week else due_week(now, 1, 0)
    except ValueError as exc:
        _fail(f"--week: {exc}")
        return
    if language not in ("en", "zh-CN"):
        _fail(f"--language: en or zh-CN, not {language!r}")
    settings = _settings(config)
    if route_index is not None and route_index >= len(settings.routes):
        _fail(f"--route: there are {len(settings.routes)} routes (0 to "
              f"{len(settings.routes) - 1})" if settings.routes else "--route: no routes "
              "in the config")
    indexes = [route_index] if route_index is not None else [
        i for i, r in enumerate(settings.routes) if r.digest is not None]
    if not indexes:
        _fail("no route has a digest (digest: weekly); name one with --route N", 1)
    roster = load_roster(settings.roster)
    db = open_existing(settings.database_url)
    try:
        with db.engine.connect() as conn:
            found = [weekly.digest_for(conn, settings, roster, i, chosen, now)
                     for i in indexes]
    finally:
        db.dispose()
    if output is DigestFormat.JSON:
        _print_json(_page("digests", [d.model_dump() for d in found], len(found), len(found),
                          0))
        return
    renderer = Renderer(settings.templates)
    for shown in found:
        rendered = renderer.render(digest_alert(shown, settings.routes[shown.route], now),
                                   "text", language)
        typer.echo(rendered.body + "\n")


@db_app.command("upgrade")
def db_upgrade(config: ConfigOpt = None) -> None:
    """Apply the schema migrations (run before starting a new version)."""
    db = open_database(_settings(config).database_url, auto_upgrade=True)
    typer.echo(f"database at revision {db.current_revision()}")


@db_app.command("prune")
def db_prune(config: ConfigOpt = None, output: FormatOpt = OutputFormat.TABLE) -> None:
    """Remove what the retention settings no longer keep (the daemon does it hourly)."""
    from watcher.retention import prune

    settings = _settings(config)
    db = open_existing(settings.database_url)
    pruned = prune(db, settings.retention, utcnow())
    db.dispose()
    if pruned is None:
        _fail("another process (a daemon replica) is pruning now; nothing was done", code=1)
        return
    if output is OutputFormat.JSON:
        _print_json(pruned.as_dict())
        return
    typer.echo(f"{pruned.sent_notifications} delivered notification(s) and "
               f"{pruned.rejected_inputs} rejected input(s) removed, "
               f"{pruned.raw_payloads} raw payload(s) cleared")


@silences_app.command("add")
def silences_add(
    match: Annotated[list[str], typer.Option(
        "--match", "-m", help="key=value (audience, severity, rule, platform, store, operator, "
                              "team, label.<name>); repeat for several")],
    by: ByOpt,
    comment: Annotated[str, typer.Option("--comment", help="Why")],
    duration: Annotated[str, typer.Option("--duration", help="e.g. 30m, 2h, 1d")] = "2h",
    config: ConfigOpt = None,
) -> None:
    """Silence matching notifications from now for --duration."""
    try:
        matchers = parse_matchers(match)
        seconds = parse_duration(duration)
        now = utcnow()
        silence = Silence(matchers=matchers, starts_at=now,
                          ends_at=now + timedelta(seconds=seconds), created_by=by,
                          comment=comment, created_at=now)
    except (ValueError, ValidationError) as exc:
        _fail(str(exc))
        return
    db = open_database(_settings(config).database_url)
    with db.engine.begin() as conn:
        created = repo.add_silence(conn, silence)
    typer.echo(f"silence {created.id} until {timestamp(created.ends_at)}")


@silences_app.command("list")
def silences_list(config: ConfigOpt = None,
                  all_: Annotated[bool, typer.Option("--all", help="Include ended ones")] = False,
                  output: FormatOpt = OutputFormat.TABLE) -> None:
    """Silences (active ones unless --all)."""
    db = open_existing(_settings(config).database_url)
    with db.engine.connect() as conn:
        found = repo.list_silences(conn, active_at=None if all_ else utcnow())
    rows = [s.model_dump() for s in found]
    if output is OutputFormat.JSON:
        _print_json(rows)
        return
    _table(rows, ["id", "matchers", "starts_at", "ends_at", "created_by", "comment"])


@silences_app.command("expire")
def silences_expire(silence_id: int, config: ConfigOpt = None) -> None:
    """End a silence now."""
    db = open_existing(_settings(config).database_url)
    with db.engine.begin() as conn:
        silence = repo.expire_silence(conn, silence_id, utcnow())
    if silence is None:
        _fail(f"no silence {silence_id}", 1)
    typer.echo(f"silence {silence_id} ended")


@tokens_app.command("create")
def tokens_create(name: str,
                  role: Annotated[Role, typer.Option(help="ingest, viewer, responder or admin")],
                  config: ConfigOpt = None) -> None:
    """Create a token; the clear text is printed once, only its hash is stored."""
    db = open_database(_settings(config).database_url)
    token, clear = create_token(db, name, role)
    typer.echo(f"token {token.id} ({token.role.value}) for {token.name}:")
    typer.echo(clear)
    typer.echo("Store it now: it cannot be shown again.", err=True)


@tokens_app.command("list")
def tokens_list(config: ConfigOpt = None, output: FormatOpt = OutputFormat.TABLE) -> None:
    """Tokens with role, creation, last use and revocation (never the token itself)."""
    rows = [t.model_dump() for t in list_tokens(
        open_existing(_settings(config).database_url))]
    if output is OutputFormat.JSON:
        _print_json(rows)
        return
    _table(rows, ["id", "name", "role", "created_at", "last_used_at", "revoked_at"])


@tokens_app.command("revoke")
def tokens_revoke(token_id: int, config: ConfigOpt = None) -> None:
    """Revoke a token at once."""
    if not revoke_token(open_existing(_settings(config).database_url), token_id):
        _fail(f"no live token {token_id}", 1)
    typer.echo(f"token {token_id} revoked")


@channels_app.command("test")
def channels_test(
    name: Annotated[str | None, typer.Argument(help="A configured channel")] = None,
    url: Annotated[str | None, typer.Option(
        "--url", help="An apprise URL to try instead (${ENV} references allowed)")] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Print the exact requests apprise would send (secrets masked) "
                          "and send nothing")] = False,
    config: ConfigOpt = None,
) -> None:
    """Send a test message; report success or each URL's failure reason."""
    settings = _settings(config)
    if (name is None) == (url is None):
        _fail("give a channel NAME or --url URL")
    if url is not None:
        channel = build_channel(ChannelDef.from_config("test", {"urls": [url]}),
                                renderer=Renderer(settings.templates))
    else:
        channels = build_channels(settings, templates=settings.templates)
        if name not in channels:
            _fail(f"no channel '{name}' (configured: {', '.join(sorted(channels))})")
        channel = channels[str(name)]
    now = utcnow()
    alert = Alert(kind=AlertKind.TEST, rule="channel-test", severity="info", audience="test",
                  title={"en": f"kpi-watch test message ({now:%Y-%m-%d %H:%M} UTC)",
                         "zh-CN": f"kpi-watch 测试消息（{now:%Y-%m-%d %H:%M} UTC）"}, at=now)
    if dry_run:
        _dry_run(channel, alert)
        return
    report = channel.send(alert)
    for outcome in report.outcomes:
        mark = "ok" if outcome.ok else f"FAILED: {outcome.reason}"
        typer.echo(f"{outcome.url}: {mark}")
    if not report.ok:
        _fail(f"test message not delivered: {report.summary()}", 1)
    typer.echo("test message delivered")


def _dry_run(channel: Any, alert: Alert) -> None:
    """What ``channels test`` would send, request by request, without sending it."""
    from watcher.channels.dryrun import capture
    with capture() as requests:
        channel.send(alert)
    for request in requests:
        typer.echo("\n".join(request.lines()))
        typer.echo("")
    typer.echo(f"dry run: {len(requests)} request(s) shown, nothing sent")


@channels_app.command("status")
def channels_status(config: ConfigOpt = None, output: FormatOpt = OutputFormat.TABLE) -> None:
    """Each channel's deliveries: sent, waiting, failing, folded into digests, its send
    rate and what waits for it, last success and last failure."""
    settings = _settings(config)
    db = open_existing(settings.database_url)
    rates = _channel_rates(settings)
    now = utcnow()
    with db.engine.connect() as conn:
        rows = repo.channel_status(conn)
        for row in rows:
            known = row["channel"] in rates
            row.update(rate_status(conn, row["channel"], rates[row["channel"]], now) if known
                       else {"rate": "?", "in_window": None, "rate_limited": None})
    if output is OutputFormat.JSON:
        _print_json(rows)
        return
    _table(rows, ["channel", "sent", "pending", "failing", "folded", "digests", "rate",
                  "in_window", "rate_limited", "last_sent_at", "last_failure_at",
                  "last_error"])


def _channel_rates(settings: Settings) -> dict[str, Rate | None]:
    """Each configured channel's send rate ("?" where the channel cannot be built here,
    e.g. a secret missing from this shell's environment)."""
    rates: dict[str, Rate | None] = {"console": None}
    for name, data in settings.channels.items():
        try:
            rates[name] = build_channel(ChannelDef.from_config(name, data)).rate
        except ConfigError:
            rates.pop(name, None)
    return rates


def _clean_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Our own errors end a command with a message and a status, never a traceback."""
    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except ConfigError as exc:
            typer.echo(f"config error: {redact_text(str(exc))}", err=True)
            raise typer.Exit(2) from None
        except WatcherError as exc:
            typer.echo(f"error: {redact_text(str(exc))}", err=True)
            raise typer.Exit(1) from None
        except DATABASE_DOWN as exc:
            typer.echo(f"error: the database is unavailable: {reason(exc)}", err=True)
            raise typer.Exit(1) from None
    return run


for _typer in (app, incidents_app, rejected_app, rules_app, db_app, silences_app,
               tokens_app, channels_app, pip_app):
    for _command in _typer.registered_commands:
        if _command.callback is not None:
            _command.callback = _clean_errors(_command.callback)


def main() -> None:
    """The console entry point (``watcher``)."""
    freeze_heap()
    app()


if __name__ == "__main__":
    main()
