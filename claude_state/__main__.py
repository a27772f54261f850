"""``python -m claude_state`` is the same program as ``claude-state``."""

import sys

from claude_state.cli.main import main

sys.exit(main())
