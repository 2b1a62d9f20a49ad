"""The ``watcher`` command line. Every command honours WATCHER_DATABASE_URL and WATCHER_CONFIG."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from watcher import logs
from watcher.actions import ActionKind, act
from watcher.alerts import Alert, AlertKind
from watcher.auth import Role, create_token, list_tokens, revoke_token
from watcher.channels import ChannelDef, Renderer, build_channel, build_channels
from watcher.config import Settings, load_settings, parse_duration
from watcher.errors import ConfigError, WatcherError
from watcher.incidents import Incident
from watcher.redact import redact_text
from watcher.rules.loader import load_pack
from watcher.runtime import Runtime, freeze_heap
from watcher.silences import Silence, parse_matchers
from watcher.sources import catalog_for
from watcher.store import open_database
from watcher.store import repository as repo
from watcher.store.database import utcnow
from watcher.validation import Format, RawRecord, Rejection, format_for_name, read_records

app = typer.Typer(help="kpi-watch: KPI snapshots in, rule incidents with a timeline out.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
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


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


def _table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    if not rows:
        typer.echo("(none)")
        return
    cells = [[str(r.get(c) if r.get(c) is not None else "-") for c in columns] for r in rows]
    widths = [min(60, max(len(c), *(len(row[i]) for row in cells)))
              for i, c in enumerate(columns)]
    typer.echo("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)))
    for row in cells:
        typer.echo("  ".join(v[:w].ljust(w) for v, w in zip(row, widths, strict=True)))


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
    from watcher.daemon.runner import Daemon

    settings = _settings(config, host=host, port=port)
    Path(settings.drop_folder).mkdir(parents=True, exist_ok=True)
    examples = _examples_folder() if with_examples else None
    daemon = Daemon(Runtime.open(settings), examples=examples)
    freeze_heap()  # again: the daemon's own modules are loaded now
    daemon.serve()


def _examples_folder() -> Path:
    folder = Path(__file__).resolve().parent.parent / "examples"
    if not folder.is_dir():
        _fail("the bundled examples/ folder was not found next to the package; run from a "
              "clone of the repository")
    return folder


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
                                       else format_for_name(path.name))
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
    if output is OutputFormat.JSON:
        _print_json(total)
    runtime.close()
    raise typer.Exit(1 if any_rejected else 0)


def _incident_row(incident: Incident) -> dict[str, Any]:
    data = incident.model_dump(mode="json", exclude={"fingerprint"})
    data["title"] = incident.title.get("en", "")
    return data


@incidents_app.command("list")
def incidents_list(config: ConfigOpt = None,
                   status: Annotated[str | None, typer.Option(
                       help="open, acknowledged or resolved")] = None,
                   severity: str | None = None, store: str | None = None,
                   operator: str | None = None, rule: str | None = None,
                   limit: int = 100, output: FormatOpt = OutputFormat.TABLE) -> None:
    """List incidents, newest first."""
    if status not in (None, "open", "acknowledged", "resolved"):
        _fail("--status is open, acknowledged or resolved")
    db = open_database(_settings(config).database_url)
    with db.engine.connect() as conn:
        found = repo.list_incidents(conn, status=status, severity=severity, store=store,
                                    operator=operator, rule=rule, limit=limit)
    if output is OutputFormat.JSON:
        _print_json([i.model_dump(mode="json", exclude={"fingerprint"}) for i in found])
        return
    _table([_incident_row(i) for i in found],
           ["id", "status", "severity", "rule", "subject", "period", "opened_at", "title"])


@incidents_app.command("show")
def incidents_show(incident_id: int, config: ConfigOpt = None,
                   output: FormatOpt = OutputFormat.TABLE) -> None:
    """One incident with its timeline."""
    db = open_database(_settings(config).database_url)
    with db.engine.connect() as conn:
        incident = repo.get_incident(conn, incident_id)
        if incident is None:
            _fail(f"no incident {incident_id}", 1)
            return
        events = repo.incident_events_of(conn, incident_id)
    data = {**incident.model_dump(mode="json", exclude={"fingerprint"}),
            "events": [{k: (v.isoformat() if hasattr(v, "isoformat") else v)
                        for k, v in e.items() if k != "incident_id"} for e in events]}
    if output is OutputFormat.JSON:
        _print_json(data)
        return
    typer.echo(f"#{incident.id} [{incident.status.value}] {incident.severity} {incident.rule}")
    typer.echo(f"  {incident.title.get('en', '')}")
    typer.echo(f"  {incident.title.get('zh-CN', '')}")
    typer.echo(f"  subject: {incident.subject_kind} {incident.subject}   store: "
               f"{incident.store or '-'}   operator: {incident.operator or '-'}   "
               f"period: {incident.period or '-'}")
    for item in incident.evidence:
        typer.echo(f"  evidence: {item.get('period')} {item.get('store', '')} "
                   f"{item.get('metric')} = {item.get('value')} vs target {item.get('target')}")
    typer.echo("  timeline:")
    for e in data["events"]:
        note = f" - {e['note']}" if e.get("note") else ""
        channel = e["data"].get("channel") if isinstance(e.get("data"), dict) else None
        extra = f" ({channel})" if channel else ""
        typer.echo(f"    {e['at']}  {e['kind']}{extra} by {e['actor']}{note}")


def _act(kind: ActionKind, incident_id: int, by: str, note: str | None,
         config: Path | None) -> None:
    db = open_database(_settings(config).database_url)
    incident = act(db, incident_id, kind, by, note)
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
def rejected_list(config: ConfigOpt = None, limit: int = 100,
                  output: FormatOpt = OutputFormat.TABLE) -> None:
    """Rejected records, newest first, with the error and the raw text."""
    db = open_database(_settings(config).database_url)
    with db.engine.connect() as conn:
        rows = repo.list_rejections(conn, limit)
    if output is OutputFormat.JSON:
        _print_json(rows)
        return
    _table(rows, ["id", "received_at", "source", "location", "field", "error", "raw"])


@rules_app.command("check")
def rules_check(path: Annotated[Path | None, typer.Argument(
        help="Rule file or folder (default: the configured rules)")] = None,
        config: ConfigOpt = None) -> None:
    """Validate rule files; errors name the file and line."""
    target = path or _settings(config).rules
    pack = load_pack(Path(target))
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

    roots = paths or [_settings(config).rules]
    files = [f for root in roots for f in rule_test_files(Path(root))]
    if not files:
        _fail(f"no rule tests (tests/*.yaml or *.test.yaml) under {', '.join(map(str, roots))}")
    results = run_files(files)
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
    pack = load_pack(Path(rules or settings.rules))
    report = backtest(open_database(settings.database_url), RuleEngine(pack), settings,
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
    period: Annotated[str, typer.Option("--period", "-p", help="2026-10, 2026-Q3 or 2026")],
    operator: Annotated[str | None, typer.Argument(help="The operator (or --team)")] = None,
    team: Annotated[bool, typer.Option(
        "--team", help="Every operator with data in the period, one row each")] = False,
    config: ConfigOpt = None,
    output: Annotated[CardFormat, typer.Option("--format", "-f")] = CardFormat.TABLE,
) -> None:
    """An operator's scorecard for a month, quarter or year, or the team's (--team);
    --format html writes a printable page."""
    from watcher.assessment.scorecard import TeamRow, card_period, operator_card, team_cards
    from watcher.assessment.scorecard_report import card_text, html_page, team_text
    from watcher.assessment.targets import load_optional
    from watcher.errors import InputError

    if (operator is None) != team:
        _fail("give an OPERATOR or --team (not both)")
    try:
        chosen = card_period(period)
    except InputError as exc:
        _fail(f"--period: {exc.reason}")
        return
    settings = _settings(config)
    pack, book = load_pack(Path(settings.rules)), load_optional(settings.targets)
    with open_database(settings.database_url).engine.connect() as conn:
        if operator is None:
            cards = team_cards(conn, chosen, pack, book, settings.scorecard)
        else:
            card = operator_card(conn, operator, chosen, pack, book, settings.scorecard)
            if card is None:
                _fail(f"operator '{operator}' has no snapshots in {chosen}", 1)
                return
            cards = [card]
    if output is CardFormat.HTML:
        title = f"Scorecards {chosen}" if team else f"Scorecard {operator} {chosen}"
        typer.echo(html_page(title, cards))
    elif output is CardFormat.JSON:
        _print_json([TeamRow.of(c).model_dump(mode="json") for c in cards] if team
                    else cards[0].model_dump(mode="json"))
    else:
        typer.echo(team_text(cards) if team else card_text(cards[0]))


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
    db = open_database(settings.database_url)
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
    typer.echo(f"silence {created.id} until {created.ends_at.isoformat()}")


@silences_app.command("list")
def silences_list(config: ConfigOpt = None,
                  all_: Annotated[bool, typer.Option("--all", help="Include ended ones")] = False,
                  output: FormatOpt = OutputFormat.TABLE) -> None:
    """Silences (active ones unless --all)."""
    db = open_database(_settings(config).database_url)
    with db.engine.connect() as conn:
        found = repo.list_silences(conn, active_at=None if all_ else utcnow())
    rows = [s.model_dump(mode="json") for s in found]
    if output is OutputFormat.JSON:
        _print_json(rows)
        return
    _table(rows, ["id", "matchers", "starts_at", "ends_at", "created_by", "comment"])


@silences_app.command("expire")
def silences_expire(silence_id: int, config: ConfigOpt = None) -> None:
    """End a silence now."""
    db = open_database(_settings(config).database_url)
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
    rows = [t.model_dump(mode="json") for t in list_tokens(
        open_database(_settings(config).database_url))]
    if output is OutputFormat.JSON:
        _print_json(rows)
        return
    _table(rows, ["id", "name", "role", "created_at", "last_used_at", "revoked_at"])


@tokens_app.command("revoke")
def tokens_revoke(token_id: int, config: ConfigOpt = None) -> None:
    """Revoke a token at once."""
    if not revoke_token(open_database(_settings(config).database_url), token_id):
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
    """Each channel's deliveries: sent, waiting, failing, last success and last failure."""
    db = open_database(_settings(config).database_url)
    with db.engine.connect() as conn:
        rows = repo.channel_status(conn)
    if output is OutputFormat.JSON:
        _print_json(rows)
        return
    _table(rows, ["channel", "sent", "pending", "failing", "last_sent_at", "last_failure_at",
                  "last_error"])


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
    return run


for _typer in (app, incidents_app, rejected_app, rules_app, db_app, silences_app,
               tokens_app, channels_app):
    for _command in _typer.registered_commands:
        if _command.callback is not None:
            _command.callback = _clean_errors(_command.callback)


def main() -> None:
    """The console entry point (``watcher``)."""
    freeze_heap()
    app()


if __name__ == "__main__":
    main()
