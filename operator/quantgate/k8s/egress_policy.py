"""The NetworkPolicy of a code evaluation's runner Job (pure builders).

A runner pod that executes model-written code may reach only what the evaluation needs:

* each model endpoint, pinned: an in-cluster Service URL (`<svc>.<ns>.svc[.<domain>]`, or a bare
  `<svc>` in the evaluation's namespace) becomes that Service's pods (its selector, in its
  namespace, on the target port) or, for a Service without a selector, the addresses of its
  EndpointSlices; an IP URL becomes an ipBlock /32 (/128) on its port. Anything else (an external
  host name, an ExternalName Service) cannot be pinned by a NetworkPolicy: `Unpinnable`, and the
  operator refuses the evaluation (docs/security.md "Code execution sandbox");
* DNS (kube-dns in kube-system, UDP and TCP 53), only when an endpoint is reached by name;
* the API server (the publishing containers write the results ConfigMaps), pinned to the
  `kubernetes` Service's EndpointSlice addresses in `default`, or the configured CIDRs.

Nothing else, and no ingress. The policy selects exactly the Job's pods (the operator's labels
for this evaluation and generation, which only that Job's pod template carries), is owned by the
evaluation (deleted with it; the reconciler deletes it with a superseded Job) and is created
before the Job, so the pod never runs unprotected.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from quantgate.k8s import names

NS_LABEL = "kubernetes.io/metadata.name"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"  # an EndpointSlice's Service
DNS_RULE = {
    "to": [{"namespaceSelector": {"matchLabels": {NS_LABEL: "kube-system"}},
            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
    "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
}
APISERVER_PORTS = (443, 6443)
_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_SVC_HOST = re.compile(rf"^(?P<svc>{_LABEL})\.(?P<ns>{_LABEL})\.svc(\.[a-z0-9.-]+)?$")
_BARE = re.compile(rf"^{_LABEL}$")


class Unpinnable(Exception):
    """An address a NetworkPolicy cannot confine egress to: the evaluation cannot run code safely."""


@dataclass(frozen=True)
class ServiceTarget:
    namespace: str
    name: str
    port: int


@dataclass(frozen=True)
class IPTarget:
    ip: str
    port: int


def policy_name(job_name: str) -> str:
    return f"{job_name}-egress"


def target_of(url: str, namespace: str) -> ServiceTarget | IPTarget:
    """Where `url` goes, as a NetworkPolicy can name it; Unpinnable for an external host name."""
    parts = urlsplit(url)
    host = (parts.hostname or "").rstrip(".").lower()
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise Unpinnable(f"{url}: invalid port") from None
    try:
        return IPTarget(str(ipaddress.ip_address(host)), port)
    except ValueError:
        pass
    match = _SVC_HOST.match(host)
    if match:
        return ServiceTarget(match["ns"], match["svc"], port)
    if _BARE.match(host) and host != "localhost":
        return ServiceTarget(namespace, host, port)
    raise Unpinnable(f"{url}: host {host or '(none)'} is neither an in-cluster Service name "
                     "(<service>.<namespace>.svc) nor an IP address")


def ip_peer(ip: str) -> dict:
    try:
        bits = 32 if ipaddress.ip_address(ip).version == 4 else 128
    except ValueError:  # an FQDN EndpointSlice's address
        raise Unpinnable(f"endpoint address {ip} is not an IP address") from None
    return {"ipBlock": {"cidr": f"{ip}/{bits}"}}


def ip_rule(target: IPTarget) -> dict:
    return {"to": [ip_peer(target.ip)], "ports": [{"protocol": "TCP", "port": target.port}]}


def service_rule(target: ServiceTarget, service: dict, slices: list[dict]) -> dict:
    """Egress to what `service` sends `target.port` to: its selected pods, or its EndpointSlices' addresses."""
    spec = service.get("spec") or {}
    where = f"Service {target.namespace}/{target.name}"
    if spec.get("type") == "ExternalName":
        raise Unpinnable(f"{where} is an ExternalName ({spec.get('externalName')}): its address cannot be pinned")
    port = next((p for p in spec.get("ports") or [] if p.get("port") == target.port), None)
    if port is None:
        raise Unpinnable(f"{where} has no port {target.port}")
    if spec.get("selector"):
        peer = {"namespaceSelector": {"matchLabels": {NS_LABEL: target.namespace}},
                "podSelector": {"matchLabels": dict(spec["selector"])}}
        return {"to": [peer], "ports": [{"protocol": port.get("protocol", "TCP"),
                                         "port": port.get("targetPort", target.port)}]}
    peers, ports = [], []  # no selector: the addresses someone wrote into its EndpointSlices
    for s in slices:
        for p in s.get("ports") or []:
            if p.get("name", "") == port.get("name", "") and p.get("port") is not None:
                entry = {"protocol": p.get("protocol", "TCP"), "port": p["port"]}
                ports += [entry] if entry not in ports else []
        for e in s.get("endpoints") or []:
            for a in e.get("addresses") or []:
                peer = ip_peer(a)
                peers += [peer] if peer not in peers else []
    if not peers or not ports:
        raise Unpinnable(f"{where} has no selector and no endpoint addresses for port {target.port}")
    return {"to": peers, "ports": ports}


def apiserver_rule(cidrs: list[str], slices: list[dict]) -> dict:
    """Egress to the API server: the configured CIDRs on 443/6443, else the `kubernetes` EndpointSlices."""
    if cidrs:
        return {"to": [{"ipBlock": {"cidr": c}} for c in cidrs],
                "ports": [{"protocol": "TCP", "port": p} for p in APISERVER_PORTS]}
    peers = [ip_peer(a) for s in slices for e in s.get("endpoints") or [] for a in e.get("addresses") or []]
    ports = sorted({p["port"] for s in slices for p in s.get("ports") or [] if p.get("port")})
    if not peers or not ports:
        raise Unpinnable("cannot pin the API server: no EndpointSlice default/kubernetes with addresses; "
                         "set QUANTGATE_APISERVER_CIDRS (chart: networkPolicy.apiServerCIDRs)")
    return {"to": peers, "ports": [{"protocol": "TCP", "port": p} for p in ports]}


def endpoint_rules(urls: list[str], namespace: str, get_service: Callable[[str, str], dict | None],
                   list_slices: Callable[[str, str], list[dict]]) -> tuple[list[dict], bool]:
    """Egress rules for the model endpoints, and whether DNS is needed (an endpoint reached by name).
    `get_service(ns, name)` is None when absent (LookupError then: wait for it)."""
    rules, dns = [], False
    for url in urls:
        target = target_of(url, namespace)
        if isinstance(target, IPTarget):
            rule = ip_rule(target)
        else:
            dns = True
            service = get_service(target.namespace, target.name)
            if service is None:
                raise LookupError(f"{url}: Service {target.namespace}/{target.name} not found")
            slices = [] if (service.get("spec") or {}).get("selector") else list_slices(target.namespace, target.name)
            rule = service_rule(target, service, slices)
        if rule not in rules:
            rules.append(rule)
    return rules, dns


@dataclass(frozen=True)
class Egress:
    """What a code evaluation's runner pod may reach (the rules of its NetworkPolicy)."""

    endpoints: list[dict]
    apiserver: dict
    dns: bool


def resolve(urls: list[str], namespace: str, get_service: Callable[[str, str], dict | None],
            list_slices: Callable[[str, str], list[dict]], apiserver_cidrs: list[str],
            apiserver_slices: list[dict]) -> Egress:
    """All of a runner pod's egress: Unpinnable, LookupError (a Service not there yet) as endpoint_rules."""
    endpoints, dns = endpoint_rules(urls, namespace, get_service, list_slices)
    return Egress(endpoints, apiserver_rule(apiserver_cidrs, apiserver_slices), dns)


def owned_by(obj: dict, uid: str) -> bool:
    """Whether `obj`'s controller is the object with this UID (a policy the operator made for it)."""
    return any(r.get("uid") == uid and r.get("controller") for r in obj["metadata"].get("ownerReferences") or [])


def pod_selector(evaluation: str, generation: int) -> dict:
    """The labels every pod of this generation's runner Job carries (k8s/job.py) and no other Job's pods."""
    return {"matchLabels": {names.MANAGED_BY: names.MANAGER, names.LABEL_EVALUATION: evaluation,
                            names.LABEL_GENERATION: str(generation)}}


def egress_policy(job_name: str, namespace: str, evaluation: str, generation: int, owner: dict,
                  endpoints: list[dict], apiserver: dict, dns: bool) -> dict:
    """The NetworkPolicy of runner Job `job_name`: no ingress; egress to `endpoints`, the API server, DNS if asked."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": policy_name(job_name), "namespace": namespace,
                     "labels": {names.MANAGED_BY: names.MANAGER, names.LABEL_EVALUATION: evaluation,
                                names.LABEL_GENERATION: str(generation)},
                     "ownerReferences": [owner]},
        "spec": {"podSelector": pod_selector(evaluation, generation), "policyTypes": ["Ingress", "Egress"],
                 "egress": [*endpoints, apiserver, *([DNS_RULE] if dns else [])]},
    }
