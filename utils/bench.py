"""`make bench`: how long the notebooks take and how fast the numpy layers run, on this machine.

Prints a table and writes JSON (default tests/artifacts/bench.json). A benchmark, not a test: numbers
depend on the machine and its load, so nothing here asserts a speed. Layer comparisons run in a child
process with one thread for numpy and torch alike (two-thread ratios swing wildly under load), and each
ratio is the median over pairs timed back to back.

    python -m utils.bench [--json PATH] [--quick]
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

from . import layers

ROOT = Path(__file__).resolve().parents[1]
ONE_THREAD = {k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
SHAPES = [(64, 100, 64, 256), (32, 50, 128, 128)]  # (N, T, D, H)


def _median_ratio(ours, theirs, repeats):
    """Median of (ours / theirs) over back-to-back pairs, and the median seconds of each."""
    ours(), theirs()  # warm up
    pairs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        ours()
        t1 = time.perf_counter()
        theirs()
        t2 = time.perf_counter()
        pairs.append((t1 - t0, t2 - t1))
    a, b = np.array(pairs).T
    return float(np.median(a / b)), float(np.median(a)), float(np.median(b))


def _layer_pair(kind, N, T, D, H):
    """The same float32 forward+backward as two callables: the course's numpy layer and its torch.nn twin.

    kind "RNN" pairs layers.rnn_forward/backward with torch.nn.RNN, "LSTM" pairs
    gates.lstm_forward/backward with torch.nn.LSTM.
    """
    import torch

    from . import gates

    k = 4 if kind == "LSTM" else 1
    forward, backward = ((gates.lstm_forward, gates.lstm_backward) if kind == "LSTM"
                         else (layers.rnn_forward, layers.rnn_backward))
    rng = np.random.default_rng(0)
    x, h0 = rng.standard_normal((N, T, D), dtype=np.float32), np.zeros((N, H), np.float32)
    Wx, Wh = (0.1 * rng.standard_normal(s, dtype=np.float32) for s in ((D, k * H), (H, k * H)))
    b, dh = np.zeros(k * H, np.float32), rng.standard_normal((N, T, H), dtype=np.float32)
    net = getattr(torch.nn, kind)(D, H, batch_first=True, dtype=torch.float32)
    tx, tdh = torch.from_numpy(x).requires_grad_(), torch.from_numpy(dh)

    def ours():
        _, cache = forward(x, h0, Wx, Wh, b)
        backward(dh, cache)

    def theirs():
        out, _ = net(tx)
        out.backward(tdh)

    return ours, theirs


def layer_ratios(repeats):
    """numpy RNN and LSTM forward+backward vs torch.nn.RNN and LSTM on the CPU, float32, one thread."""
    import torch

    torch.set_num_threads(1)
    rows = []
    for kind in ("RNN", "LSTM"):
        for N, T, D, H in SHAPES:
            ratio, ours, theirs = _median_ratio(*_layer_pair(kind, N, T, D, H), repeats)
            rows.append({"layer": kind, "shape": f"N={N} T={T} D={D} H={H}", "numpy_s": ours, "torch_s": theirs,
                         "ratio": ratio})
    return rows


def _numpy_char_rnn_step(N, T, V, H, rng):
    """One truncated-BPTT chunk of the numpy char RNN of notebook 02: forward, loss, backward, Adam update."""
    from . import charrnn
    from .train import Adam

    params = charrnn.init_params(V, H, rng)
    opt = Adam(params, lr=1e-3)
    tokens, h0 = rng.integers(0, V, (N, T + 1)), np.zeros((N, H))

    def step():
        _, grads, _ = charrnn.char_rnn_loss(params, tokens[:, :-1], tokens[:, 1:], h0)
        opt.step(grads)

    return step


def _torch_char_lm_step(cell, N, T, V, E, H):
    """One training step (forward, backward, Adam) of notebook 02's PyTorch CharLM."""
    import torch

    from .models import CharLM

    torch.manual_seed(0)
    model = CharLM(V, embed=E, hidden=H, cell=cell)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    tokens = torch.randint(0, V, (N, T + 1))

    def step():
        scores, _, _ = model(tokens[:, :-1])
        loss = torch.nn.functional.cross_entropy(scores.reshape(-1, V), tokens[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step


def char_throughput(seconds):
    """Characters per second of one training step, repeated for about `seconds` each (2 threads for torch)."""
    import torch

    torch.set_num_threads(2)
    rng = np.random.default_rng(0)
    V = 96  # printable characters, as in a source-code corpus
    setups = [
        ("numpy RNN, batch 1 (H=100, T=25)", 1, 25, _numpy_char_rnn_step(1, 25, V, 100, rng)),
        ("numpy RNN, batch 128 (H=100, T=25)", 128, 25, _numpy_char_rnn_step(128, 25, V, 100, rng)),
    ] + [(f"torch {cell.upper()} (E=64, H=256, T=50, batch 64)", 64, 50, _torch_char_lm_step(cell, 64, 50, V, 64, 256))
         for cell in ("rnn", "lstm", "gru")]
    rows = []
    for name, N, T, step in setups:
        step()
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            step()
            n += 1
        rows.append({"model": name, "chars_per_s": n * N * T / (time.perf_counter() - start), "steps": n})
    return rows


def shape_world(seconds):
    """Seconds to draw 10,000 shape-world scenes and to load the cached training split, the training
    throughput of notebook 04's captioner (batches of 64) and notebook 05's soft-attention captioner (batches of
    32), in images per second with the default threads, and the step time of notebook 06's VQA models."""
    import torch

    from .attend import SoftObjective
    from .captioning import train_captioner
    from .data.shapes import Vocab, generate, load_shapes
    from .models import AttentionCaptioner, Captioner

    start = time.perf_counter()
    drawn = generate("train", 10_000)
    rows = [{"what": "draw 10,000 scenes (images, captions, questions)", "value": time.perf_counter() - start,
             "unit": "s"}]
    start = time.perf_counter()
    train = load_shapes("train")
    rows.append({"what": f"load and verify the cached train split ({len(train):,} scenes)",
                 "value": time.perf_counter() - start, "unit": "s"})
    vocab = Vocab.from_captions(drawn.captions)
    ids = vocab.encode(drawn.captions)
    torch.manual_seed(0)
    model = Captioner(len(vocab))
    train_captioner(model, drawn.images, ids, 3)  # warm up
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        train_captioner(model, drawn.images, ids, 5)
        n += 5
    rows.append({"what": "captioner training (image at every step, LSTM)",
                 "value": n * 64 / (time.perf_counter() - start), "unit": "images/s"})
    torch.manual_seed(0)
    attentive = AttentionCaptioner(len(vocab))
    soft = SoftObjective(lam=0.0)
    train_captioner(attentive, drawn.images, ids, 3, batch=32, objective=soft)  # warm up
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        train_captioner(attentive, drawn.images, ids, 5, batch=32, objective=soft)
        n += 5
    rows.append({"what": "attention captioner training (soft, 16x16 grid, batches of 32)",
                 "value": n * 32 / (time.perf_counter() - start), "unit": "images/s"})
    rows += vqa_steps(drawn, seconds)
    return rows


def vqa_steps(drawn, seconds):
    """Seconds per training step of notebook 06's models (16 scenes and all their questions per step)."""
    import torch

    from . import vqa
    from .data.shapes import Vocab
    from .models import VQAModel

    table = vqa.Questions.of(drawn.scenes)
    vocab, answers = Vocab.from_captions(table.text), vqa.Answers(table.answers)
    ids, targets = vocab.encode(table.text), answers.encode(table.answers)
    rows = []
    for name, design in (("question only", dict(image=False)), ("product, no attention", dict(hops=0)),
                         ("1 hop", dict(hops=1)), ("2 hops", dict(hops=2))):
        torch.manual_seed(0)
        model = VQAModel(len(vocab), len(answers), **design)
        vqa.train_vqa(model, drawn.images, ids, targets, 3, table.image_index)  # warm up
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds / 4:
            vqa.train_vqa(model, drawn.images, ids, targets, 5, table.image_index)
            n += 5
        rows.append({"what": f"VQA training, {name} (16 scenes per step)",
                     "value": 1000 * (time.perf_counter() - start) / n, "unit": "ms/step"})
    return rows


def run_notebook(path, fast, timeout):
    """(seconds, status) of one notebook run top to bottom in a fresh kernel as a learner runs it: in this
    environment, checks in the kernel, no sandbox (grading's own cost is measured by `grading_times`)."""
    import shutil
    import tempfile

    with tempfile.TemporaryDirectory(prefix="course-bench-") as tmp:
        copy = Path(tmp) / path.name
        shutil.copyfile(path, copy)
        env = {**os.environ, "COURSE_FAST": "1" if fast else "0", "MPLBACKEND": "Agg",
               "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        start = time.perf_counter()
        try:
            proc = subprocess.run([sys.executable, "-m", "utils.check.execute", str(copy), str(timeout)], cwd=tmp,
                                  env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return time.perf_counter() - start, "timeout"
        seconds = time.perf_counter() - start
    if proc.returncode != 0:
        return seconds, "crashed"
    return seconds, "raised" if json.loads(proc.stdout.strip().splitlines()[-1])["errors"] else "ok"


def notebook_times(timeout):
    """Wall time of each solutions notebook (full) and each lecture (fast mode), kernel start included."""
    rows = []
    for folder, fast in (("solutions", False), ("lectures", True)):
        for path in sorted((ROOT / folder).glob("*.ipynb")):
            seconds, status = run_notebook(path, fast, timeout)
            rows.append({"notebook": f"{folder}/{path.name}", "mode": "fast" if fast else "full",
                         "seconds": seconds, "status": status})
    return rows


def grading_times(copies, timeout):
    """What the sandboxed judge costs: lecture 01 run as a learner runs it, graded with and without the sandbox,
    and `copies` copies of it graded two at a time (the class-set case of `python -m utils.check --jobs 2`)."""
    import shutil
    import tempfile

    lecture = ROOT / "lectures" / "01_rnn_recurrence_and_hello.ipynb"
    rows = [{"what": "lecture 01 run directly (a learner's kernel)",
             "seconds": run_notebook(lecture, True, timeout)[0]}]
    with tempfile.TemporaryDirectory(prefix="course-bench-") as tmp:
        for label, extra in (("graded in the sandbox", []), ("graded without the sandbox", ["--no-sandbox"])):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "utils.check", str(lecture), "--jobs", "1", *extra], cwd=ROOT,
                           capture_output=True, timeout=timeout)
            rows.append({"what": f"lecture 01 {label}", "seconds": time.perf_counter() - start})
        folder = Path(tmp) / "class"
        folder.mkdir()
        for k in range(copies):
            shutil.copyfile(lecture, folder / f"01_student{k:02d}.ipynb")
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "utils.check", str(folder), "--jobs", "2"], cwd=ROOT,
                       capture_output=True, timeout=timeout * copies)
        rows.append({"what": f"{copies} copies of lecture 01 graded with --jobs 2",
                     "seconds": time.perf_counter() - start})
    return rows


def _child(kind, quick):
    """Run one section in this process and print its rows as JSON (started by main with one thread)."""
    rows = layer_ratios(3 if quick else 15) if kind == "layers" else char_throughput(0.5 if quick else 5.0)
    print(json.dumps(rows))


def _in_child(kind, quick):
    env = {**os.environ, **ONE_THREAD} if kind == "layers" else dict(os.environ)
    args = [sys.executable, "-m", "utils.bench", "--child", kind] + (["--quick"] if quick else [])
    out = subprocess.run(args, env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def format_tables(result):
    lines = [f"machine: {result['machine']}   date: {result['date']}", "", "notebook wall time (s)"]
    lines += [f"  {r['notebook']:<50} {r['mode']:<5} {r['seconds']:>7.1f}  {r['status']}" for r in result["notebooks"]]
    lines += ["", "numpy vs torch, forward + backward, float32, 1 thread (ratio = numpy / torch, median of pairs)"]
    lines += [f"  {r['layer']:<5} {r['shape']:<26} numpy {1e3 * r['numpy_s']:8.1f} ms  torch "
              f"{1e3 * r['torch_s']:8.1f} ms  ratio {r['ratio']:5.2f}" for r in result["layers"]]
    lines += ["", "char-LM training throughput (characters per second)"]
    lines += [f"  {r['model']:<48} {r['chars_per_s']:>10,.0f}" for r in result["char_lm"]]
    lines += ["", "shape world and captioning"]
    lines += [f"  {r['what']:<55} {r['value']:>10,.1f} {r['unit']}" for r in result["shape_world"]]
    lines += ["", "grading (python -m utils.check)"]
    lines += [f"  {r['what']:<55} {r['seconds']:>10,.1f} s" for r in result.get("grading", [])]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m utils.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", default=str(ROOT / "tests" / "artifacts" / "bench.json"), help="where to write")
    parser.add_argument("--quick", action="store_true", help="few repeats, to check that the benchmark runs")
    parser.add_argument("--child", choices=["layers", "char_lm"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return _child(args.child, args.quick)
    result = {
        "date": date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_implementation()} "
                   f"{platform.python_version()}, numpy {np.__version__}",
        "notebooks": notebook_times(timeout=600),
        "layers": _in_child("layers", args.quick),
        "char_lm": _in_child("char_lm", args.quick),
        "shape_world": shape_world(1.0 if args.quick else 10.0),
        "grading": grading_times(2 if args.quick else 10, timeout=600),
    }
    print(format_tables(result))
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2))
    print(f"\nwritten to {args.json}")


if __name__ == "__main__":
    sys.exit(main())
