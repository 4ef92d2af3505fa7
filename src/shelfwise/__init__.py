"""shelfwise: self-hosted, self-learning product intelligence (enrich, understand, search)."""

from .app import Shelfwise
from .config import RoleConfig, Settings, get_settings
from .errors import ShelfwiseError

__version__ = "0.1.0"

__all__ = ["RoleConfig", "Settings", "Shelfwise", "ShelfwiseError", "__version__", "get_settings"]
