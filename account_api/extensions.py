"""Extensions created unbound here and bound in `create_app`."""

from typing import cast

from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import Session

from schema.base import Base

db = SQLAlchemy(model_class=Base)
migrate = Migrate()


def session() -> Session:
    """The request's session, typed as the plain SQLAlchemy session services expect."""
    return cast(Session, db.session)
