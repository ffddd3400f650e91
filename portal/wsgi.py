"""The production entry point: `gunicorn 'portal.wsgi:app'`. It refuses an unsafe configuration."""

from portal import create_app
from portal.operations.checks import require_safe

app = create_app()
require_safe(app)
