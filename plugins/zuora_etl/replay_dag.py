"""The replay DAG: resolve what was asked -> approve when large -> the family's chains -> summarize.

One group per family, each the family's own chains (chain.py) read by id instead of by window;
`route` runs the asked family's group and skips the others.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import DAG, TaskGroup, Variable, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException

from .chain import ObjectChain, Parent, check_mappings, object_chain
from .dag_defaults import deadline_alerts, default_args
from .dag_factory import START_DATE
from .errors import fail_fast
from .families import Family, usable_families
from .manifests import ObjectResults, RunPlan, RunRow
from .operators.approval import ReplayApprovalOperator
from .params import replay_params
from .replay import parse_request, replay_parents, replay_plan, resolve
from .settings import REPLAY_APPROVAL_THRESHOLD, REPLAY_APPROVAL_TIMEOUT_H, REPLAY_APPROVAL_VARIABLE, REPLAY_DAG_ID
from .state import StateStore

DAG_ID = REPLAY_DAG_ID
DOC = """### zuora_replay

Re-sync given records from Zuora: a **family** (whose mapping, filters and target they go through),
an **object**, and **ids** (Zuora ids or numbers: invoice, account, payment numbers, one per line)
and/or **dead_letters** (every open dead letter of that object in that family).

Exactly those records are read (batched `id.IN:[...]` filters), with their parts (an invoice's
items), loaded even when Zuora changed them without a new `updatedDate`, and ERP documents are
flagged transferred as the sync would. Dead letters that now land are resolved. No watermark moves.
A replay of more than {threshold} records (Variable `{variable}`) waits for approval under
*Required Actions*. `dry_run` reports what would change and writes nothing.
"""


def replayable_families() -> tuple[list[Family], dict[str, str]]:
    """The families whose file and mappings validate; the others' errors, by file."""
    families, broken = usable_families()
    good = []
    for family in families:
        try:
            check_mappings(family)
            good.append(family)
        except ValueError as exc:
            broken[f"{family.family}.yaml"] = str(exc)
    return good, broken


def build_replay_dag() -> DAG:
    families, broken = replayable_families()
    doc = DOC.format(threshold=REPLAY_APPROVAL_THRESHOLD, variable=REPLAY_APPROVAL_VARIABLE)
    if broken:
        doc += "\n**Not replayable until fixed**: " + "; ".join(f"`{k}`: {v[:300]}" for k, v in broken.items())
    with DAG(
        dag_id=DAG_ID,
        description="Re-sync given Zuora records (ids, numbers or open dead letters) through a family's chain",
        doc_md=doc,
        schedule=None,
        start_date=START_DATE,
        catchup=False,
        max_active_runs=4,
        tags=["zuora", "replay"],
        default_args=default_args("data-integration", 1, timedelta(minutes=2)),
        deadline=deadline_alerts(DAG_ID),
        params=replay_params(families),
    ) as dag:
        run_plan = resolve_task()
        gate = approval_gate(run_plan)
        approve = ReplayApprovalOperator(task_id="approve", plan=run_plan,
                                         response_timeout=timedelta(hours=REPLAY_APPROVAL_TIMEOUT_H),
                                         defaults="Reject")  # fmt: skip
        direct = not_needed()
        routed = route(run_plan)
        gate >> [approve, direct] >> routed
        results: dict[str, dict[str, ObjectResults]] = {}
        for family in families:
            with TaskGroup(group_id=family.family, tooltip=f"the chains of {family.dag_id}, read by id"):
                chains = family_chains(family, run_plan)
            routed >> [chains[o].extract.operator for o in roots(family)]
            results[family.family] = {n: c.results() for n, c in chains.items()}
        report = summarize_replay(run_plan, results)
        report >> clean_staging(run_plan).as_teardown()
    return dag


def roots(family: Family) -> list[str]:
    """Objects of the family read by id in a replay (the others come with their parents)."""
    parents = replay_parents(family)
    return [o.name for o in family.objects if o.name not in parents]


def family_chains(family: Family, run_plan) -> dict[str, ObjectChain]:
    parents = replay_parents(family)
    chains: dict[str, ObjectChain] = {}
    for o in family.objects:
        with TaskGroup(group_id=o.name):
            link = parents.get(o.name)
            parent = Parent(chains[link[0]], link[1]) if link else None
            chains[o.name] = object_chain(family, o, run_plan, parent=parent, retry_dead_letters=False)
    return chains


def resolve_task():
    @task(task_id="resolve")
    def resolve_ids() -> RunPlan:
        """Check the params, turn numbers and dead letters into Zuora ids, stage them."""
        from .hooks.zuora import ZuoraHook  # the hook, staging and summary are heavy (see dag_factory)
        from .staging import run_dir, staging_root

        ctx = get_current_context()
        try:
            request = parse_request(dict(ctx["params"]))
            with fail_fast():
                resolved = resolve(request, ZuoraHook(track_prefix=f"{DAG_ID}.resolve"), StateStore())
        except ValueError as exc:
            raise AirflowFailException(str(exc)) from None  # a wrong param: no retry fixes it
        if not resolved.ids:
            raise AirflowFailException(
                f"none of the {len(request.values)} values given for {request.object} was found in Zuora"
                + (" and it has no open dead letters" if request.dead_letters else "")
            )
        staging = run_dir(staging_root(), request.family, ctx["run_id"])
        return replay_plan(request, resolved, ctx["run_id"], staging)

    return resolve_ids()


@task.branch(task_id="needs_approval")
def approval_gate(run_plan: RunPlan) -> str:
    """Large replays wait for a human; small ones go straight on."""
    raw = Variable.get(REPLAY_APPROVAL_VARIABLE, default=None)
    threshold = int(raw) if raw not in (None, "") else REPLAY_APPROVAL_THRESHOLD
    return "approve" if run_plan["requested"] > threshold else "approval_not_needed"


@task(task_id="approval_not_needed")
def not_needed() -> None:
    """Below the approval threshold."""


@task.branch(task_id="route", trigger_rule="none_failed_min_one_success")
def route(run_plan: RunPlan) -> list[str]:
    """Run the chains of the asked family; skip the others."""
    family = next((f for f in replayable_families()[0] if f.family == run_plan["family"]), None)
    if family is None:
        raise AirflowFailException(f"family {run_plan['family']} does not validate; fix its file (see the DAG docs)")
    return [f"{family.family}.{name}.extract" for name in roots(family)]


@task(task_id="clean_staging")
def clean_staging(run_plan: RunPlan | None) -> list[str]:
    """Remove this replay's staging when everything landed; sweep old failed runs' staging."""
    from .summary import clean_staging

    return clean_staging(run_plan)


@task(task_id="summarize", trigger_rule="all_done")
def summarize_replay(run_plan: RunPlan | None, results: dict[str, dict[str, ObjectResults]]) -> list[RunRow]:
    """One runs row per object of the replayed family; fail if anything did not land."""
    from .summary import summarize

    if not run_plan:
        raise AirflowFailException("the replay was not resolved; nothing ran")
    family = run_plan["family"]
    return summarize(DAG_ID, family, get_current_context()["run_id"], run_plan, results[family], None)
