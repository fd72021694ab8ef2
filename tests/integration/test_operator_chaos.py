"""Chaos: 20 evaluations while two operator replicas (one leader, one standby) are SIGKILLed
at random moments and restarted.

Watches record every Job ever created and every verdict ever written; at the end each
ModelEvaluation has exactly one verdict for its generation, the verdict of a generation never
changed once written, and exactly one Job was created per generation.
"""

import json
import random
import threading
import time

import pytest
import yaml

from operator_harness import (OperatorProcess, operator_kubeconfig, evaluation, install_crds, install_runner_rbac, serve_fleet)
from quantgate.dev.harness import create_namespace, wait_for

ACC = {"arc_challenge": 0.7, "hellaswag": 0.8, "mmlu": 0.7, "truthfulqa_mc2": 0.7, "winogrande": 0.75,
       "gsm8k": 0.7}
FLEET = {"seed": 5, "reference": "fp16", "variants": [
    {"name": "fp16", "model": "m-fp16", "accuracy": ACC},
    {"name": "same", "model": "m-same", "accuracy": ACC},
    {"name": "int4", "model": "m-int4", "accuracy": {**ACC, "gsm8k": 0.35}, "flipRate": {"default": 0.1}},
]}
COUNT = 20
EDITED = range(0, COUNT, 5)  # these get a second generation mid-way
LEASE_S = 6  # leader Lease duration of the two replicas


def _ref(name):
    return {"inferenceServiceRef": {"name": name, "model": f"m-{name}"}}


class Recorder:
    """Background watches (kubectl --watch) of Jobs and ModelEvaluations in one namespace."""

    def __init__(self, cluster, ns):
        self.jobs: dict[tuple[str, str], set[str]] = {}
        self.verdicts: dict[tuple[str, int], set[str]] = {}
        self.procs = []
        for kind, handle in (("jobs", self._job), ("modelevaluations", self._meval)):
            proc = cluster_popen(cluster, ["get", kind, "-n", ns, "--watch", "--output-watch-events", "-o", "json"])
            self.procs.append(proc)
            threading.Thread(target=self._pump, args=(proc, handle), daemon=True).start()

    def _pump(self, proc, handle):
        decoder, buf = json.JSONDecoder(), ""
        for line in proc.stdout:
            buf += line
            while buf.strip():
                try:
                    obj, end = decoder.raw_decode(buf.lstrip())
                except ValueError:
                    break
                buf = buf.lstrip()[end:]
                handle(obj.get("object") or {})

    def _job(self, job):
        labels = job.get("metadata", {}).get("labels", {})
        key = (labels.get("quantgate.io/evaluation"), labels.get("quantgate.io/generation"))
        self.jobs.setdefault(key, set()).add(job["metadata"]["uid"])

    def _meval(self, obj):
        st = obj.get("status") or {}
        if st.get("verdict"):
            self.verdicts.setdefault((obj["metadata"]["name"], st.get("observedGeneration")), set()).add(st["verdict"])

    def stop(self):
        for proc in self.procs:
            proc.kill()
            proc.wait()


def cluster_popen(cluster, args):
    import subprocess

    from quantgate.dev import paths

    return subprocess.Popen([str(paths.binary("kubectl")), f"--kubeconfig={cluster.kubeconfig}", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


@pytest.fixture
def chaos_env(cluster, tmp_path):
    from quantgate.simulate.fleet import SimulatedFleet

    install_crds(cluster)
    ns = create_namespace(cluster, "chaos")
    install_runner_rbac(cluster, ns)
    with SimulatedFleet(FLEET) as fleet:
        serve_fleet(cluster, ns, fleet)
        kubeconfig = operator_kubeconfig(cluster, tmp_path)
        ops = [OperatorProcess(cluster, tmp_path / f"operator-{i}.log", "--poll-interval", "1", "--max-concurrent", "6",
                               "--lease-duration", str(LEASE_S), namespaces=[ns], kubeconfig=kubeconfig)
               for i in range(2)]
        try:
            yield cluster, ns, ops
        finally:
            for op in ops:
                op.stop()
            cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def test_restarts_at_random_moments_never_duplicate_jobs_or_verdicts(chaos_env):
    cluster, ns, ops = chaos_env
    rnd = random.Random(2024)
    recorder = Recorder(cluster, ns)
    try:
        docs = [evaluation(f"ev-{i:02d}", _ref("fp16"), _ref("same" if i % 2 else "int4"), suite="local",
                           tasks=[{"name": "gsm8k", "limit": 8}], profile="math-tutoring") for i in range(COUNT)]
        cluster.kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump_all(docs))
        for op in ops:
            op.start()
        kills, takeovers, edited, started = 0, 0, False, time.monotonic()

        def settled():
            items = json.loads(cluster.kubectl("get", "meval", "-n", ns, "-o", "json").stdout)["items"]
            done = [o for o in items if (o.get("status") or {}).get("observedGeneration") == o["metadata"]["generation"]
                    and o["status"].get("phase") in ("Succeeded", "Failed")]
            return len(done) == COUNT and edited

        while not settled():
            assert time.monotonic() - started < 400, "evaluations did not settle"
            time.sleep(rnd.uniform(1.0, 7.0))
            leaders = [o for o in ops if o.leading()]
            op = leaders[0] if leaders and rnd.random() < 0.75 else rnd.choice(ops)  # mostly the leader
            op.kill()
            kills += 1
            if not edited and time.monotonic() - started > 15:
                for i in EDITED:  # a new generation while the operator is down
                    cluster.kubectl("patch", "meval", f"ev-{i:02d}", "-n", ns, "--type=merge",
                                    "-p", json.dumps({"spec": {"profile": "general"}}))
                edited = True
            if kills % 3 == 0:  # stay down until the standby has taken over
                other = next(o for o in ops if o is not op)
                wait_for(other.leading, timeout=120, interval=0.5, what="the standby takes over")
                takeovers += 1
            else:
                time.sleep(rnd.uniform(0.0, 1.0))
            op.start()
        assert kills >= 3 and takeovers >= 1
        time.sleep(2)  # let the watches deliver the last events
    finally:
        recorder.stop()

    items = json.loads(cluster.kubectl("get", "meval", "-n", ns, "-o", "json").stdout)["items"]
    for obj in items:
        name, gen, st = obj["metadata"]["name"], obj["metadata"]["generation"], obj["status"]
        i = int(name.split("-")[1])
        assert st["phase"] == "Succeeded" and st["observedGeneration"] == gen, (name, st.get("message"))
        expected = "Ship" if i % 2 else ("Block" if i not in EDITED else None)
        if expected:
            assert st["verdict"] == expected, name
        assert gen == (2 if i in EDITED else 1)
        assert recorder.verdicts[(name, gen)] == {st["verdict"]}, (name, recorder.verdicts)
        assert len(recorder.jobs.get((name, str(gen)), set())) == 1, (name, gen, recorder.jobs)
    for (name, gen), uids in recorder.jobs.items():
        assert len(uids) == 1, f"{name} generation {gen}: {len(uids)} Jobs created"
    wait_for(lambda: len(json.loads(cluster.kubectl("get", "jobs", "-n", ns, "-o", "json").stdout)["items"]) == COUNT,
             timeout=60, what="one Job per evaluation left (superseded ones deleted)")
    # the leading replica rebuilt every evaluation's gauges from the statuses it listed
    # (a standby runs no watches and exports none)
    exposition = next(o for o in ops if o.leading()).metrics()
    for obj in items:
        name, verdict = obj["metadata"]["name"], obj["status"]["verdict"]
        assert (f'quantgate_evaluation_verdict{{evaluation="{name}",namespace="{ns}",verdict="{verdict}"}} 1.0'
                in exposition), name
