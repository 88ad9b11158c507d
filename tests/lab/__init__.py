"""The hoptrace lab cluster (see lab.py); importable as `lab` from tests/ for lab.fixtures and lab.labctl."""
