"""Parse pybind11 bindings of TensorRT's python/src (one tag's tree) into
{PyClass: {member: {"loc": "path:line", "kind": ..., "warns": bool, "doc_deprecated":
str|None}}}."""
import json, os, re, sys

CLS = re.compile(r'py::(class_|enum_)<([^;{]*?)>\s*(\w+)?\s*[\({]\s*(\w+)\s*,\s*"(\w+)"', re.S)
MEM = re.compile(r'\.(def|def_property|def_property_readonly|def_readwrite|def_readonly|def_static'
                 r'|value)\s*\(\s*"(\w+)"')
MDEF = re.compile(r'\bm\.(def|attr)\s*\(\s*"(\w+)"')
DOCNS = re.compile(r'namespace\s+(\w+)\s*\{(.*?)\n\}\s*//\s*namespace', re.S)
DOCC = re.compile(r'constexpr\s+(?:const\s+)?char\s*(?:const\s*)?\*\s*(\w+)\s*=\s*'
                  r'R"trtdoc\((.*?)\)trtdoc"', re.S)

def load_docs(root):
    docs = {}
    d = os.path.join(root, "python", "docstrings")
    for dp, _, fs in os.walk(d):
        for f in fs:
            t = open(os.path.join(dp, f), encoding="utf-8", errors="replace").read()
            for ns in DOCNS.finditer(t):
                for c in DOCC.finditer(ns.group(2)):
                    docs[(ns.group(1), c.group(1))] = c.group(2)
    return docs

def parse(root):
    docs = load_docs(root)
    out = {}
    src = os.path.join(root, "python", "src")
    for dp, _, fs in os.walk(src):
        for f in sorted(fs):
            if not f.endswith(".cpp"):
                continue
            p = os.path.join(dp, f)
            rel = os.path.relpath(p, root)
            text = open(p, encoding="utf-8", errors="replace").read()
            text = re.sub(r'//[^\n]*', '', text)
            text = re.sub(r'/\*.*?\*/', lambda m: '\n' * m.group(0).count('\n'), text, flags=re.S)
            lineof = lambda pos: text.count('\n', 0, pos) + 1
            decls, var2name = [], {}
            for m in CLS.finditer(text):
                kind, tmpl, var, scope, name = m.groups()
                parent = None if scope == "m" else var2name.get(scope, scope)
                full = name if parent is None else parent + "." + name
                decls.append((m.start(), full, kind))
                if var:
                    var2name[var] = full
                out.setdefault(full, {})["__decl__"] = {"loc": "%s:%d" % (
                    rel, lineof(m.start())), "kind": "py::" + kind}
            decls.sort()
            mems = list(MEM.finditer(text))
            for i, m in enumerate(mems):
                pos = m.start()
                end = mems[i + 1].start() if i + 1 < len(mems) else len(text)
                seg = text[pos:end]
                seg = seg.split(";")[0]
                pre = text[max(0, pos - 80):pos]
                vm = re.search(r'(\w+)\s*$', pre)
                if vm and vm.group(1) in var2name:
                    owner = var2name[vm.group(1)]
                else:
                    cands = [d for d in decls if d[0] < pos]
                    if not cands:
                        continue
                    owner = cands[-1][1]
                warns = bool(re.search(r'utils::deprecate(Member)?\s*\(', seg))
                dd = None
                for ns, nm in re.findall(r'(\w+Doc)::(\w+)', seg):
                    txt = docs.get((ns, nm))
                    if txt and re.search(r'(?<!\()\[DEPRECATED\]|^\s*Deprecated:', txt):
                        dd = " ".join(txt.split())[:220]
                entry = {"loc": "%s:%d" % (rel, lineof(pos)), "kind": m.group(1)}
                if warns:
                    entry["warns"] = True
                if dd:
                    entry["doc_deprecated"] = dd
                out.setdefault(owner, {}).setdefault(m.group(2), entry)
            for m in re.finditer(r'\.export_values\(\)', text):
                cands = [d for d in decls if d[0] < m.start() and d[2] == "enum_"]
                if cands and "." in cands[-1][1]:
                    en = cands[-1][1]
                    parent = en.rsplit(".", 1)[0]
                    for k, v in list(out.get(en, {}).items()):
                        if k != "__decl__":
                            e = dict(v); e["kind"] = "export_values of " + en
                            out.setdefault(parent, {}).setdefault(k, e)
            for m in MDEF.finditer(text):
                out.setdefault("<module>", {}).setdefault(m.group(2), {"loc": "%s:%d" % (
                    rel, lineof(m.start())), "kind": "m." + m.group(1)})
    # __init__.py (python side)
    for cand in ("python/packaging/bindings_wheel/tensorrt/__init__.py",
                 "python/packaging/tensorrt/__init__.py"):
        p = os.path.join(root, cand)
        if os.path.exists(p):
            lines = open(p).read().split("\n")
            for i, l in enumerate(lines):
                mm = re.match(r'def (\w+)\(', l)
                if mm:
                    out.setdefault("<module>", {}).setdefault(mm.group(1), {"loc": "%s:%d" % (
                        cand, i + 1), "kind": "python def"})
                if l.startswith("__version__"):
                    out.setdefault("<module>", {}).setdefault("__version__", {"loc": "%s:%d" % (
                        cand, i + 1), "kind": "python", "value": l})
                if "np.bool" in l:
                    out.setdefault("<init>", {}).setdefault("np_bool_line", {"loc": "%s:%d" % (
                        cand, i + 1), "kind": "python", "value": l.strip()})
            out.setdefault("<init>", {})["__file__"] = {"loc": cand}
            break
    return out

if __name__ == "__main__":
    base = sys.argv[1]
    res = {t: parse(os.path.join(base, t)) for t in sorted(os.listdir(base))}
    json.dump(res, open(sys.argv[2], "w"), indent=0, sort_keys=True)
