"""What Gunicorn imports: `gunicorn account_api.wsgi:app`."""

from account_api import create_app

app = create_app()
