"""Which islands the mixed model keeps in fp32: a search whose previews grow with the islands.

Units (each one a set of nodes that is fp32 or fp16 as a whole), in groups:
- "beyond range": each node whose values leave fp16's range on the golden inputs (precision_scan);
- the engine.keep_fp32 groups: "LayerNorm" (each LayerNorm chain or fused LayerNormalization)
  and "Softmax" (each Softmax node): they are seeds, fp32 unless a preview proves them unneeded;
- "near range": each other node whose values come within 16x of fp16's largest value.
The search:
1. naive: no island at all. If its masks meet the goal, no island is needed (one preview).
2. all: every unit in fp32. If its masks miss the goal, no island set can keep them ("cannot").
3. drop: from that passing set, try to drop each group whole; a group that is needed is split in
   halves, down to single units (units sorted by their largest value: the half that comes less
   close to fp16's range is tried first, as the likelier to go). The current set always meets
   the goal, so when the budget ends the search still has a set to give (the "budget" verdict).
The goal is judged on the golden masks only (agreement and mIoU, no NaN/Inf): the fp16 mask
limits of verify.fp16, tightened by precision.margin. Previews run on the switchboard
(fp16_switchboard): one session, one run per golden image, cached per island set."""
from stages.host import precision_preview as pp
from stages.host.fp16_convert import FP16_MAX
from stages.host.precision_budget import BudgetSpent
from runtime.sidecar import INPUT_NAME

NEAR = 16.0  # "near range": within this factor of 65504
GROUPS = ("LayerNorm", "Softmax")  # the groups engine.keep_fp32 may name


def mask_goal(limits, margin):
    """verify.fp16's mask limits with the disagreement divided by the margin."""
    return {"mask_agreement": 1 - (1 - limits["mask_agreement"]) / margin,
            "miou": 1 - (1 - limits["miou"]) / margin}


def meets(rows, goal):
    w = pp.worst(rows)
    return (w["nan"] == 0 and w["inf"] == 0 and w["miou"] >= goal["miou"]
            and w["mask_agreement"] >= goal["mask_agreement"])


def _seed_units(model, keep_fp32):
    from stages.host.precision import layernorm_chains
    units = {"LayerNorm": [[n.name for n in chain] for chain in layernorm_chains(model.graph)]
             + [[n.name] for n in model.graph.node if n.op_type == "LayerNormalization"],
             "Softmax": [[n.name] for n in model.graph.node if n.op_type == "Softmax"]}
    return [(g, "engine.keep_fp32 %s" % g, units[g]) for g in keep_fp32]


def groups(model, ranges, candidates, keep_fp32):
    """[(group, reason, [unit, ...])], each unit a list of named nodes, no node in two units."""
    taken = set(c["node"] for c in candidates)
    out = [("beyond range", None, [[c["node"]] for c in candidates])]
    for name, reason, units in _seed_units(model, keep_fp32):
        units = [[n for n in u if n and n not in taken] for u in units]
        units = [u for u in units if u]
        taken.update(n for u in units for n in u)
        out.append((name, reason, units))
    near = [r for r in ranges if r["node"] and r["node"] not in taken
            and r["max_abs"] > FP16_MAX / NEAR]
    out.append(("near range", None, [[r["node"]] for r in near]))
    peak = dict((r["node"], r["max_abs"]) for r in ranges)
    risk = lambda unit: max(peak.get(n, 0.0) for n in unit)  # noqa: E731
    # smallest values first: the drop step tries the first half of a group first
    return [(g, why, sorted(units, key=risk)) for g, why, units in out if units]


class Search(object):
    """Previews island sets on the switchboard within the budget and remembers them."""

    def __init__(self, board, cases, labels, goal, budget, reserve):
        self.board, self.cases, self.labels, self.goal = board, cases, labels, goal
        self.budget, self.reserve = budget, reserve
        self.seen, self.runs, self.bound, self.best = {}, 0, 0, None

    def rows(self, islands):
        key = frozenset(islands)
        if key not in self.seen:
            started, before = self.budget.start("preview", self.reserve)
            rows = []
            for rec, tensor, golden_logits, golden_mask in self.cases:
                logits = self.board.run(key, {INPUT_NAME: tensor})
                rows.append(pp.row(rec, logits, golden_logits, golden_mask, self.labels))
            self.budget.measured("preview", started, before)
            self.seen[key], self.runs = rows, self.runs + 1
            self._progress(key, rows)
        return self.seen[key]

    def ok(self, islands):
        return meets(self.rows(islands), self.goal)

    def _progress(self, key, rows):
        w = pp.worst(rows)
        if meets(rows, self.goal) and (self.best is None or len(key) < len(self.best)):
            self.best = key
        each = self.budget.estimate("preview")
        fits = int(max(0, self.budget.left() - self.reserve) // each) if each else 0
        self.budget.say("preview %d of at most %d (%d islands: agreement %.4f%%, mIoU %.4f; goal "
                        "%.4f%%, %.4f); best set so far: %s; ETA %s" % (
                            self.runs, self.runs + min(self.bound, fits), len(key),
                            100 * w["mask_agreement"], w["miou"],
                            100 * self.goal["mask_agreement"], self.goal["miou"],
                            "%d islands" % len(self.best) if self.best is not None else "none",
                            _clock(min(self.bound, fits) * each)))


def _clock(seconds):
    from stages.host.precision_budget import clock
    return clock(seconds)


def _bound(queue):
    """At most this many drop previews are left: a full bisection tree per queued unit list."""
    return sum(2 * len(units) - 1 for units in queue)


def _drop(search, kept, queue, proven):
    """Step 3 (see the module): returns the kept set; `proven` gets each unit shown needed."""
    while queue:
        search.bound = _bound(queue)
        units = queue.pop(0)
        trial = kept - set(n for u in units for n in u)
        if search.ok(trial):
            kept = trial
        elif len(units) > 1:
            half = len(units) // 2
            queue[:0] = [units[:half], units[half:]]
        else:
            proven.update(units[0])
    return kept


def choose(search, all_groups):
    """{"verdict": islands|cannot|budget, "islands": set or None, "proven": nodes shown needed,
    "why": the budget's words when it ended the search}."""
    everything = set(n for _, _, units in all_groups for u in units for n in u)
    queue = [units for _, _, units in all_groups]
    proven, result = set(), {"proven": set(), "why": None}
    try:
        search.bound = (1 + _bound(queue)) if everything else 0  # left after this preview
        if search.ok(set()):
            return dict(result, verdict="islands", islands=set())
        search.bound = _bound(queue)
        if not everything or not search.ok(everything):
            return dict(result, verdict="cannot", islands=None)
        kept = _drop(search, set(everything), queue, proven)
        return dict(result, verdict="islands", islands=kept, proven=proven)
    except BudgetSpent as spent:
        return dict(result, verdict="budget", islands=search.best, proven=proven, why=spent.why)
