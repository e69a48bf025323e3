"""Crash-recovery (chaos) tests: workers SIGKILLed at random points while executions run."""
