"""sumlab: fine-tune, evaluate, compare and serve dialogue summarizers."""

from sumlab.errors import SumlabError

__version__ = "0.1.0"

__all__ = ["SumlabError", "__version__"]
