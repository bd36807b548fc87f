"""Every table module, imported so SQLModel.metadata (and Alembic) sees the whole schema."""

from liveshow import showlog
from liveshow.accounts import models as accounts_models
from liveshow.chat import models as chat_models
from liveshow.closet import models as closet_models
from liveshow.shows import models as shows_models

__all__ = ["accounts_models", "chat_models", "closet_models", "showlog", "shows_models"]
