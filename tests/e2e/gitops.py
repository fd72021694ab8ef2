"""`make e2e-gitops`: Argo CD itself syncs the sync-wave example and the quantgate gate decides.

A fresh dev cluster; Redis (Debian's redis-server); a git repository served by `git daemon` on
loopback holding manifests/argocd/example/app/ as it is in this repository; argocd-repo-server
and argocd-application-controller (v3.6.1, `make tools-argo`) as processes; argocd-cm patched
exactly as docs/gitops.md tells a user; the quantgate operator; simulated model servers.

Three Applications made from manifests/argocd/example/application.yaml, one per candidate,
each into its own namespace (Argo CD's kustomize namespace override), with the evaluation
switched to the offline `local` suite (an inline kustomize patch: the example's `tiny` suite
needs the Hugging Face Hub) and a 5 s retry backoff instead of 1 min:

  ship    the candidate answers like the baseline        -> Ship
  block   gsm8k collapses under profile math-tutoring    -> Block
  abtest  a 3-5% average drop, gsm8k intact              -> ABTest

This run plays KServe and the Gateway controller: it marks each InferenceService Ready with the
URL of its simulated server, and writes an Accepted status on the HTTPRoute once one exists.
It records what Argo CD does: the Application's sync/health/operation as the controller wrote
them, every change with its time, the resource tree Argo CD keeps in Redis (what `argocd app
get` shows), and whether wave 2 (the HTTPRoute, the promotion) was ever applied.

Exit 0 when the Ship candidate was promoted and the Block candidate was held. The last line
is one JSON object: {"bench": "gitops", "ship_promoted", "block_held", "abtest", "seconds", ...}.
"""

from __future__ import annotations

import argparse
import gzip
import json
import signal
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests/integration"))

import yaml  # noqa: E402

import argo_harness as argo  # noqa: E402
from operator_harness import OperatorProcess, install_crds, install_runner_rbac, operator_kubeconfig  # noqa: E402
from quantgate.dev import harness  # noqa: E402

EXAMPLE = ROOT / "manifests/argocd/example"
APP_PATH = "manifests/argocd/example/app"
ACC = {"arc_challenge": 0.7, "hellaswag": 0.8, "mmlu": 0.7, "truthfulqa_mc2": 0.7, "winogrande": 0.75, "gsm8k": 0.7}
# Served model names are the InferenceService names (KServe's default), so every candidate
# variant serves "llama-int4"; each runs on its own port.
FLEET = {"seed": 7, "reference": "llama-fp16", "variants": [
    {"name": "llama-fp16", "accuracy": ACC},
    {"name": "int4-ship", "model": "llama-int4", "accuracy": ACC},
    {"name": "int4-block", "model": "llama-int4", "accuracy": {**ACC, "gsm8k": 0.35}, "flipRate": {"default": 0.1}},
    {"name": "int4-abtest", "model": "llama-int4", "accuracy": {**ACC, "hellaswag": 0.7, "mmlu": 0.66}},
]}
LIMIT = 8
SCENARIOS = {"ship": "Ship", "block": "Block", "abtest": "ABTest"}
ROUTE = ("gateway.networking.k8s.io", "v1", "httproutes")  # (group, version, plural)
MEVAL = ("quantgate.io", "v1alpha1", "modelevaluations")
ISVC = ("serving.kserve.io", "v1beta1", "inferenceservices")
APPS = ("argoproj.io", "v1alpha1", "argocd", "applications")  # (group, version, namespace, plural)


def in_ns(kind: tuple[str, str, str], ns: str) -> tuple[str, str, str, str]:
    """CustomObjectsApi's namespaced argument order: group, version, namespace, plural."""
    return kind[0], kind[1], ns, kind[2]


def say(msg: str) -> None:
    print(f"e2e-gitops: {msg}", flush=True)


def application(name: str, namespace: str, repo_url: str) -> dict:
    """The example Application, pointed at the loopback repository and one namespace."""
    app = yaml.safe_load((EXAMPLE / "application.yaml").read_text())
    app["metadata"]["name"] = name
    source = app["spec"]["source"]
    source.update(repoURL=repo_url, targetRevision="main", path=APP_PATH)
    source["kustomize"] = {"namespace": namespace, "patches": [{
        "target": {"group": "quantgate.io", "kind": "ModelEvaluation", "name": "llama-int4"},
        "patch": yaml.safe_dump([{"op": "replace", "path": "/spec/suite", "value": "local"},
                                 {"op": "add", "path": "/spec/limit", "value": LIMIT}])}]}
    app["spec"]["destination"]["namespace"] = namespace
    app["spec"]["syncPolicy"]["retry"]["backoff"] = {"duration": "5s", "factor": 2, "maxDuration": "20s"}
    return app


def redis_get(address: str, key: str) -> bytes | None:
    """GET over RESP (binary safe); None when the key is missing."""
    host, port = address.split(":")
    with socket.create_connection((host, int(port)), timeout=5) as s:
        k = key.encode()
        s.sendall(b"*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n" % (len(k), k))
        f = s.makefile("rb")
        header = f.readline()
        if not header.startswith(b"$"):
            raise RuntimeError(f"redis GET {key}: {header!r}")
        size = int(header[1:])
        return None if size < 0 else f.read(size)


def resource_tree(redis_address: str, app: str) -> dict:
    """The resource tree the controller caches for `argocd app get` (gzip-compressed JSON)."""
    data = redis_get(redis_address, f"app|resources-tree|{app}|1.8.3.gz")
    return json.loads(gzip.decompress(data)) if data else {}


def render(app: dict, tree: dict) -> str:
    """The Application as the controller wrote it, in `argocd app get`'s layout (health per resource from
    the resource tree in Redis, where Argo CD 3 keeps it; sync results from the operation state)."""
    st = app.get("status") or {}
    op = st.get("operationState") or {}
    health = {(n.get("group", ""), n["kind"], n.get("namespace", ""), n["name"]): n.get("health") or {}
              for n in tree.get("nodes") or []}
    results = {(r.get("group", ""), r["kind"], r.get("namespace", ""), r["name"]): r.get("message", "")
               for r in (op.get("syncResult") or {}).get("resources") or []}
    revision = (st.get("sync") or {}).get("revision", "")[:7]
    lines = [f"Name:               argocd/{app['metadata']['name']}",
             f"Sync Status:        {(st.get('sync') or {}).get('status')} from main ({revision})",
             f"Health Status:      {(st.get('health') or {}).get('status')}",
             "Operation:          Sync",
             f"Phase:              {op.get('phase')}",
             f"Message:            {op.get('message')}",
             f"Retry count:        {op.get('retryCount', 0)}", "",
             f"{'GROUP':27}{'KIND':18}{'NAMESPACE':15}{'NAME':12}{'STATUS':11}{'HEALTH':13}MESSAGE"]
    for r in st.get("resources") or []:
        key = (r.get("group", ""), r["kind"], r.get("namespace", ""), r["name"])
        h = health.get(key, {})
        lines.append(f"{r.get('group', ''):27}{r['kind']:18}{r.get('namespace', ''):15}{r['name']:12}{r.get('status', ''):11}"
                     f"{h.get('status', ''):13}{results.get(key, '')}")
    lines.append("")
    lines.append("health messages (resource tree):")
    for key, h in sorted(health.items()):
        if h.get("message"):
            lines.append(f"  {key[1]}/{key[3]}: {h.get('status')}: {h['message']}")
    return "\n".join(lines)


class StandIns(threading.Thread):
    """Plays KServe and the Gateway controller for the Applications' namespaces."""

    def __init__(self, api, urls: dict[str, dict[str, str]]):
        super().__init__(daemon=True)
        self.api, self.urls = api, urls
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stop.wait(0.5):
                for ns, urls in self.urls.items():
                    for obj in self.api.list_namespaced_custom_object(*in_ns(ISVC, ns))["items"]:
                        if not (obj.get("status") or {}).get("conditions"):
                            url = urls[obj["metadata"]["name"]]
                            self.api.patch_namespaced_custom_object_status(*in_ns(ISVC, ns), obj["metadata"]["name"], {
                                "status": {"url": url, "address": {"url": url}, "conditions": [
                                    {"type": "Ready", "status": "True", "reason": "Simulated"},
                                    {"type": "PredictorReady", "status": "True"}]}})
                    for obj in self.api.list_namespaced_custom_object(*in_ns(ROUTE, ns))["items"]:
                        if not (obj.get("status") or {}).get("parents"):
                            gen = obj["metadata"]["generation"]
                            self.api.patch_namespaced_custom_object_status(*in_ns(ROUTE, ns), obj["metadata"]["name"], {
                                "status": {"parents": [{
                                    "parentRef": obj["spec"]["parentRefs"][0], "controllerName": "e2e/gateway",
                                    "conditions": [
                                        {"type": t, "status": "True", "reason": t, "message": "", "observedGeneration": gen,
                                         "lastTransitionTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
                                        for t in ("Accepted", "ResolvedRefs")]}]}})
        except BaseException as exc:  # reported by the main loop
            self.error = exc


class Watch:
    """Records every change of an Application's (sync, health, phase, message) with its time."""

    def __init__(self, t0: float):
        self.t0 = t0
        self.events: dict[str, list[tuple[float, tuple]]] = {}

    def record(self, name: str, app: dict, verdict: str | None) -> None:
        st = app.get("status") or {}
        op = st.get("operationState") or {}
        state = ((st.get("sync") or {}).get("status"), (st.get("health") or {}).get("status"), op.get("phase"),
                 op.get("message"), verdict)
        events = self.events.setdefault(name, [])
        if not events or events[-1][1] != state:
            events.append((time.monotonic() - self.t0, state))
            say(f"{name} +{events[-1][0]:.0f}s sync={state[0]} health={state[1]} operation={state[2]} "
                f"verdict={state[4]} message={state[3]!r}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--abtest-window", type=float, default=60,
                        help="seconds to keep watching the ABTest application after Argo CD saw the verdict")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    args = parser.parse_args()
    missing = argo.missing_engines(("argocd-application-controller", "argocd-repo-server", "kustomize"))
    if missing:
        print(f"e2e-gitops: {', '.join(missing)} missing: run `make tools-argo`", file=sys.stderr)
        return 2
    from quantgate.simulate.fleet import SimulatedFleet
    from kubernetes import client as k8s

    # A SIGTERM (CI timeout, kill PID) unwinds like Ctrl-C, so every process started here is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    work = Path(tempfile.mkdtemp(prefix="quantgate-e2e-gitops-"))
    started = time.monotonic()
    say(f"work directory {work}; starting the dev cluster")
    cluster = harness.start(work / "dev")
    result: dict = {"bench": "gitops"}
    op = cd = stand_ins = None
    try:
        install_crds(cluster)
        cluster.kubectl("apply", "-f", str(argo.HTTPROUTE_CRD))
        argo.established(cluster, "httproutes.gateway.networking.k8s.io")
        namespaces = {s: f"models-{s}" for s in SCENARIOS}
        for ns in namespaces.values():  # the platform team's part: namespace and the runner's RBAC
            cluster.kubectl("create", "namespace", ns)
            harness.wait_for(lambda: cluster.kubectl("get", "sa", "default", "-n", ns, check=False).returncode == 0,
                             timeout=60, what=f"namespace {ns} ready")
            install_runner_rbac(cluster, ns)
        with argo.GitServer(work) as git, argo.redis(work) as redis_address, SimulatedFleet(FLEET) as fleet:
            sha = git.commit({f"{APP_PATH}/{p.name}": p.read_text() for p in sorted((EXAMPLE / "app").iterdir())},
                             "the sync-wave example of manifests/argocd/example/app")
            say(f"git daemon serves {git.url} at {sha[:7]}; redis at {redis_address}")
            cd = argo.ArgoCD(cluster, work, redis_address)
            cd.install()
            # docs/gitops.md, "Once: install the pieces": the health check, exactly as documented.
            cluster.kubectl("-n", "argocd", "patch", "configmap", "argocd-cm", "--type", "merge",
                            "--patch-file", str(ROOT / "manifests/argocd/argocd-cm.yaml"))
            cd.start()
            say(f"argocd-repo-server and argocd-application-controller running (logs in {work})")
            op = OperatorProcess(cluster, work / "operator.log", "--poll-interval", "1",
                                 kubeconfig=operator_kubeconfig(cluster, work),
                                 namespaces=list(namespaces.values())).start()
            api = k8s.CustomObjectsApi(cluster.api_client())
            stand_ins = StandIns(k8s.CustomObjectsApi(cluster.api_client()), {ns: {"llama-fp16": fleet.url("llama-fp16"),
                                             "llama-int4": fleet.url(f"int4-{s}")} for s, ns in namespaces.items()})
            stand_ins.start()
            t0 = time.monotonic()
            for s, ns in namespaces.items():
                cluster.apply(application(f"llm-{s}", ns, git.url), "argocd")
            say("Applications llm-ship, llm-block, llm-abtest created")
            result.update(observe(cluster, cd, api, namespaces, redis_address, stand_ins, t0, args.abtest_window))
        result["seconds"] = round(time.monotonic() - started, 1)
    finally:
        if stand_ins is not None:
            stand_ins.stop.set()
        for proc in (op, cd):
            if proc is not None:
                proc.stop()
        harness.stop(cluster)
        if not args.keep and result.get("ship_promoted") and result.get("block_held"):
            import shutil
            shutil.rmtree(work, ignore_errors=True)
        else:
            say(f"logs kept in {work}")
    print(json.dumps(result), flush=True)
    return 0 if result.get("ship_promoted") and result.get("block_held") else 1


def observe(cluster, cd, api, namespaces, redis_address, stand_ins, t0, abtest_window) -> dict:
    watch = Watch(t0)
    verdicts: dict[str, str | None] = {s: None for s in namespaces}
    done: dict[str, dict] = {}
    abtest_seen_at = None

    def meval_verdict(ns: str) -> str | None:
        try:
            obj = api.get_namespaced_custom_object(*in_ns(MEVAL, ns), "llama-int4")
        except Exception:  # not applied yet
            return None
        st = obj.get("status") or {}
        return st.get("verdict") if st.get("phase") == "Succeeded" else st.get("phase")

    def get_app(name: str) -> dict:
        return api.get_namespaced_custom_object(*APPS, name)

    def route_applied(ns: str) -> bool:
        return bool(api.list_namespaced_custom_object(*in_ns(ROUTE, ns))["items"])

    deadline = time.monotonic() + 1500
    while len(done) < len(namespaces):
        if time.monotonic() > deadline:
            raise TimeoutError(f"Argo CD did not settle: {json.dumps(watch.events, default=str)[:3000]}")
        if stand_ins.error:
            raise stand_ins.error
        cd.controller.alive()
        for s, ns in namespaces.items():
            if s in done:
                continue
            app = get_app(f"llm-{s}")
            verdicts[s] = meval_verdict(ns)
            watch.record(f"llm-{s}", app, verdicts[s])
            st = app.get("status") or {}
            phase = (st.get("operationState") or {}).get("phase")
            health = (st.get("health") or {}).get("status")
            sync = (st.get("sync") or {}).get("status")
            if s == "ship" and verdicts[s] in SCENARIOS.values() and phase == "Succeeded" and health == "Healthy" \
                    and sync == "Synced":
                done[s] = app
            elif s == "block" and verdicts[s] in SCENARIOS.values() and phase in ("Failed", "Error"):
                done[s] = app
            elif s == "abtest" and verdicts[s] in SCENARIOS.values():
                node = next((n for n in resource_tree(redis_address, "llm-abtest").get("nodes") or []
                             if n["kind"] == "ModelEvaluation"), {})
                if abtest_seen_at is None and (node.get("health") or {}).get("status") == "Suspended":
                    abtest_seen_at = time.monotonic()
                    say(f"Argo CD sees the ABTest evaluation as Suspended; watching {abtest_window:.0f}s more")
                if abtest_seen_at is not None and time.monotonic() - abtest_seen_at >= abtest_window:
                    done[s] = app
            if s == "ship" and verdicts[s] in ("Block", "ABTest") or s == "block" and verdicts[s] in ("Ship", "Monitor"):
                raise AssertionError(f"{s}: the simulated candidate got {verdicts[s]}, the run is miscalibrated")
        time.sleep(1)

    out: dict = {"verdicts": verdicts}
    reports = {}
    for s, ns in namespaces.items():
        app = get_app(f"llm-{s}")  # the final state, read once more
        tree = resource_tree(redis_address, f"llm-{s}")
        reports[s] = render(app, tree)
        print(f"\n== llm-{s} (candidate verdict {verdicts[s]})\n{reports[s]}\n", flush=True)
        print(yaml.safe_dump({"status": {k: app["status"].get(k) for k in ("sync", "health", "operationState")}},
                             width=120), flush=True)
        out[f"{s}_route_applied"] = route_applied(ns)
        done[s] = app
        out[f"{s}_timeline"] = [[round(t, 1), *state] for t, state in watch.events[f"llm-{s}"]]
    ship, block, abtest = (done[s]["status"] for s in ("ship", "block", "abtest"))
    out["ship_promoted"] = (verdicts["ship"] == "Ship" and out["ship_route_applied"]
                            and ship["health"]["status"] == "Healthy" and ship["sync"]["status"] == "Synced")
    out["block_held"] = (verdicts["block"] == "Block" and not out["block_route_applied"]
                         and block["health"]["status"] == "Degraded")
    bop = block.get("operationState") or {}
    out["block_operation"] = f"{bop.get('phase')}: {bop.get('message')}"
    aop = abtest.get("operationState") or {}
    out["abtest"] = (f"verdict {verdicts['abtest']}; app health {abtest['health']['status']}, sync "
                     f"{abtest['sync']['status']}; operation {aop.get('phase')}: {aop.get('message')}; "
                     f"wave 2 {'applied' if out['abtest_route_applied'] else 'not applied'} "
                     f"{abtest_window:.0f}s after Argo CD saw Suspended")
    return out


if __name__ == "__main__":
    sys.exit(main())
