"""The precision link's budget: the /proc readings and their fallbacks, the clock, afford's time
and memory branches, what a measured step records. On controlled inputs (a fake /proc file, a
fake clock, fixed memory figures), never the live process's numbers."""
import io

import pytest

from stages.host import precision_budget as pb


def _proc(monkeypatch, tmp_path, texts):
    """The module's open() reads tmp files for the /proc paths in `texts` (None: no such file)."""
    real = open

    def fake(path, mode="r"):
        if path not in texts:
            return real(path, mode)
        if texts[path] is None:
            raise OSError("no " + path)
        local = tmp_path / path.replace("/", "_")
        if "w" not in mode:
            local.write_text(texts[path])
        return real(str(local), mode)
    monkeypatch.setattr(pb, "open", fake, raising=False)


PAGE = pb.os.sysconf("SC_PAGE_SIZE")


@pytest.mark.parametrize("statm,mb", [
    ("5000 2500 300 1 0 900 0\n", 2500 * PAGE / 1e6),  # the second field: resident pages
    (None, 0.0), ("5000\n", 0.0), ("5000 many\n", 0.0), ("", 0.0)])
def test_rss_mb_reads_the_resident_pages_or_gives_0(monkeypatch, tmp_path, statm, mb):
    _proc(monkeypatch, tmp_path, {"/proc/self/statm": statm})
    assert pb.rss_mb() == mb


STATUS = "Name:\tpython\nVmPeak:\t  900000 kB\nVmHWM:\t  250000 kB\nVmRSS:\t  120000 kB\n"


@pytest.mark.parametrize("status,mb", [
    (STATUS, 250000 / 1e3 * 1.024),  # kB (KiB) to MB
    (STATUS.replace("VmHWM", "VmXXX"), 2500 * PAGE / 1e6),  # no peak line: the resident now
    (STATUS.replace("250000", "lots"), 2500 * PAGE / 1e6),
    (None, 2500 * PAGE / 1e6)])
def test_peak_mb_reads_vmhwm_or_falls_back_to_the_resident_memory(monkeypatch, tmp_path, status,
                                                                  mb):
    _proc(monkeypatch, tmp_path, {"/proc/self/status": status,
                                  "/proc/self/statm": "5000 2500 300\n"})
    assert pb.peak_mb() == pytest.approx(mb, rel=1e-12)


def test_reset_peak_writes_5_to_clear_refs_and_a_refusal_is_quiet(monkeypatch, tmp_path):
    _proc(monkeypatch, tmp_path, {"/proc/self/clear_refs": ""})
    pb.reset_peak()
    assert (tmp_path / "_proc_self_clear_refs").read_text() == "5"
    _proc(monkeypatch, tmp_path, {"/proc/self/clear_refs": None})
    pb.reset_peak()  # no /proc, or not allowed: no error


@pytest.mark.parametrize("seconds,text", [(0, "0:00"), (59.4, "0:59"), (59.6, "1:00"),
                                          (125, "2:05"), (-3, "0:00"), (3600, "60:00"),
                                          (0.5, "0:00"), (1.5, "0:02")])
def test_clock_rounds_to_whole_seconds_never_below_0(seconds, text):
    assert pb.clock(seconds) == text


class Clock(object):
    def __init__(self, now=1000.0):
        self.now = now

    def time(self):
        return self.now


def _budget(monkeypatch, minutes=1.0, mb=1000, rss=100.0, peak=100.0):
    clock, memory = Clock(), {"rss": rss, "peak": peak}
    monkeypatch.setattr(pb, "time", clock)
    monkeypatch.setattr(pb, "rss_mb", lambda: memory["rss"])
    monkeypatch.setattr(pb, "peak_mb", lambda: memory["peak"])
    monkeypatch.setattr(pb, "reset_peak", lambda: memory.update(reset=True))
    return pb.Budget(minutes, mb, out=io.StringIO()), clock, memory


def test_afford_fits_a_step_exactly_into_the_time_left_less_the_reserve(monkeypatch):
    budget, clock, _ = _budget(monkeypatch, minutes=1.0)
    budget.cost["preview"] = (20.0, 0.0)
    clock.now += 30  # 30 s left: 20 s and a 10 s reserve fit exactly
    assert budget.elapsed() == 30 and budget.left() == 30
    budget.afford("preview", 10.0)
    with pytest.raises(pb.BudgetSpent) as e:
        budget.afford("preview", 10.5)
    assert e.value.why == ("the next preview (about 0:20) does not fit in the 0:20 left of "
                           "precision.budget_minutes 1") and str(e.value) == e.value.why
    budget.afford("scan", 30.0)  # never measured: no time of its own
    budget.cost["preview"] = (30.0, 0.0)
    budget.afford("preview")  # no reserve unless asked: 30 s fit the 30 s left
    with pytest.raises(pb.BudgetSpent, match="the next scan .about 0:00. does not fit in the "
                                             "0:00 left"):
        budget.afford("scan", 31.0)


def test_afford_fits_a_steps_memory_exactly_under_the_budget(monkeypatch):
    budget, _, memory = _budget(monkeypatch, mb=1000, rss=700.0)
    budget.cost["preview"] = (0.0, 300.0)
    budget.afford("preview")  # 700 + 300 = 1000: fits
    memory["rss"] = 700.5
    with pytest.raises(pb.BudgetSpent) as e:
        budget.afford("preview")
    assert e.value.why == ("the next preview would take the memory to about 1000 MB, beyond "
                           "precision.budget_mb 1000")
    memory["rss"] = 1000.0
    budget.afford("scan")  # never measured: adds nothing, so it fits at the budget itself


def test_a_measured_step_records_its_time_and_the_peak_it_added(monkeypatch):
    budget, clock, memory = _budget(monkeypatch, mb=1000, rss=100.0, peak=100.0)
    started, before = budget.start("preview", 5.0)
    assert (started, before, memory.get("reset")) == (1000.0, 100.0, True)
    clock.now, memory["peak"], memory["rss"] = 1012.5, 350.0, 150.0
    budget.measured("preview", started, before)
    assert budget.cost["preview"] == (12.5, 250.0) and budget.estimate("preview") == 12.5
    assert budget.estimate("scan") == 0.0
    memory["peak"] = 50.0  # a peak below the start (the counter was reset): adds nothing
    budget.measured("scan", started, before)
    assert budget.cost["scan"] == (12.5, 0.0)
    memory["rss"] = 1000.0  # at the budget: still fits
    budget.measured("scan", started, before)
    memory["rss"] = 1000.5
    with pytest.raises(pb.BudgetSpent, match="the scan took the memory to 1000 MB, beyond "
                                             "precision.budget_mb 1000"):
        budget.measured("scan", started, before)


def test_start_asks_afford_first_and_resets_the_peak_only_then(monkeypatch):
    budget, clock, memory = _budget(monkeypatch, minutes=0.5)
    budget.cost["preview"] = (31.0, 0.0)
    with pytest.raises(pb.BudgetSpent):
        budget.start("preview")
    assert "reset" not in memory


def test_progress_lines_carry_the_clock_and_the_resident_memory(monkeypatch):
    budget, clock, memory = _budget(monkeypatch, minutes=2.5, mb=512, rss=123.7)
    assert (budget.seconds, budget.mb) == (150.0, 512.0)
    clock.now += 75.4
    budget.say("step 1/4")
    assert budget.out.getvalue() == "precision: [1:15, 123 MB] step 1/4\n"


def test_progress_goes_to_stdout_unless_told(monkeypatch, capsys):
    monkeypatch.setattr(pb, "rss_mb", lambda: 64.0)
    pb.Budget(1, 100).say("hello")
    assert capsys.readouterr().out.endswith("MB] hello\n")

