"""The precision link's time and memory budget, and its progress lines.

precision.budget_minutes and precision.budget_mb bound the link. Before each costly step the link
asks `afford(what)`: the step must fit in the time left (judged by the same step's last duration)
and the memory it last added must fit under the budget on top of the resident memory now (read
from /proc/self/statm). When it does not, BudgetSpent is raised and the link ends with its
"budget spent" verdict. Progress lines name the step, the preview count, the best set and an ETA."""
import os
import sys
import time


class BudgetSpent(Exception):
    """The next step would leave the time or memory budget; `why` says which, in words."""

    def __init__(self, why):
        Exception.__init__(self, why)
        self.why = why


def rss_mb():
    """Resident memory of this process in MB (/proc/self/statm), or 0 where there is no /proc."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
    except (OSError, IndexError, ValueError):
        return 0.0
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


def peak_mb():
    """Peak resident memory of this process in MB (VmHWM), or the current one."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1e3 * 1.024
    except (OSError, ValueError):
        pass
    return rss_mb()


def reset_peak():
    """Start VmHWM afresh (Linux: "5" to /proc/self/clear_refs), so a step's own peak is seen."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def clock(seconds):
    seconds = max(0, int(round(seconds)))
    return "%d:%02d" % (seconds // 60, seconds % 60)


class Budget(object):
    """Time and memory limits of one link run; `step` measures and prints one costly step."""

    def __init__(self, minutes, mb, out=None):
        self.seconds, self.mb, self.t0 = 60.0 * minutes, float(mb), time.time()
        self.out = out or sys.stdout
        self.cost = {}  # step kind -> (seconds, MB added) the last time it ran

    def elapsed(self):
        return time.time() - self.t0

    def left(self):
        return self.seconds - self.elapsed()

    def afford(self, kind, reserve=0.0):
        """Raise BudgetSpent when a `kind` step (as long and as big as its last run) would not fit,
        keeping `reserve` seconds for what must follow (writing the mixed model)."""
        seconds, grew = self.cost.get(kind, (0.0, 0.0))
        if seconds + reserve > self.left():
            raise BudgetSpent("the next %s (about %s) does not fit in the %s left of "
                              "precision.budget_minutes %g" % (
                                  kind, clock(seconds), clock(max(0, self.left() - reserve)),
                                  self.seconds / 60))
        now = rss_mb()
        if now + grew > self.mb:
            raise BudgetSpent("the next %s would take the memory to about %d MB, beyond "
                              "precision.budget_mb %d" % (kind, now + grew, self.mb))

    def start(self, kind, reserve=0.0):
        """afford(kind), then (start time, resident MB) for measured()."""
        self.afford(kind, reserve)
        reset_peak()
        return time.time(), rss_mb()

    def measured(self, kind, started, rss_before):
        self.cost[kind] = (time.time() - started, max(0.0, peak_mb() - rss_before))
        if rss_mb() > self.mb:
            raise BudgetSpent("the %s took the memory to %d MB, beyond precision.budget_mb %d"
                              % (kind, rss_mb(), self.mb))

    def estimate(self, kind):
        return self.cost.get(kind, (0.0, 0.0))[0]

    def say(self, text):
        self.out.write("precision: [%s, %d MB] %s\n" % (clock(self.elapsed()), rss_mb(), text))
        self.out.flush()
