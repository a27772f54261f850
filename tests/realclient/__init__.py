"""Helpers that run the real Claude Code client against a fake Messages API (see
``tests/test_real_claude_code.py`` and ``docs/real-client.md``)."""
