"""`python -m quantgate.dev.kubelet --state-dir DIR`: the dev cluster's process kubelet."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from quantgate.dev.kubelet.agent import Kubelet
from quantgate.dev.kubelet.logserver import serve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="quantgate-kubelet", description=__doc__)
    parser.add_argument("--state-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    kubelet = Kubelet(args.state_dir)
    serve(kubelet.state.ports["kubelet"], kubelet.state.pki, kubelet.pods_dir)

    def stop(signum, _frame):
        logging.getLogger("kubelet").info("signal %d: stopping pods", signum)
        kubelet.shutdown()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    watcher = threading.Thread(target=kubelet.run, name="watch", daemon=True)
    watcher.start()
    while watcher.is_alive():
        watcher.join(1.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
