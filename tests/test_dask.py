"""Beyond one machine: a Dask cluster runs the evaluation unchanged, with identical scores.

``evaluate`` takes any :class:`concurrent.futures.Executor`; ``distributed.Client.get_executor()``
is one. These tests start a local cluster of two worker *processes* (so tasks and results really
cross process boundaries by pickling, as on a remote cluster) and need ``distributed``
(``pip install 'segfair[dask]'``); they are skipped without it.
"""

from __future__ import annotations

import io as stdio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from conftest import Repo

from segfair.cli import main
from segfair.cohort import load_cohort
from segfair.evaluate import evaluate

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        host="127.0.0.1",
    ) as local:
        yield local


def test_a_dask_cluster_scores_a_cohort_exactly_like_the_local_process_pool(
    repo: Repo, cluster: Any
) -> None:
    cohort = load_cohort(repo.config_path)
    local = evaluate(cohort, workers=2, cache=False, progress=False)

    with distributed.Client(cluster) as client:
        remote = evaluate(cohort, executor=client.get_executor(), cache=False, progress=False)

    pd.testing.assert_frame_equal(local.table, remote.table)
    pd.testing.assert_frame_equal(local.agreement, remote.agreement)
    pd.testing.assert_frame_equal(local.morphology, remote.morphology)
    assert len(local.table) > 0


def test_a_dask_evaluation_writes_into_the_same_results_store_as_a_local_one(
    repo: Repo, cluster: Any, tmp_path: Path
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from segfair.evaluate.store import ResultStore

    cohort = load_cohort(repo.config_path)
    cache = tmp_path / "cache"
    with distributed.Client(cluster) as client:
        remote = evaluate(cohort, executor=client.get_executor(), cache=cache, progress=False)
    # the workers never saw the folder: the main process stored every result as it arrived
    with ResultStore(cache) as store:
        assert len(store) == len(repo.case_ids)

    class Refusing(ThreadPoolExecutor):
        def submit(self, *args: object, **kwargs: object) -> Any:
            raise AssertionError("a warm run sent a task to a worker")

    with Refusing(1) as refusing:
        warm = evaluate(cohort, executor=refusing, cache=cache, progress=False)
    pd.testing.assert_frame_equal(remote.table, warm.table)
    pd.testing.assert_frame_equal(remote.morphology, warm.morphology)


def test_segfair_audit_runs_on_a_running_scheduler_given_by_its_address(
    repo: Repo, cluster: Any, tmp_path: Path
) -> None:
    local_json, dask_json = tmp_path / "local.json", tmp_path / "dask.json"
    audit = [
        "audit",
        "--config",
        str(repo.config_path),
        "--no-cache",
        "-q",
        "--allow-no-gates",
        "--json",
    ]
    local_status = main([*audit, str(local_json)], stdout=stdio.StringIO())
    # A user's `segfair audit --scheduler tcp://...` is its own process, connecting by address.
    scheduler = ["--scheduler", cluster.scheduler_address]
    done = subprocess.run(
        [sys.executable, "-m", "segfair.cli", *audit, str(dask_json), *scheduler],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "CI": ""},
    )

    assert done.returncode == local_status, done.stderr  # the same verdict, not an error (2)
    reports = [json.loads(path.read_text()) for path in (local_json, dask_json)]
    # The report is deterministic byte for byte except its build time (docs/report-schema.md).
    for report in reports:
        del report["generated_at"]
    assert reports[0] == reports[1]


def test_the_scheduler_config_key_sends_the_evaluation_to_that_cluster(
    repo: Repo, cluster: Any
) -> None:
    from segfair.session import SegfairSession

    local = SegfairSession.from_path(repo.config_path).scores
    repo.write_config(scheduler=cluster.scheduler_address)
    session = SegfairSession.from_path(repo.config_path)
    assert session.scheduler == cluster.scheduler_address

    with distributed.Client(cluster) as client:
        before = client.run_on_scheduler(_evaluate_tasks_seen)
        remote = session.scores
        after = client.run_on_scheduler(_evaluate_tasks_seen)

    pd.testing.assert_frame_equal(local.table, remote.table)
    # the cases ran on the cluster, in batches of one case or more (the same scores: all of them)
    assert 1 <= after - before <= len(repo.case_ids)


def test_an_explicit_executor_wins_over_the_scheduler_key(repo: Repo) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from segfair.session import SegfairSession

    repo.write_config(scheduler="tcp://198.51.100.1:8786")  # unreachable: must not be used
    with ThreadPoolExecutor(1) as pool:
        session = SegfairSession.from_path(repo.config_path, executor=pool)
        assert session.scheduler is None
        assert len(session.scores.table) > 0


def _evaluate_tasks_seen(dask_scheduler: Any) -> int:
    """How many batches of cases this scheduler has finished (counted after they are gone)."""
    prefix = dask_scheduler.task_prefixes.get("evaluate_batch")  # key_split drops the "_"
    return 0 if prefix is None else int(prefix.state_counts.get("memory", 0))
