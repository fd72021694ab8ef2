"""A real Kubernetes control plane on loopback for tests and local development.

`quantgate dev up` starts etcd, kube-apiserver, kube-controller-manager, kube-scheduler (built from
source by scripts/build-tools.sh) and a process kubelet that runs pods as local processes.
"""
