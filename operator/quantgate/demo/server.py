"""`make demo-real`'s server part: the generation tasks through llama-cpp-python's server.

The same GGUF files, served by `python -m llama_cpp.server` on loopback, evaluated with
`quantgate run --endpoint` (lm-eval's local-completions). The server has no tokenizer
endpoints and shifts echoed prompt log-probabilities by one token, so only generation tasks
run there (text prompts; the log-probability probe is skipped). Its default repeat_penalty,
1.1, is not greedy decoding and lm-eval does not send one: the runs pass
`--gen-kwargs repeat_penalty=1.0`, which lm-eval forwards in every request. The section then
shows each model's scores and answer flips through the server beside the in-process engine's,
and whether the generated texts are the same.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

# The local suite's generation task (the others are scored from loglikelihoods).
GENERATION_TASKS = ("gsm8k",)
GEN_KWARGS = "repeat_penalty=1.0"
N_CTX = 2048  # the in-process engine's default context (LlamaCppSettings.n_ctx)


def server_tasks(tasks: str, chosen: str | None) -> list[str]:
    """The `name[:shots][@limit]` entries of `tasks` to run through the server: `chosen` (a comma
    list of task names, "none" for no server runs) or else the generation tasks among them."""
    entries = {part.split(":")[0].split("@")[0]: part for part in filter(None, map(str.strip, tasks.split(",")))}
    if chosen is None:
        return [entry for name, entry in entries.items() if name in GENERATION_TASKS]
    names = [n for n in map(str.strip, chosen.split(",")) if n and n != "none"]
    from quantgate.errors import InputError

    for name in names:
        if name not in entries:
            raise InputError(f"--server-tasks: {name} is not in --tasks; the server's answers are compared with "
                             "the engine's on the same questions")
    return [entries[n] for n in names]


def check_server(models: dict[str, Path], out: Path, port: int | None) -> None:
    """Before the engine runs: a missing server extra or a busy --server-port, in one line."""
    from quantgate.engines.llama_server import LlamaServer

    LlamaServer(models, out, port=port).check()


def run_through_server(models: dict[str, Path], tasks: list[str], out: Path, threads: int, port: int | None,
                       reuse: bool, say: Callable[[str], None]) -> dict[str, Path]:
    """Serve every model from one server process and evaluate `tasks` on each; run directories."""
    from quantgate.engines.llama_server import LlamaServer
    from quantgate.errors import QuantgateError
    from quantgate.lmeval.parallel import RunJob, run_all

    dirs = {alias: out / alias for alias in models}
    jobs = [RunJob(f"server {alias}", ["--endpoint", "", "--model", alias, "--tasks", ",".join(tasks),
                                       "--local-data", "--output", str(path), "--force", "--concurrency", "1",
                                       "--max-length", str(N_CTX), "--gen-kwargs", GEN_KWARGS,
                                       "--label", f"[server {alias}]", "--progress-interval", "30"], path)
            for alias, path in dirs.items()]
    if reuse:
        jobs = [j for j in jobs if not (j.output / "manifest.json").is_file()]
    if not jobs:
        return dirs
    with LlamaServer(models, out, port=port, n_ctx=N_CTX, n_threads=threads) as server:
        say(f"llama-cpp-python's server on {server.url} (log {server.log}): {', '.join(tasks)} for "
            f"{', '.join(models)}, text prompts, {GEN_KWARGS}")
        for job in jobs:
            job.args[1] = server.url
        # One at a time: the server answers one request at a time, whichever model it names.
        run_all(jobs, max_parallel=1)
    failed = [j for j in jobs if j.failed or j.returncode is None]
    if failed:
        raise QuantgateError(f"the {failed[0].label} run failed (exit status {failed[0].returncode}); "
                             f"see {out / 'server.log'}")
    return dirs


def server_section(reference: str, engine_dirs: dict[str, Path], server_dirs: dict[str, Path], tasks: list[str],
                   engine_matrix, drop_mode: str) -> list[str]:
    """Per model and task: scores through the server and the engine, flips against the reference
    through the server, and how many generated texts equal the engine's."""
    from quantgate.decision import compare
    from quantgate.decision.model import Policy
    from quantgate.engines.generations import agreement, generations
    from quantgate.lmeval.results import load_run
    from quantgate.demo.simulated import grid

    names = [t.split(":")[0].split("@")[0] for t in tasks]
    runs = {k: load_run(d) for k, d in server_dirs.items()}
    policy = Policy(profile="general", drop_mode=drop_mode)
    comparisons = {k: compare(runs[reference], runs[k], policy) for k in runs if k != reference}
    engine_scores = {r.name: r.scores for r in engine_matrix.rows}  # the reference's row is "Reference"
    rows, identical = [], True
    for kind in server_dirs:
        for task in names:
            if kind == reference:
                first = next(iter(comparisons.values())).tasks
                score, flips = next(t.baseline for t in first if t.task == task), "-"
            else:
                t = next(t for t in comparisons[kind].tasks if t.task == task)
                score = t.candidate
                flips = f"{t.flips.correct_to_incorrect}/{t.flips.incorrect_to_correct} ({t.flips.rate:.1%})"
            engine = engine_scores["Reference" if kind == reference else kind].get(task)
            same = agreement(generations(server_dirs[kind], task), generations(engine_dirs[kind], task))
            identical &= same.identical
            texts = f"{same.same}/{same.compared}" + (
                f" (differ: doc {', '.join(map(str, same.differing[:5]))})" if same.differing else "")
            rows.append([kind if kind != reference else f"{kind} (Reference)", task, f"{score:.4f}",
                         f"{engine:.4f}" if engine is not None else "-", flips, texts])
    head = ["Variant", "Task", "Server", "Engine", "Flips c>i/i>c (server)", "Texts equal to the engine's"]
    verdict = ("every generated answer is identical through the server and the in-process engine" if identical
               else "the server's generated answers differ from the in-process engine's (listed above)")
    return [*grid(head, rows).splitlines(), "", verdict]
