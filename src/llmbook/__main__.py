"""``python -m llmbook``: the command line of :mod:`llmbook.cli`."""

import sys

from llmbook.cli import main

sys.exit(main())
