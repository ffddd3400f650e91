"""The consent elements a document's sections are tagged with.

The required ones come from 21 CFR 50.25, 45 CFR 46.116 and ICH E6(R3) 2.8 (see
shared/REQUIREMENTS.md): a version cannot be imported unless its sections cover every one.
"""

from __future__ import annotations

from flask_babel import lazy_gettext as _l

REQUIRED_ELEMENTS: dict[str, object] = {
    "purpose": _l("Research purpose"),
    "duration": _l("Duration of taking part"),
    "procedures": _l("Procedures"),
    "experimental": _l("Which procedures are experimental"),
    "risks": _l("Foreseeable risks and discomforts"),
    "benefits": _l("Possible benefits"),
    "alternatives": _l("Alternatives to taking part"),
    "confidentiality": _l("Confidentiality of records"),
    "injury_compensation": _l("Compensation and treatment for injury"),
    "contacts": _l("Whom to contact"),
    "voluntary": _l("Taking part is voluntary; refusing or leaving costs nothing"),
    "withdrawal": _l("What happens on withdrawal, including data already collected"),
    "new_findings": _l("New findings will be shared"),
    "participant_count": _l("Approximate number of participants"),
    "investigator_termination": _l("When the investigator may end participation"),
}

# Further elements a section may be tagged with; useful to the panel, not required.
OPTIONAL_ELEMENTS: dict[str, object] = {
    "eligibility": _l("Who can and cannot take part"),
    "blinding": _l("Blinding, placebo and expectancy"),
    "recordings": _l("Recording of sessions"),
    "secondary_use": _l("Optional secondary uses of data and recordings"),
    "future_contact": _l("Future contact"),
    "gp": _l("Informing the GP"),
    "reporting_concerns": _l("Reporting a concern about a therapist"),
    "costs": _l("Costs and expenses"),
}

KNOWN_ELEMENTS: dict[str, object] = {**REQUIRED_ELEMENTS, **OPTIONAL_ELEMENTS}
