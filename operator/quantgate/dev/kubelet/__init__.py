"""The process kubelet: runs the pods bound to the dev node as local processes."""
