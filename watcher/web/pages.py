"""The web page: incidents with filters, one incident with its timeline, PIPs,
scorecards, login.

Server-rendered (Jinja2, autoescaped) and script-free: forms post and the
server redirects back, so it works on any phone browser and a Content
Security Policy can forbid every script. The rules are the API's: viewers
read, responders act; see ``access`` for the login cookie and CSRF checks.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, date, datetime, timedelta
from importlib.resources import files
from typing import Annotated, Any, Literal
from urllib.parse import quote, unquote, urlencode

from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, StrictUndefined, pass_context, select_autoescape
from jinja2.runtime import Context

from watcher import plans
from watcher.actions import ActionKind, act
from watcher.assessment.pip import GoalValue, Outcome, parse_goal, status_of
from watcher.assessment.scorecard import Scorecard, operator_card
from watcher.assessment.trend import SCORE_PERIODS, operator_cards
from watcher.assessment.trend import history_of as score_history_of
from watcher.auth import Authenticator, Role
from watcher.daemon.schemas import MAX_ID
from watcher.errors import InputError, InvalidTransition, NotFound
from watcher.evaluation import format_value
from watcher.incidents import Incident
from watcher.period import Period
from watcher.plans import PipAction
from watcher.runtime import Runtime
from watcher.store import plans as stored_plans
from watcher.store import repository as repo
from watcher.store.database import utcnow
from watcher.web.access import TOKEN_COOKIE, TOKEN_MAX_AGE, Visitor, safe_next, same_origin, visitor
from watcher.web.boardview import PER_PAGE, BoardFilter, board_rows
from watcher.web.cards import (
    card_path,
    card_view,
    chosen_period,
    default_period,
    known_operator,
    printable,
    team_lines,
    team_url,
)
from watcher.web.history import (
    CARD_PERIODS,
    Figure,
    card_figures,
    history_needed,
    incident_figure,
    previous_periods,
    score_figure,
    streak_figures,
)
from watcher.web.i18n import LANGUAGES, choose_language, day, translator, when
from watcher.web.views import (
    ListQuery,
    QueryProblem,
    evidence_rows,
    field_label,
    indicator_name,
    recommendation,
    rule_scope,
    shown,
    timeline,
    title_of,
)

LANG_COOKIE = "kw_lang"
NAME_COOKIE = "kw_name"
PIP_DAYS = 90


@pass_context
def _when(context: Context, value: datetime | None) -> str:
    return when(value, context["lang"])


@pass_context
def _day(context: Context, value: date | None) -> str:
    return day(value, context["lang"])


TEMPLATES = Environment(loader=PackageLoader("watcher.web", "templates"),
                        autoescape=select_autoescape(["html"]), undefined=StrictUndefined,
                        trim_blocks=True, lstrip_blocks=True)
TEMPLATES.filters["when"] = _when
TEMPLATES.filters["day"] = _day
CSS = files("watcher.web").joinpath("static/page.css").read_text(encoding="utf-8")
# The one inline style is allowed by its hash; nothing else (no script at all) may run.
CSP = ("default-src 'none'; style-src 'sha256-"
       + base64.b64encode(hashlib.sha256(CSS.encode()).digest()).decode()
       + "'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
SECURITY_HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
                    "Referrer-Policy": "same-origin", "Cache-Control": "no-store"}


def page_router(runtime: Runtime, auth: Authenticator) -> APIRouter:
    db = runtime.db
    public_url = runtime.settings.public_url
    secure = bool(public_url and public_url.startswith("https:"))
    router = APIRouter(include_in_schema=False)

    def language(request: Request) -> str:
        return choose_language(request.query_params.get("lang"),
                               request.cookies.get(LANG_COOKIE),
                               request.headers.get("accept-language"))

    def page(request: Request, template: str, status: int = 200,
             who: Visitor | None = None, **context: Any) -> HTMLResponse:
        lang = language(request)
        other = next(code for code in LANGUAGES if code != lang)
        switch = request.url.include_query_params(lang=other)
        html = TEMPLATES.get_template(template).render(
            t=translator(lang), lang=lang, css=CSS, who=who, error=context.pop("error", None),
            switch_url=f"{switch.path}?{switch.query}", **context)
        response = HTMLResponse(html, status, headers=SECURITY_HEADERS)
        if request.query_params.get("lang") in LANGUAGES:
            response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, httponly=True,
                                samesite="lax", secure=secure)
        return response

    def message(request: Request, status: int, key: str, who: Visitor | None = None,
                login: bool = False, **values: Any) -> HTMLResponse:
        text = translator(language(request))(key, **values)
        return page(request, "message.html", status, who, text=text, login=login)

    def to_login(request: Request) -> Response:
        here = safe_next(request.url.path
                         + (f"?{request.url.query}" if request.url.query else ""))
        if request.headers.get("sec-fetch-site") == "cross-site":
            # A link from a chat message or an e-mail: the browser withholds the
            # SameSite=Strict cookie on this navigation but sends it on ours.
            return page(request, "continue.html", target=here)
        return RedirectResponse("/login?" + urlencode({"next": here}), 303)

    def reader(request: Request) -> Visitor | Response:
        who = visitor(auth, request.headers, request.cookies)
        if not who.known:
            return to_login(request)
        if not who.can(Role.VIEWER):
            return message(request, 403, "error.forbidden", who, role=Role.VIEWER.value)
        return who

    def actor(request: Request) -> Visitor | Response:
        """Who posts a form: from this site, logged in, a responder; else the refusal."""
        if not same_origin(request.headers, public_url):
            return message(request, 403, "error.origin")
        who = visitor(auth, request.headers, request.cookies)
        if not who.known:
            return message(request, 401, "error.login", who, login=True)
        if not who.can(Role.RESPONDER):
            return message(request, 403, "error.forbidden", who, role=Role.RESPONDER.value)
        return who

    def back_to(url: str, by: str) -> Response:
        """After an action: back to the page, remembering the name for the next form."""
        response = RedirectResponse(url, 303)
        # Percent-encoded: a header is Latin-1, and names are often Chinese.
        response.set_cookie(NAME_COOKIE, quote(by), max_age=365 * 86400, httponly=True,
                            samesite="strict", secure=secure)
        return response

    def streak_rules() -> list[str]:
        """The rules that recommend a PIP, from the pack in force."""
        return [r.id for r in runtime.pipeline.engine.pack.rules if r.kind == "streak"]

    def history_of(incident: Incident, lang: str) -> Figure | None:
        """The incident's store and metric over its last periods, judged by its rule."""
        if not (incident.store and incident.platform and incident.metric and incident.period):
            return None
        rule = runtime.pipeline.engine.pack.get(incident.rule.partition("/")[0])
        with db.engine.connect() as conn:
            history = repo.store_history(conn, incident.platform, incident.store,
                                         Period.parse(incident.period).kind.value,
                                         history_needed(rule), incident.metric)
        return incident_figure(rule, incident.metric, incident.store, history, lang)

    def card_trend(operator: str, period: Period, lang: str
                   ) -> tuple[Figure | None, list[Figure]]:
        """The operator's score and grade over the last periods, and each indicator of the
        card over the last few: from the cards of those periods, built as the card is."""
        periods = previous_periods(period, SCORE_PERIODS)
        pipeline = runtime.pipeline
        with db.engine.connect() as conn:
            cards = operator_cards(conn, operator, periods, pipeline.engine.pack,
                                   pipeline.targets, runtime.settings.scorecard,
                                   pipeline.roster)
        history = score_history_of(operator, periods, cards, runtime.settings.scorecard)
        return (score_figure(history, lang),
                card_figures(cards[-CARD_PERIODS:], periods[-CARD_PERIODS:], lang))

    @router.get("/", response_class=HTMLResponse)
    def incidents_page(request: Request) -> Response:
        who = reader(request)
        if not isinstance(who, Visitor):
            return who
        lang = language(request)
        error, status, found, query, wrong = None, 200, [], ListQuery(), None
        try:
            query = ListQuery.parse(request.query_params)
        except QueryProblem as exc:
            error, status, wrong = exc.text(lang), 400, exc.field
        # the date fields show what was typed when it was refused, else the day it read
        days = {name: str(getattr(query, name)) if getattr(query, name)
                else shown(request.query_params.get(name, "")) for name in ("since", "until")}
        with db.engine.connect() as conn:
            if error is None:
                since, until = query.window
                found = repo.list_incidents(
                    conn, status=query.status, severity=query.severity, store=query.store,
                    operator=query.operator, rule=query.rule, since=since, until=until,
                    limit=query.per + 1, offset=query.offset,
                    sort=query.sort)
            facets = repo.incident_facets(conn)
        return page(request, "incidents.html", status, who, error=error, query=query, days=days,
                    wrong=wrong,
                    facets=facets, incidents=found[:query.per], more=len(found) > query.per,
                    titles={i.id: title_of(i, lang) for i in found})

    def incident_page(request: Request, who: Visitor, incident_id: int, status: int = 200,
                      error: str | None = None, form: dict[str, str] | None = None
                      ) -> HTMLResponse:
        with db.engine.connect() as conn:
            incident = repo.get_incident(conn, incident_id)
            events = repo.incident_events_of(conn, incident_id) if incident else []
        if incident is None:
            return message(request, 404, "error.not_found", who, id=incident_id)
        lang = language(request)
        form = form or {"by": unquote(request.cookies.get(NAME_COOKIE, "")), "note": ""}
        rule = runtime.pipeline.engine.pack.get(incident.rule.partition("/")[0])
        return page(request, "incident.html", status, who, error=error, incident=incident,
                    title=title_of(incident, lang), evidence=evidence_rows(incident, lang),
                    metric_name=indicator_name(incident.metric or "", lang),
                    value=format_value(incident.metric, incident.value),
                    threshold=format_value(incident.metric, incident.threshold),
                    timeline=timeline(events, lang), form=form,
                    can_act=who.can(Role.RESPONDER), figure=history_of(incident, lang),
                    rule=rule, rule_scope=rule_scope(rule, lang) if rule else None)

    @router.get("/incidents/{incident_id}", response_class=HTMLResponse)
    def incident_detail(request: Request,
                        incident_id: Annotated[int, Path(ge=1, le=MAX_ID)]) -> Response:
        who = reader(request)
        if not isinstance(who, Visitor):
            return who
        return incident_page(request, who, incident_id)

    @router.post("/incidents/{incident_id}/{action}", response_class=HTMLResponse)
    def incident_action(request: Request,
                        incident_id: Annotated[int, Path(ge=1, le=MAX_ID)],
                        action: Literal["ack", "resolve", "note"],
                        by: Annotated[str, Form()] = "",
                        note: Annotated[str, Form()] = "") -> Response:
        who = actor(request)
        if not isinstance(who, Visitor):
            return who
        by, note = by.strip(), note.strip()
        t = translator(language(request))
        problem = _form_problem(by, note, note_required=action == "note")
        if problem is not None:
            name, key, values = problem
            text = t("error.field", field=name, message=t(key, **values))
            return incident_page(request, who, incident_id, 400, text, {"by": by, "note": note})
        kind: ActionKind = action
        try:
            act(db, incident_id, kind, by, note or None,
                public_url=runtime.settings.public_url)
        except NotFound:
            return message(request, 404, "error.not_found", who, id=incident_id)
        except InvalidTransition as exc:
            return incident_page(request, who, incident_id, 409, str(exc),
                                 {"by": by, "note": note})
        return back_to(f"/incidents/{incident_id}", by)

    @router.get("/pip", response_class=HTMLResponse)
    def pip_page(request: Request) -> Response:
        who = reader(request)
        if not isinstance(who, Visitor):
            return who
        with db.engine.connect() as conn:
            found = repo.recommendations(conn, streak_rules(),
                                         utcnow() - timedelta(days=PIP_DAYS))
            planned = stored_plans.plans_of(conn, [i.id for i in found])
        lang = language(request)
        return page(request, "pip.html", 200, who, days=PIP_DAYS,
                    items=[recommendation(i, lang) for i in found],
                    titles={i.id: title_of(i, lang) for i in found},
                    figures={i.id: streak_figures(i.evidence, lang) for i in found},
                    statuses={i.id: status_of(i, planned.get(i.id)).value for i in found})

    def plan_page(request: Request, who: Visitor, incident_id: int, status: int = 200,
                  error: str | None = None, form: dict[str, str] | None = None) -> Response:
        try:
            shown = plans.show(db, incident_id, streak_rules(), runtime.pipeline.clock())
        except NotFound:
            return message(request, 404, "pip.not_found", who, id=incident_id)
        lang = language(request)
        t = translator(lang)
        form = form or {"by": unquote(request.cookies.get(NAME_COOKIE, "")), "note": "",
                        "days": str(runtime.settings.pip.days), "goals": ""}
        return page(request, "pip_plan.html", status, who, error=error, pip=shown,
                    title=shown.title.get(lang) or shown.title.get("en", ""),
                    goals=[plan_goal(g, lang, t) for g in shown.goals],
                    timeline=timeline(shown.events, lang), form=form,
                    can_act=who.can(Role.RESPONDER))

    @router.get("/pip/{incident_id}", response_class=HTMLResponse)
    def pip_detail(request: Request,
                   incident_id: Annotated[int, Path(ge=1, le=MAX_ID)]) -> Response:
        who = reader(request)
        if not isinstance(who, Visitor):
            return who
        return plan_page(request, who, incident_id)

    @router.post("/pip/{incident_id}/{action}", response_class=HTMLResponse)
    def pip_action(request: Request, incident_id: Annotated[int, Path(ge=1, le=MAX_ID)],
                   action: PipAction, by: Annotated[str, Form()] = "",
                   note: Annotated[str, Form()] = "", days: Annotated[str, Form()] = "",
                   goals: Annotated[str, Form()] = "",
                   outcome: Annotated[str, Form()] = "") -> Response:
        who = actor(request)
        if not isinstance(who, Visitor):
            return who
        by, note = by.strip(), note.strip()
        form = {"by": by, "note": note, "days": days, "goals": goals}
        t = translator(language(request))
        try:
            parsed = plan_form(action, days, goals, outcome)
            plans.act(db, incident_id, action, streak_rules(), runtime.settings,
                      runtime.pipeline.clock(), by=by, note=note or None, **parsed)
        except InputError as exc:
            return plan_page(request, who, incident_id, 400,
                             t("error.field", field=field_label(language(request), exc.field,
                                                                "pip.form"),
                               message=exc.reason), form)
        except NotFound:
            return message(request, 404, "pip.not_found", who, id=incident_id)
        except InvalidTransition as exc:
            return plan_page(request, who, incident_id, 409, str(exc), form)
        return back_to(f"/pip/{incident_id}", by)

    def card_period_of(request: Request) -> tuple[str, Period | None, str | None]:
        """(as typed, the period, the field's error); the last full month by default."""
        today = runtime.pipeline.clock().astimezone(UTC).date()
        text = (request.query_params.get("period") or "").strip() or default_period(today)
        try:
            return text, chosen_period(text), None
        except InputError:
            t = translator(language(request))
            return (printable(text), None,
                    t("error.field", field=field_label(language(request), "period", "team"),
                      message=t("error.period")))

    @router.get("/scorecards", response_class=HTMLResponse)
    def team_page(request: Request) -> Response:
        who = reader(request)
        if not isinstance(who, Visitor):
            return who
        text, period, error = card_period_of(request)
        team = (request.query_params.get("team") or "").strip()[:200].replace("\x00", "")
        cards: list[Scorecard] = []
        if period is not None:
            with db.engine.connect() as conn:
                cards = runtime.kept.teams.cards(
                    conn, period, runtime.pipeline.engine.pack, runtime.pipeline.targets,
                    runtime.settings.scorecard, runtime.pipeline.roster, team or None)
        return page(request, "scorecards.html", 400 if error else 200, who, error=error,
                    period=period.text if period else None, period_text=text, team_text=team,
                    form_action="/scorecards", lines=team_lines(cards, language(request)))

    @router.get("/scorecards/{operator:path}", response_class=HTMLResponse)
    def card_page(request: Request, operator: str) -> Response:
        who = reader(request)
        if not isinstance(who, Visitor):
            return who
        if not operator:  # "/scorecards/": the team
            return RedirectResponse(team_url(request.query_params.get("period")), 303)
        text, period, error = card_period_of(request)
        lang = language(request)
        if period is None:
            return page(request, "scorecard.html", 400, who, error=error, view=None,
                        heading=printable(operator), pip_links=[], period_text=text,
                        form_action=card_path(operator), team_url=team_url(None))
        card, pip_links = None, []
        if known_operator(operator):
            with db.engine.connect() as conn:
                card = operator_card(conn, operator, period, runtime.pipeline.engine.pack,
                                     runtime.pipeline.targets, runtime.settings.scorecard,
                                     runtime.pipeline.roster)
                pip_links = [ListQuery(operator=operator, rule=rule).url()
                             for rule in streak_rules()
                             if repo.list_incidents(conn, operator=operator, rule=rule, limit=1)]
        if card is None:
            return message(request, 404, "error.no_card", who, operator=printable(operator),
                           period=period.text)
        heading = translator(lang)("card.heading", operator=operator, period=period.text)
        scores, figures = card_trend(operator, period, lang)
        return page(request, "scorecard.html", 200, who, view=card_view(card, lang),
                    heading=heading, pip_links=pip_links, period_text=text,
                    form_action=card_path(operator), team_url=team_url(period.text),
                    scores=scores, figures=figures)

    @router.get("/board", response_class=HTMLResponse)
    def board_page(request: Request) -> Response:
        who = reader(request)
        if not isinstance(who, Visitor):
            return who
        lang = language(request)
        try:
            chosen, error = BoardFilter.parse(request.query_params), None
        except InputError as exc:
            t = translator(lang)
            chosen, error = BoardFilter(), t("error.field",
                                             field=field_label(lang, exc.field, "board"),
                                             message=exc.reason)
        pipeline = runtime.pipeline
        with db.engine.connect() as conn:
            board = runtime.kept.board.board(
                conn, pipeline.engine.pack, pipeline.targets, pipeline.roster,
                platform=chosen.platform, operator=chosen.operator,
                dimension=chosen.dimension, team=chosen.team).page(chosen.offset, PER_PAGE)
            unknown = (runtime.platforms.unknown(
                chosen.platform, seen=runtime.kept.board.facets()["platform"])
                       if chosen.platform else None)
            if unknown is not None:  # the whole board, with the reason, not an empty one
                t = translator(lang)
                reason = t("error.platform", name=unknown.name,
                           known=t("list.names").join(unknown.known))
                if unknown.hint:
                    reason += t("error.platform_hint", hint=unknown.hint)
                chosen, error = BoardFilter(), t("error.field", field="platform",
                                                 message=reason)
                board = runtime.kept.board.board(
                    conn, pipeline.engine.pack, pipeline.targets, pipeline.roster
                ).page(0, PER_PAGE)
        return page(request, "board.html", 400 if error else 200, who, error=error,
                    chosen=chosen, facets=runtime.kept.board.facets(),
                    board=board, per=PER_PAGE, rows=board_rows(board, lang))

    @router.get("/login", response_class=HTMLResponse)
    def login_form(request: Request) -> Response:
        if auth.open_mode():
            return RedirectResponse("/", 303)
        return page(request, "login.html", next=safe_next(request.query_params.get("next")))

    @router.post("/login", response_class=HTMLResponse)
    def login(request: Request, token: Annotated[str, Form()] = "",
              next_: Annotated[str, Form(alias="next")] = "/") -> Response:
        if not same_origin(request.headers, public_url):
            return message(request, 403, "error.origin")
        target = safe_next(next_)
        if auth.open_mode():
            return RedirectResponse(target, 303)
        token = token.strip()
        role = auth.role_of(token) if token and "\x00" not in token else None
        t = translator(language(request))
        if role is None:
            return page(request, "login.html", 401, error=t("login.bad"), next=target)
        if not role.allows(Role.VIEWER):
            return page(request, "login.html", 403, error=t("login.ingest"), next=target)
        response = RedirectResponse(target, 303)
        response.set_cookie(TOKEN_COOKIE, token, max_age=TOKEN_MAX_AGE, httponly=True,
                            samesite="strict", secure=secure)
        return response

    @router.post("/logout")
    def logout(request: Request) -> Response:
        if not same_origin(request.headers, public_url):
            return message(request, 403, "error.origin")
        response = RedirectResponse("/login", 303)
        response.delete_cookie(TOKEN_COOKIE, httponly=True, samesite="strict", secure=secure)
        return response

    return router


def plan_goal(goal: GoalValue, lang: str, t: Any) -> dict[str, str]:
    """A goal's row on the plan page, in the page's language and units."""
    value = "-" if goal.value is None else \
        f"{format_value(goal.metric, goal.value)} ({goal.period})"
    met = "none" if goal.met is None else ("yes" if goal.met else "no")
    return {"name": indicator_name(goal.metric, lang),
            "target": f"{goal.comparator.value} {format_value(goal.metric, goal.target)}",
            "value": value, "met": t(f"pip.met.{met}")}


def plan_form(action: str, days: str, goals: str, outcome: str) -> dict[str, Any]:
    """The plan forms' optional fields, checked; raises InputError naming the field."""
    parsed: dict[str, Any] = {}
    if days.strip():
        try:
            parsed["days"] = int(days.strip())
        except ValueError:
            raise InputError("is a whole number of days", field="days") from None
    if action == "start":
        parsed["goals"] = [parse_goal(line) for line in goals.splitlines() if line.strip()]
    if action == "close":
        if outcome not in ("passed", "extended", "failed"):
            raise InputError("is passed, extended or failed", field="outcome")
        parsed["outcome"] = Outcome(outcome)
    return parsed


def _form_problem(by: str, note: str, *, note_required: bool
                  ) -> tuple[str, str, dict[str, Any]] | None:
    """(field, message key, values) of the first thing wrong with an action form."""
    for name, value, limit, required in (("by", by, 200, True),
                                         ("note", note, 5000, note_required)):
        if required and not value:
            return name, "error.required", {}
        if len(value) > limit:
            return name, "error.too_long", {"max": limit}
        if "\x00" in value:
            return name, "error.nul", {}
    return None
