"""Import every model module so that the metadata knows all tables (migrations, fixtures)."""

from portal.accounts import models as accounts_models
from portal.comprehension import models as comprehension_models
from portal.consent import journey_models
from portal.consent import models as consent_models
from portal.core import audit, audit_links, checkpoints
from portal.incidents import models as incidents_models
from portal.notifications import models as notifications_models
from portal.oversight import models as oversight_models
from portal.records import models as records_models
from portal.review import models as review_models

__all__ = [
    "accounts_models",
    "audit",
    "audit_links",
    "checkpoints",
    "comprehension_models",
    "consent_models",
    "incidents_models",
    "journey_models",
    "notifications_models",
    "oversight_models",
    "records_models",
    "review_models",
]
