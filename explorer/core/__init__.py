"""The application model: runs, selection, sessions. No Qt (tests/explorer/test_core_no_qt.py)."""
