"""Kestra's storage tasks and WorkingDirectory files on temporal+postgres, unchanged.

The stored files go through the workers' activities into the shared database;
a WorkingDirectory's scratch directory is the worker's, under ``work_dir``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pausepoint.config import Settings
from tests.integration.test_kestra_storage_tasks import (
    test_a_loop_over_a_written_file_runs_once_per_line,
    test_a_working_directory_stores_its_output_files,
    test_a_working_directorys_input_files_are_stored_by_local_files,
    test_local_files_pass_a_file_between_tasks_of_a_working_directory,
    test_output_files_that_match_nothing_store_nothing_and_a_failure_stores_none,
)
from tests.temporal.conftest import temporal_settings

__all__ = [
    "test_a_loop_over_a_written_file_runs_once_per_line",
    "test_a_working_directory_stores_its_output_files",
    "test_a_working_directorys_input_files_are_stored_by_local_files",
    "test_local_files_pass_a_file_between_tasks_of_a_working_directory",
    "test_output_files_that_match_nothing_store_nothing_and_a_failure_stores_none",
]


@pytest.fixture
def settings(db_path: Path, tmp_path: Path, temporal_address: str) -> Settings:
    return temporal_settings(db_path, temporal_address, work_dir=str(tmp_path / "work"))
