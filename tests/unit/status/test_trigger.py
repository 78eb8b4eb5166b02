"""The replay trigger against Airflow's metadata database: zuora_replay parsed and serialized as the
DAG processor does, then a run created with the conf and the triggering user."""

from __future__ import annotations

import pytest
from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db
from airflow.models.dagbundle import DagBundleModel
from airflow.models.dagrun import DagRun
from airflow.utils.session import create_session
from zuora_etl.status.app import ReplayUnavailable, replay_conf, trigger_replay

from scripts.ui import ROOT

BUNDLE = "zuora_status_tests"


@pytest.fixture(scope="module")
def serialized_replay_dag():
    bag = DagBag(dag_folder=str(ROOT / "dags" / "zuora_replay.py"))
    assert not bag.import_errors and "zuora_replay" in bag.dags, bag.import_errors
    with create_session() as session:
        if session.get(DagBundleModel, BUNDLE) is None:
            session.add(DagBundleModel(name=BUNDLE))
    with create_session() as session:
        sync_bag_to_db(bag, BUNDLE, None, session=session)


def test_trigger_creates_a_queued_manual_run_with_the_conf_as_the_user(serialized_replay_dag):
    conf = replay_conf("crm_accounts", "accounts")
    run_id = trigger_replay(conf, SimpleAuthManagerUser(username="alice", role="user"))
    with create_session() as session:
        run = session.query(DagRun).filter_by(dag_id="zuora_replay", run_id=run_id).one()
        assert run.conf == {"family": "crm_accounts", "object": "accounts", "ids": [], "dead_letters": True}
        assert (run.run_type, run.state, run.triggering_user_name) == ("manual", "queued", "alice")


def test_the_dags_params_refuse_a_conf_they_do_not_accept(serialized_replay_dag):
    with pytest.raises(ReplayUnavailable):
        trigger_replay(replay_conf("no_such_family", "accounts"), SimpleAuthManagerUser(username="a", role="admin"))
