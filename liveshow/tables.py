"""Every table module, imported so SQLModel.metadata (and Alembic) sees the whole schema."""

from liveshow import seqstore, showlog
from liveshow.accounts import models as accounts_models
from liveshow.auction import models as auction_models
from liveshow.chat import models as chat_models
from liveshow.closet import models as closet_models
from liveshow.orders import models as orders_models
from liveshow.replay import models as replay_models
from liveshow.shows import models as shows_models
from liveshow.social import models as social_models

__all__ = [
    "accounts_models",
    "auction_models",
    "chat_models",
    "closet_models",
    "orders_models",
    "replay_models",
    "seqstore",
    "showlog",
    "shows_models",
    "social_models",
]
