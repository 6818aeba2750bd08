"""What Uvicorn imports: `uvicorn certificate_api.asgi:app`."""

from certificate_api.main import create_app

app = create_app()
