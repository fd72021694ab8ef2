"""Real-model bench: the in-process llama.cpp engine against llama.cpp itself, same tokens.

Builds lm-eval's own loglikelihood requests for the local arc_challenge and hellaswag items,
scores them with `quantgate-llama-cpp` (lm-eval's plumbing, tokenization, log-softmax, result
order) on SmolLM2-135M-Instruct's Q4_1 GGUF, and records the decodes the engine sent to llama.cpp
(tokens, positions, and which positions' logits it asked for) and, group by group of questions
(interleaved, so a shared machine's load falls on both alike), replays exactly those decodes
through llama-cpp-python's low-level API (llama_batch + llama_decode, KV-cache trimming) with
nothing around it.
ratio_to_llama_cpp = llama.cpp's time / the engine's time (goal >= 0.9: lm-eval's plumbing
around llama.cpp costs at most 10 %). It also scores the same requests on the Q3_K_M and Q2_K
requantizations and reports each one's choice KLD and top-1 agreement against Q4_1.
Needs `make tools-llama`. Last line: one JSON object with a "bench" key.
Run: python bench/real_model_bench.py [--arc N] [--hellaswag N] [--threads N] [--group N]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def build_requests(arc: int, hellaswag: int):
    from quantgate.lmeval.local_tasks import local_task_manager

    tm = local_task_manager()
    out = []
    for name, limit in (("arc_challenge", arc), ("hellaswag", hellaswag)):
        task = tm.load([name])["tasks"][name]
        task.build_all_requests(limit=limit, rank=0, world_size=1)
        out += [(name, inst) for inst in task.instances]
    return out


def per_question(tagged, results) -> dict:
    grouped: dict = {}
    for (task, inst), (ll, _) in zip(tagged, results):
        grouped.setdefault((task, inst.doc_id), []).append((inst.idx, ll))
    return {k: [ll for _, ll in sorted(v)] for k, v in grouped.items()}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--arc", type=int, default=40, help="arc_challenge questions (4 choices each)")
    parser.add_argument("--hellaswag", type=int, default=20, help="hellaswag questions (4 endings each)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--group", type=int, default=5, help="questions per interleaved engine/replay group")
    args = parser.parse_args()

    from quantgate.decision.fidelity import task_fidelity
    from quantgate.engines.llama_lm import LlamaCppLM
    from quantgate.engines.real_models import CANDIDATES, REFERENCE, missing, model_path

    problem = missing()
    if problem:
        print(f"real_model_bench: {problem}", file=sys.stderr)
        return 2
    tagged = build_requests(args.arc, args.hellaswag)
    requests = [inst for _, inst in tagged]

    lm = LlamaCppLM(model_path=str(model_path(REFERENCE)), n_ctx=2048, n_threads=args.threads)
    llm = lm.scorer.llm  # the replay uses the same model and context
    ctx, batch, n_batch = llm._ctx, llm._batch, llm.n_batch

    def replay(decodes) -> None:  # same tokens, same logits rows requested, nothing around it
        for n_past, tokens, first in decodes:
            ctx.kv_cache_seq_rm(-1, n_past, -1)
            for i in range(0, len(tokens), n_batch):
                chunk = tokens[i:i + n_batch]
                batch.set_batch(batch=chunk, n_past=n_past + i, logits_all=False)
                for j in range(len(chunk)):
                    batch.batch.logits[j] = n_past + i + j >= first
                ctx.decode(batch)

    # Interleaved in groups of questions, so that load from other processes on a shared machine
    # falls on both sides alike: the engine scores a group, then llama.cpp alone replays that
    # group's decodes. The replay ends with the KV cache the engine left, so the engine's prefix
    # bookkeeping stays true for the next group. One untimed group first warms both up.
    questions = list(dict.fromkeys((task, inst.doc_id) for task, inst in tagged))
    group_of = {q: n // args.group for n, q in enumerate(questions)}
    groups: list[list[int]] = [[] for _ in range(max(group_of.values()) + 1)]
    for i, (task, inst) in enumerate(tagged):
        groups[group_of[(task, inst.doc_id)]].append(i)
    lm.loglikelihood([requests[i] for i in groups[0]])
    reference: list = [None] * len(requests)
    batches: list = []  # the exact decodes the engine hands to llama.cpp: (n_past, tokens, first output position)
    engine_s = raw_s = engine_cpu = raw_cpu = 0.0
    for group in groups:
        decodes: list = []
        lm.scorer.on_decode = lambda n_past, tokens, first: decodes.append((n_past, list(tokens), first))
        t0, c0 = time.perf_counter(), time.process_time()
        scored = lm.loglikelihood([requests[i] for i in group])
        engine_s, engine_cpu = engine_s + time.perf_counter() - t0, engine_cpu + time.process_time() - c0
        lm.scorer.on_decode = None
        t0, c0 = time.perf_counter(), time.process_time()
        replay(decodes)
        raw_s, raw_cpu = raw_s + time.perf_counter() - t0, raw_cpu + time.process_time() - c0
        for i, res in zip(group, scored):
            reference[i] = res
        batches += decodes
    evaluated = sum(len(t) for _, t, _ in batches)
    outputs = sum(len(t) - max(0, first - n_past) for n_past, t, first in batches)
    request_tokens = sum(len(c) + len(x) for c, x in (lm._encode_pair(*r.args) for r in requests))

    ref_q = per_question(tagged, reference)
    kld, top1 = {}, {}
    for kind in CANDIDATES:
        cand = LlamaCppLM(model_path=str(model_path(kind)), n_ctx=2048, n_threads=args.threads)
        cand_q = per_question(tagged, cand.loglikelihood(requests))
        for task in ("arc_challenge", "hellaswag"):
            keys = sorted(k for k in ref_q if k[0] == task)
            f = task_fidelity(task, [ref_q[k] for k in keys], [cand_q[k] for k in keys])
            kld[f"{kind}/{task}"] = round(f.kld, 5)
            top1[f"{kind}/{task}"] = round(f.top1, 4)
        del cand

    print(f"{len(requests)} loglikelihood requests ({len(ref_q)} questions), {request_tokens} request tokens, "
          f"{evaluated} tokens evaluated after prefix reuse, {outputs} logits rows, {args.threads} threads")
    print(f"engine (lm-eval plumbing + llama.cpp): {engine_s:.2f} s, {evaluated / engine_s:.0f} evaluated tokens/s, "
          f"{len(requests) / engine_s:.1f} requests/s")
    print(f"llama.cpp alone, same batches:        {raw_s:.2f} s, {evaluated / raw_s:.0f} evaluated tokens/s")
    for key in kld:
        print(f"  {key:28} choice KLD {kld[key]:.5f}  top-1 {top1[key]:.4f}")
    print(f"CPU seconds of this process: engine {engine_cpu:.2f}, llama.cpp alone {raw_cpu:.2f} "
          f"(ratio {raw_cpu / engine_cpu:.3f})")
    print(json.dumps({"bench": "real_model", "ratio_to_llama_cpp": round(raw_s / engine_s, 3),
                      "cpu_ratio_to_llama_cpp": round(raw_cpu / engine_cpu, 3),
                      "items_per_s": round(len(requests) / engine_s, 2),
                      "tokens_per_s": round(evaluated / engine_s, 1),
                      "llama_cpp_tokens_per_s": round(evaluated / raw_s, 1),
                      "requests": len(requests), "evaluated_tokens": evaluated, "logits_rows": outputs, "request_tokens": request_tokens,
                      "kld": kld, "top1": top1}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
