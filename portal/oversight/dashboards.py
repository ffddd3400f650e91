"""The panel's dashboards: what is happening across sites, as figures the database aggregates.

Each function answers one page with a handful of GROUP BY queries over indexed columns, or reads
the running totals kept as answers are written (portal/oversight/tallies.py), never by loading
rows into Python, so a page costs about the same at 100 patients as at 100,000
(bench/dashboards.py). Every chart carries its figures, which the page also shows as a table.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from functools import lru_cache
from statistics import median

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session, selectinload

from portal.consent.journey_models import (
    Consent,
    ConsentStatus,
    Withdrawal,
    WithdrawalScope,
)
from portal.consent.models import (
    ComprehensionQuestion,
    ConsentDocument,
    DocumentSection,
    DocumentText,
    DocumentVersion,
    WithdrawalDataOption,
)
from portal.consent.readability import PLAIN_LANGUAGE_TARGET, Readability, score
from portal.incidents.forms import CATEGORY_LABELS, SEVERITY_LABELS
from portal.incidents.models import Category, Incident, Severity, Status
from portal.oversight.models import QuestionTally, SectionTally
from portal.review import services as review
from portal.review.models import Submission

ANALYSIS_LANGUAGE = "en-GB"  # the language questions are analysed and scored in
WITHDRAWAL_MONTHS = 18
CONFUSING_FIRST_ATTEMPT = 70.0  # a question fewer than this % answer right first time


@dataclass(frozen=True)
class Series:
    label: str
    values: list[float | int | None]


@dataclass(frozen=True)
class Chart:
    """A chart and its data table: labels down the side, one column per series."""

    id: str
    title: str
    kind: str  # "bar" or "line"
    labels: list[str]
    series: list[Series]
    unit: str = "count"  # count, percent, days or seconds: how values are shown
    stacked: bool = False
    horizontal: bool = False
    target: float | None = None  # drawn as a line across the chart, e.g. the 60-day target
    target_label: str = ""

    @property
    def is_empty(self) -> bool:
        return not self.labels or all(
            not value for series in self.series for value in series.values
        )

    def config(self) -> dict:
        """What charts.js hands to Chart.js (labels and numbers only: no markup)."""
        datasets = [
            {"type": self.kind, "label": series.label, "data": series.values}
            for series in self.series
        ]
        if self.target is not None:
            datasets.append(
                {
                    "type": "line",
                    "label": self.target_label,
                    "data": [self.target] * len(self.labels),
                    "target": True,
                }
            )
        return {
            "labels": self.labels,
            "datasets": datasets,
            "unit": self.unit,
            "stacked": self.stacked,
            "horizontal": self.horizontal,
        }


def _percent(part: int | None, whole: int | None) -> float | None:
    return round(100 * (part or 0) / whole, 1) if whole else None


# --- the consent funnel -------------------------------------------------------------------------


FUNNEL_STAGES = (
    ("offered", _l("Offered")),
    ("reading", _l("Started reading")),
    ("understood", _l("Understanding checked")),
    ("signed", _l("Signed")),
    ("countersigned", _l("Countersigned")),
    ("withdrawn", _l("Withdrawn")),
)


@dataclass(frozen=True)
class VersionLabel:
    id: int
    slug: str
    version: str

    def __str__(self) -> str:
        return f"{self.slug} v{self.version}"


def _versions(session: Session, ids) -> dict[int, VersionLabel]:
    rows = session.execute(
        select(DocumentVersion.id, ConsentDocument.slug, DocumentVersion.version)
        .join(ConsentDocument)
        .where(DocumentVersion.id.in_(list(ids)))
    )
    return {row.id: VersionLabel(row.id, row.slug, row.version) for row in rows}


def consent_funnel(session: Session) -> Chart:
    """How far patients got, per consent document version."""
    counted = session.execute(
        select(
            Consent.version_id,
            func.count(),
            func.count(Consent.opened_at),
            func.count(Consent.comprehension_completed_at),
            func.count(Consent.signed_at),
            func.count(Consent.completed_at),
            func.sum(case((Consent.status == ConsentStatus.WITHDRAWN.value, 1), else_=0)),
        ).group_by(Consent.version_id)
    ).all()
    versions = _versions(session, [row[0] for row in counted])
    ordered = sorted(counted, key=lambda row: (versions[row[0]].slug, row[0]))
    return Chart(
        id="funnel",
        title=_("Consent funnel by document version"),
        kind="bar",
        labels=[str(label) for _key, label in FUNNEL_STAGES],
        series=[Series(str(versions[row[0]]), [int(n or 0) for n in row[1:]]) for row in ordered],
    )


# --- comprehension item analysis ------------------------------------------------------------


@dataclass
class QuestionFigures:
    key: str
    prompt: str
    section_key: str
    answered: int = 0  # patients who answered it at least once
    first_correct: int = 0
    attempts: int = 0
    teach_backs: int = 0

    @property
    def first_attempt_rate(self) -> float | None:
        return _percent(self.first_correct, self.answered)

    @property
    def mean_attempts(self) -> float | None:
        return round(self.attempts / self.answered, 2) if self.answered else None

    @property
    def teach_back_rate(self) -> float | None:
        return _percent(self.teach_backs, self.answered)

    @property
    def confusing(self) -> bool:
        rate = self.first_attempt_rate
        return rate is not None and rate < CONFUSING_FIRST_ATTEMPT


@dataclass
class SectionFigures:
    key: str
    title: str
    readability: Readability | None
    visits: int = 0
    mean_seconds: float | None = None
    questions: list[QuestionFigures] = field(default_factory=list)

    @property
    def below_target(self) -> bool:
        return self.readability is not None and not self.readability.meets_target

    @property
    def confusion(self) -> float:
        """How much this section's questions trip patients up: 100 minus the lowest first-time
        rate among them (0 when nobody has answered yet)."""
        rates = [q.first_attempt_rate for q in self.questions if q.first_attempt_rate is not None]
        return round(100 - min(rates), 1) if rates else 0.0


@dataclass(frozen=True)
class ComprehensionAnalysis:
    version: VersionLabel
    language: str
    sections: list[SectionFigures]
    questions: list[QuestionFigures]
    target: float = PLAIN_LANGUAGE_TARGET

    @property
    def most_confusing(self) -> list[SectionFigures]:
        """The sections whose questions are hardest, worst first (those with a problem)."""
        ranked = sorted(self.sections, key=lambda s: s.confusion, reverse=True)
        return [s for s in ranked if any(q.confusing for q in s.questions)][:3]

    def question_chart(self) -> Chart:
        return Chart(
            id="questions",
            title=_("Answered correctly at the first attempt, by question"),
            kind="bar",
            labels=[q.key for q in self.questions],
            series=[
                Series(
                    _("First-attempt correct (%)"), [q.first_attempt_rate for q in self.questions]
                ),
                Series(_("Teach-back needed (%)"), [q.teach_back_rate for q in self.questions]),
            ],
            unit="percent",
            target=CONFUSING_FIRST_ATTEMPT,
            target_label=_("Flag below %(rate)d%%", rate=int(CONFUSING_FIRST_ATTEMPT)),
        )

    def time_chart(self) -> Chart:
        return Chart(
            id="section-time",
            title=_("Mean time spent reading each section (seconds)"),
            kind="bar",
            labels=[s.title for s in self.sections],
            series=[Series(_("Mean seconds"), [s.mean_seconds for s in self.sections])],
            unit="seconds",
            horizontal=True,
        )


def analysed_versions(session: Session) -> list[VersionLabel]:
    """Versions patients have been offered, most used first (the default is the first)."""
    rows = session.execute(
        select(Consent.version_id, func.count())
        .group_by(Consent.version_id)
        .order_by(func.count().desc())
    ).all()
    labels = _versions(session, [row[0] for row in rows])
    return [labels[row[0]] for row in rows]


@lru_cache(maxsize=256)
def _section_score(body: str, language: str) -> Readability | None:
    return score(body, language)


def comprehension_analysis(session: Session, version: VersionLabel) -> ComprehensionAnalysis:
    text = session.scalar(
        select(DocumentText).where(
            DocumentText.version_id == version.id, DocumentText.language == ANALYSIS_LANGUAGE
        )
    ) or session.scalar(select(DocumentText).where(DocumentText.version_id == version.id))
    sections = [
        SectionFigures(s.key, s.title, _section_score(s.body, text.language))
        for s in session.scalars(
            select(DocumentSection)
            .where(DocumentSection.text_id == text.id)
            .order_by(DocumentSection.position)
        )
    ]
    by_section = {s.key: s for s in sections}
    questions = {
        q.key: QuestionFigures(q.key, q.prompt, q.section_key)
        for q in session.scalars(
            select(ComprehensionQuestion)
            .where(ComprehensionQuestion.text_id == text.id)
            .order_by(ComprehensionQuestion.position)
        )
    }
    for tally in session.scalars(
        select(QuestionTally).where(QuestionTally.version_id == version.id)
    ):
        if tally.question_key in questions:
            figures = questions[tally.question_key]
            figures.answered, figures.first_correct = tally.patients, tally.first_correct
            figures.attempts, figures.teach_backs = tally.attempts, tally.teach_backs
    for tally in session.scalars(select(SectionTally).where(SectionTally.version_id == version.id)):
        if tally.section_key in by_section and tally.visits:
            by_section[tally.section_key].visits = tally.visits
            by_section[tally.section_key].mean_seconds = round(tally.seconds / tally.visits, 1)
    for figures in questions.values():
        if figures.section_key in by_section:
            by_section[figures.section_key].questions.append(figures)
    return ComprehensionAnalysis(version, text.language, sections, list(questions.values()))


# --- withdrawals --------------------------------------------------------------------------------


# The same words as the withdrawal pages (templates/withdrawal/_macros.html).
SCOPE_LABELS = {
    WithdrawalScope.STUDY.value: _l("Stopped taking part in the study"),
    WithdrawalScope.TREATMENT.value: _l("Stopped treatment sessions, staying in follow-up"),
    WithdrawalScope.OPTIONAL_ITEM.value: _l("Took back one optional item"),
}


def _month_starts(today: dt.date, months: int) -> list[dt.date]:
    year, month = today.year, today.month
    starts = []
    for _month in range(months):
        starts.append(dt.date(year, month, 1))
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return list(reversed(starts))


def withdrawals_over_time(session: Session, today: dt.date) -> Chart:
    """Withdrawals per month (when the patient told us) by what they withdrew from."""
    months = _month_starts(today, WITHDRAWAL_MONTHS)
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for day, scope, count in session.execute(  # at most a few hundred days: months in Python
        select(Withdrawal.communicated_on, Withdrawal.scope, func.count())
        .where(Withdrawal.communicated_on >= months[0])
        .group_by(Withdrawal.communicated_on, Withdrawal.scope)
    ):
        counts[(day.strftime("%Y-%m"), scope)] += int(count)
    keys = [m.strftime("%Y-%m") for m in months]
    return Chart(
        id="withdrawals",
        title=_("Withdrawals by month and by what was withdrawn from"),
        kind="bar",
        labels=keys,
        series=[
            Series(str(label), [counts[(key, scope)] for key in keys])
            for scope, label in SCOPE_LABELS.items()
        ],
        stacked=True,
    )


def withdrawals_by_data_option(session: Session) -> Chart:
    """What patients chose to happen to their data, by scope."""
    option_labels = dict(
        session.execute(
            select(WithdrawalDataOption.key, WithdrawalDataOption.label)
            .join(DocumentText, DocumentText.id == WithdrawalDataOption.text_id)
            .where(DocumentText.language == ANALYSIS_LANGUAGE)
        ).all()
    )
    counts: dict[tuple[str, str], int] = defaultdict(int)
    options: list[str] = []
    for option, scope, count in session.execute(
        select(Withdrawal.data_option_key, Withdrawal.scope, func.count())
        .group_by(Withdrawal.data_option_key, Withdrawal.scope)
        .order_by(Withdrawal.data_option_key)
    ):
        key = option or ""
        counts[(key, scope)] = int(count)
        if key not in options:
            options.append(key)
    return Chart(
        id="data-options",
        title=_("Withdrawals by the choice made about data already collected"),
        kind="bar",
        labels=[option_labels.get(key, key) if key else _("No choice needed") for key in options],
        series=[
            Series(str(label), [counts[(key, scope)] for key in options])
            for scope, label in SCOPE_LABELS.items()
        ],
        stacked=True,
        horizontal=True,
    )


# --- incidents ----------------------------------------------------------------------------------


INCIDENT_STATUS_LABELS = {
    Status.REPORTED: _l("Waiting for triage"),
    Status.INVESTIGATING: _l("Investigating"),
    Status.RESPONSE_INVITED: _l("Therapist's response invited"),
    Status.CLOSED: _l("Closed"),
}


def incident_charts(session: Session) -> list[Chart]:
    """Concerns by category (split by severity) and by status (split by severity)."""
    severities = [*Severity, None]
    severity_names = {**SEVERITY_LABELS, None: _l("Not triaged yet")}
    by_category: dict[tuple[str, str | None], int] = defaultdict(int)
    by_status: dict[tuple[str, str | None], int] = defaultdict(int)
    for category, status, severity, count in session.execute(
        select(Incident.category, Incident.status, Incident.severity, func.count()).group_by(
            Incident.category, Incident.status, Incident.severity
        )
    ):
        by_category[(category, severity)] += int(count)
        by_status[(status, severity)] += int(count)
    return [
        Chart(
            id="incident-categories",
            title=_("Concerns by category and severity"),
            kind="bar",
            labels=[str(CATEGORY_LABELS[c]) for c in Category],
            series=[
                Series(str(severity_names[s]), [by_category[(c.value, s)] for c in Category])
                for s in severities
            ],
            stacked=True,
            horizontal=True,
        ),
        Chart(
            id="incident-status",
            title=_("Concerns by status and severity"),
            kind="bar",
            labels=[str(INCIDENT_STATUS_LABELS[s]) for s in Status],
            series=[
                Series(str(severity_names[sev]), [by_status[(s.value, sev)] for s in Status])
                for sev in severities
            ],
            stacked=True,
        ),
    ]


# --- review timelines ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ReviewTimeline:
    submission: Submission
    days: int
    stopped_days: int
    decided: bool

    @property
    def over_target(self) -> bool:
        return self.days > self.target

    target: int = 60


@dataclass(frozen=True)
class ReviewTimelines:
    rows: list[ReviewTimeline]
    target: int

    @property
    def decided(self) -> list[ReviewTimeline]:
        return [row for row in self.rows if row.decided]

    @property
    def median_days(self) -> float | None:
        days = [row.days for row in self.decided]
        return median(days) if days else None

    @property
    def over_target_count(self) -> int:
        return sum(1 for row in self.rows if row.over_target)

    def chart(self) -> Chart:
        return Chart(
            id="review-days",
            title=_("Days on the review clock, by submission"),
            kind="bar",
            labels=[row.submission.reference for row in self.rows],
            series=[Series(_("Days on the clock"), [row.days for row in self.rows])],
            unit="days",
            target=self.target,
            target_label=_("%(days)d-day target", days=self.target),
        )


def review_timelines(session: Session, target: int, limit: int = 60) -> ReviewTimelines:
    """The latest submissions' clocks (decided and open), oldest first."""
    submissions = list(
        reversed(
            session.scalars(
                select(Submission)
                .options(selectinload(Submission.clock_stops), selectinload(Submission.protocol))
                .order_by(Submission.submitted_at.desc())
                .limit(limit)
            ).all()
        )
    )
    rows = []
    for submission in submissions:
        clock = review.clock(submission)
        rows.append(
            ReviewTimeline(
                submission,
                clock.days,
                clock.stopped_days,
                submission.decided_at is not None,
                target=target,
            )
        )
    return ReviewTimelines(rows, target)
