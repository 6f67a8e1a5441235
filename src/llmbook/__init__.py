"""llmbook: the shared library behind the executable book.

Every chapter imports from here.  Importing the package puts the Hugging Face libraries in
offline mode unless ``LLMBOOK_OFFLINE=0`` (see :mod:`llmbook.core.utils`), so that nothing tries
to reach the model or dataset hubs on a machine without internet.
"""

from llmbook.core.utils import configure_environment

configure_environment()

__version__ = "0.1.0"
