"""Pareto frontiers of a sweep's results (engine accuracy vs flash bytes, and vs instructions per
inference), as markdown tables and a PNG/SVG plot, and the --top list."""
import os


def pareto(rows, cost):
    """The rows no other row beats: none has higher-or-equal accuracy at lower-or-equal `cost`
    with one of them strictly better. Sorted by cost."""
    pts = sorted((r for r in rows if r.get(cost) is not None and r.get("engine_accuracy") is not None),
                 key=lambda r: (r[cost], -r["engine_accuracy"]))
    front, best = [], -1.0
    for r in pts:
        if r["engine_accuracy"] > best:
            front.append(r)
            best = r["engine_accuracy"]
    return front


def fitting(rows):
    return [r for r in rows if r["status"] == "ok"]


def top(rows, n):
    """The n most accurate runs that fit the target (ties: fewer flash bytes first)."""
    return sorted(fitting(rows), key=lambda r: (-r["engine_accuracy"], r["flash_bytes"] or 0))[:n]


def _fmt(x, spec="{:,}"):
    return "—" if x is None else spec.format(x)


def table(rows, title):
    lines = [f"### {title}", "",
             "| run | engine acc. | float acc. | weights B | flash B | RAM B | instr./inference | overrides |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| `{r['run_id']}` | {100 * r['engine_accuracy']:.2f} % | {_fmt(r['float_accuracy'] and 100 * r['float_accuracy'], '{:.2f} %')} | "
                     f"{_fmt(r['weight_bytes'])} | {_fmt(r['flash_bytes'])} | {_fmt(r['ram_bytes'])} | "
                     f"{_fmt(r['instructions'])} | `{r['overrides']}` |")
    return "\n".join(lines)


def report(rows, sweep_name, target_text):
    ok = fitting(rows)
    counts = {s: sum(r["status"] == s for r in rows) for s in ("ok", "no_fit", "failed")}
    head = (f"# Sweep `{sweep_name}`: target {target_text}\n\n{len(rows)} runs: {counts['ok']} fit, "
            f"{counts['no_fit']} do not fit, {counts['failed']} failed. Pareto frontiers of the runs that fit "
            f"(engine accuracy on the 10,000 test images; flash/RAM of the chip image, instructions: QEMU twin, "
            f"RV32EC, mean over 200 images). Written by `bitnetmcu-sweep`.\n")
    return "\n\n".join([head, table(pareto(ok, "flash_bytes"), "accuracy vs flash bytes"),
                        table(pareto(ok, "instructions"), "accuracy vs instructions per inference")]) + "\n"


def plot(rows, path_stem, title):
    """<stem>.png and <stem>.svg: accuracy vs flash and vs instructions; fitting runs filled,
    the others hollow, the frontier as a step line."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, cost, label in ((axes[0], "flash_bytes", "flash bytes (chip image)"),
                            (axes[1], "instructions", "instructions per inference (QEMU, RV32EC)")):
        for status, style in (("ok", dict(c="tab:blue", label="fits")),
                              ("no_fit", dict(facecolors="none", edgecolors="tab:red", label="does not fit"))):
            pts = [r for r in rows if r["status"] == status and r.get(cost) and r.get("engine_accuracy")]
            if pts:
                ax.scatter([r[cost] for r in pts], [100 * r["engine_accuracy"] for r in pts], s=18, **style)
        front = pareto(fitting(rows), cost)
        if front:  # the best accuracy holds to the right edge
            right = max(r[cost] for r in rows if r.get(cost))
            xs = [r[cost] for r in front] + [right]
            ys = [100 * r["engine_accuracy"] for r in front]
            ax.step(xs, ys + ys[-1:], where="post", c="tab:green", label="Pareto frontier")
        ax.set_xlabel(label)
        ax.set_ylabel("engine accuracy (%)")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, loc="lower right")
    fig.suptitle(title)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path_stem)), exist_ok=True)
    for ext in ("png", "svg"):
        fig.savefig(f"{path_stem}.{ext}", dpi=110)
    plt.close(fig)
