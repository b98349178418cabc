"""Which islands the mixed model keeps in fp32: chosen from the range scan, confirmed by the masks.

1. Candidates: the nodes whose values leave the fp16 range on the golden inputs (precision_scan).
2. Add: while the emulated mixed model misses the mask goal, the nodes that come closest to the
   fp16 range are added, 1, 2, 4, ... at a time, until it meets it.
3. Drop: bisection over the islands in graph order. A group is dropped when the masks still meet
   the goal without it; a group that is needed is split in halves until single nodes remain.
The goal is judged on the golden masks only (agreement and mIoU, no NaN/Inf), never on a logits
tolerance: the fp16 mask limits of verify.fp16, tightened by precision.margin."""
from stages.host import precision_preview as pp


class Search(object):
    """Runs previews for island sets and remembers them (the bisection asks some twice)."""

    def __init__(self, model, cases, labels, goal):
        self.model, self.cases, self.labels, self.goal = model, cases, labels, goal
        self.seen, self.runs = {}, 0

    def rows(self, islands):
        key = frozenset(islands)
        if key not in self.seen:
            self.seen[key] = pp.preview(self.model, key, self.cases, self.labels)[1]
            self.runs += 1
        return self.seen[key]

    def ok(self, islands):
        w = pp.worst(self.rows(islands))
        return (w["nan"] == 0 and w["inf"] == 0 and w["miou"] >= self.goal["miou"]
                and w["mask_agreement"] >= self.goal["mask_agreement"])

    def needed(self, fixed, group):
        """The part of `group` (a list in graph order) the goal needs, given `fixed` is kept."""
        if not group or self.ok(set(fixed)):
            return []
        if len(group) == 1:
            return list(group)
        half = len(group) // 2
        first, second = group[:half], group[half:]
        need_first = self.needed(list(fixed) + second, first)
        return need_first + self.needed(list(fixed) + need_first, second)


def mask_goal(limits, margin):
    """verify.fp16's mask limits with the disagreement divided by the margin."""
    return {"mask_agreement": 1 - (1 - limits["mask_agreement"]) / margin,
            "miou": 1 - (1 - limits["miou"]) / margin}


def _grow(search, base, ranked):
    """Add the ranked nodes 1, 2, 4... at a time until the goal is met; None if it never is."""
    count = 1
    while True:
        added = ranked[:count]
        if search.ok(set(base) | set(added)):
            return added
        if count >= len(ranked):
            return None
        count = min(2 * count, len(ranked))


def choose(search, ranges, candidates):
    """The islands, as node names in graph order; None when no island set meets the goal."""
    order = dict((r["node"], i) for i, r in enumerate(ranges))
    base = [c["node"] for c in candidates]
    added = []
    if not search.ok(base):
        rest = [r for r in ranges if r["node"] and r["node"] not in set(base)]  # named only
        pool = sorted(rest, key=lambda r: -r["max_abs"])
        grown = _grow(search, base, [r["node"] for r in pool])
        if grown is None:
            return None
        added = sorted(grown, key=order.get)
    islands = sorted(base + added, key=order.get)
    return search.needed([], islands)
