"""Two operator replicas on the local control plane (leader election on a Lease, leader.py): the
standby reconciles nothing; kill the leader and the standby takes over within lease + retry
(here 4 s + 0.5 s; the manifests' defaults are 15 s + 2 s); no object is reconciled by both; a
leader whose Lease is taken stops at once."""

from __future__ import annotations

import re
import time

import pytest

from ..conftest import Cluster, wait_until
from .conftest import (
    FAST_LEASE,
    Operators,
    apply_all,
    elapsed,
    events_by_reason,
    jobs_by_owner,
    second_ports,
    training_job,
)

pytestmark = [pytest.mark.cluster, pytest.mark.chaos]
CREATED = re.compile(r"^(\S+ \S+) .*created Job (\S+)$", re.M)  # handlers/trainingjob.apply_children
LEASE_SECONDS = float(FAST_LEASE["ACGS_LEADER_LEASE_SECONDS"])
RETRY_SECONDS = float(FAST_LEASE["ACGS_LEADER_RETRY_SECONDS"])


def acquired_at(log: str) -> str:
    line = next(line for line in log.splitlines() if "acquired Lease" in line)
    return " ".join(line.split()[:2])


def test_the_standby_takes_over_when_the_leader_is_killed(operators: Operators, chaos_namespace: str) -> None:
    import install

    cluster: Cluster = operators.cluster
    a = operators.start("ha-a", **FAST_LEASE)
    b = operators.start("ha-b", wait_leader=False, **second_ports(), **FAST_LEASE)
    first = [training_job(f"before-{i}", chaos_namespace) for i in range(20)]
    assert apply_all(cluster, first).returncode == 0
    wait_until(lambda: len(jobs_by_owner(cluster, chaos_namespace)) == 20, 60, "the leader to create 20 Jobs")
    assert install.lease_holder() == a.identity
    assert not CREATED.search(b.log_text()), "the standby created a Job while the leader was alive"

    a.kill()
    killed = time.monotonic()
    # The webhook Service would now route to the surviving replica.
    install.install_webhook(second_ports()["webhook_port"])
    second = [training_job(f"after-{i}", chaos_namespace) for i in range(20)]
    assert apply_all(cluster, second).returncode == 0  # the standby's webhook admitted them
    wait_until(lambda: install.lease_holder() == b.identity, 30, "the standby to take the Lease", interval=0.1)
    takeover = elapsed(killed)
    wait_until(lambda: len(jobs_by_owner(cluster, chaos_namespace)) == 40, 60, "the new leader to create 20 Jobs")
    converged = elapsed(killed)
    print(f"\ntakeover {takeover:.1f}s after SIGKILL (lease {LEASE_SECONDS}s, retry {RETRY_SECONDS}s); "
          f"all 40 TrainingJobs with their Job {converged:.1f}s after")
    # The standby waits a full lease on its own clock from its last sight of a renewal.
    assert takeover <= LEASE_SECONDS + 2 * RETRY_SECONDS + 2.0
    # Nobody reconciled at once: each Job was created by exactly one process, the new leader's
    # first after it took the Lease (the old one is dead), and announced once.
    log = b.log_text()
    by_a = [m.group(2) for m in CREATED.finditer(a.log_text())]
    by_b = [(m.group(1), m.group(2)) for m in CREATED.finditer(log)]
    assert by_b and min(t for t, _ in by_b) >= acquired_at(log)
    names = [f"before-{i}" for i in range(20)] + [f"after-{i}" for i in range(20)]
    assert sorted(by_a + [j for _, j in by_b]) == sorted(f"{chaos_namespace}/{n}-train" for n in names)
    owners = jobs_by_owner(cluster, chaos_namespace)
    assert all(len(jobs) == 1 for jobs in owners.values()) and len(owners) == 40
    created = events_by_reason(cluster, chaos_namespace, "JobCreated")
    assert max(created.values()) == 1, {k: v for k, v in created.items() if v > 1}


def test_a_leader_whose_lease_is_taken_stops_at_once(operators: Operators) -> None:
    import install

    cluster = operators.cluster
    leader = operators.start("ha-a", **FAST_LEASE)
    cluster.kubectl("patch", "lease", "acgs-operator", "-n", install.LEASE_NAMESPACE, "--type=merge", "-p",
                    '{"spec":{"holderIdentity":"intruder","renewTime":"%s"}}'
                    % time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime()), check=True)
    stolen = time.monotonic()
    wait_until(lambda: leader.proc.poll() is not None, 10, "the leader to stop", interval=0.1)
    print(f"\nleader stopped {elapsed(stolen):.1f}s after its Lease was taken")
    assert leader.proc.returncode == 3  # main.LEADERSHIP_LOST_EXIT_CODE
    assert "leadership lost" in leader.log_text()
    assert elapsed(stolen) <= 2 * RETRY_SECONDS + 2.0
    cluster.kubectl("patch", "lease", "acgs-operator", "-n", install.LEASE_NAMESPACE, "--type=merge", "-p",
                    '{"spec":{"holderIdentity":null}}', check=True)  # let the shared operator lead again
