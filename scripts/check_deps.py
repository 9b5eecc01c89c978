#!/usr/bin/env python3
"""Dependency audit: every file from outside the repository that the build and the tests
use must come from an install step that scripts/install-deps.sh performs.

What counts as used (all read from the build folder, nothing guessed):
  - headers: `ninja -t deps` (the compiler's own depfiles), or a recorded copy (--deps-record);
  - configure: every CMake file the configure step read (build.ninja's RERUN_CMAKE inputs),
    and every FILEPATH in CMakeCache.txt (compilers, tools and libraries it found);
  - linking and running: the libraries on every link line, and `ldd` of every program;
  - tests: each ctest command and the programs in its environment, the commands in the
    repository's shell scripts, and the Python modules its Python code imports.

Each file is then accounted for by one step:
  - the repository or the build folder: ours;
  - the pip: lines of scripts/packages.txt (the torch wheel and what it requires): pip;
  - the CUDA toolkit under /usr/local/cuda, and a launcher script that execs into it (a
    /usr/local/bin/nvcc): its own install step (NVIDIA's), optional;
  - the Python interpreter install-deps chose (python3, $STRATA_PYTHON or .venv);
  - else the Debian package that owns it (dpkg-query -S), which must be listed in
    packages.txt or pulled in (Depends/Pre-Depends, recursively) by one that is, or be part
    of Debian's base system (Essential or Priority required).
Anything else fails the check, naming the file, what used it and its package.
"""
import argparse
import ast
import collections
import json
import os
import re
import shlex
import shutil
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
USR_MERGED = ("bin", "sbin", "lib", "lib64", "lib32", "libx32")


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


# ---------------------------------------------------------------- the package list
def read_package_list(path):
    debs, pips = {}, {}
    for line in open(path):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, _, why = line.partition(" ")
        if name.startswith("pip:"):
            pips[re.split(r"[=<>!~ ]", name[4:], 1)[0].lower()] = name[4:]
        else:
            debs[name] = why.strip()
    return debs, pips


# ---------------------------------------------------------------- Debian's view
def strip_dep(token):
    """'libfoo:any (>= 1.2)' -> 'libfoo'."""
    return token.strip().split(" ", 1)[0].split(":", 1)[0]


def installed_packages():
    fields = ["Package", "db:Status-Abbrev", "Essential", "Priority", "Provides", "Pre-Depends", "Depends"]
    fmt = "\t".join("${%s}" % f for f in fields) + "\n"
    out = run(["dpkg-query", "-W", "-f", fmt]).stdout
    pkgs, providers = {}, collections.defaultdict(set)
    for line in out.splitlines():
        name, status, essential, priority, provides, pre, dep = (line.split("\t") + [""] * 7)[:7]
        if not status.startswith("ii"):
            continue
        groups = [[strip_dep(a) for a in g.split("|")] for g in (pre + "," + dep).split(",") if g.strip()]
        pkgs[name] = {"base": essential == "yes" or priority == "required", "deps": groups}
        for p in provides.split(","):
            if p.strip():
                providers[strip_dep(p)].add(name)
    return pkgs, providers


def allowed_closure(roots, pkgs, providers):
    """Packages the roots pull in. In an alternative group 'a | b' the first alternative
    that is installed counts (apt takes the first one that it can on a new machine)."""
    seen, todo = {}, [(r, None) for r in roots]
    while todo:
        name, parent = todo.pop()
        if name in seen or name not in pkgs:
            continue
        seen[name] = parent
        for group in pkgs[name]["deps"]:
            for alt in group:
                hits = [alt] if alt in pkgs else sorted(providers.get(alt, ()))
                if hits:
                    todo.extend((h, name) for h in hits)
                    break
    return seen


def dpkg_owners(paths):
    """{path: [packages]} for the paths dpkg's database knows (one dpkg-query call)."""
    owners = {}
    paths = [p for p in paths if not re.search(r"[*?\[\]\\]", p)]
    for i in range(0, len(paths), 2000):
        out = run(["dpkg-query", "-S", "--"] + paths[i:i + 2000]).stdout
        for line in out.splitlines():
            pkgs, sep, path = line.partition(": ")
            if sep and path in paths:
                owners[path] = [strip_dep(p) for p in pkgs.split(",")]
    return owners


def owner_candidates(path):
    """Names under which dpkg may have registered a file: itself, its /usr-merged twin,
    then each step of its symlink chain (update-alternatives links, .so links)."""
    seen, cur = [], path
    for _ in range(12):
        for p in (cur, usr_twin(cur)):
            if p and p not in seen:
                seen.append(p)
        if not os.path.islink(cur):
            break
        cur = os.path.normpath(os.path.join(os.path.dirname(cur), os.readlink(cur)))
    real = os.path.realpath(path)
    for p in (real, usr_twin(real)):
        if p and p not in seen:
            seen.append(p)
    return seen


def launcher_target(path):
    """The program a small '#!' script execs, as in a /usr/local/bin/nvcc that runs
    'exec /usr/local/cuda-13.0/bin/nvcc "$@"'; None for anything else."""
    try:
        if os.path.getsize(path) > 4096:
            return None
        with open(path, "rb") as f:
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return None
    m = re.search(r'^\s*exec\s+"?(/[^\s"]+)"?', text, re.M) if text.startswith("#!") else None
    return m.group(1) if m else None


def usr_twin(path):
    parts = path.split("/")
    if len(parts) > 2 and parts[1] == "usr" and parts[2] in USR_MERGED:
        return "/" + "/".join(parts[2:])
    if len(parts) > 1 and parts[1] in USR_MERGED:
        return "/usr" + path
    return None


# ---------------------------------------------------------------- what the build used
def ninja_deps(build, record):
    text = open(record).read() if record else run(["ninja", "-C", build, "-t", "deps"]).stdout
    used, target = {}, None
    for line in text.splitlines():
        if not line.strip():
            continue
        if not line[0].isspace():
            target = line.split(":", 1)[0]
            continue
        path = line.strip()
        if not os.path.isabs(path):
            path = os.path.normpath(os.path.join(build, path))
        used.setdefault(path, f"header of {target}")
    return used


def ninja_paths(value):
    """Splits a build.ninja value on unescaped spaces ('$ ' is a space in a path)."""
    return [p.replace("\0", " ") for p in value.replace("$ ", "\0").replace("$:", ":").split()]


def configure_inputs(build):
    used, lines = {}, open(os.path.join(build, "build.ninja")).read().replace("$\n", "").splitlines()
    for line in lines:
        if line.startswith("build build.ninja") and "RERUN_CMAKE" in line:
            for p in ninja_paths(line.split("|", 1)[1]):
                used.setdefault(os.path.normpath(p), "read by the configure step")
        m = re.match(r"\s+LINK_LIBRARIES = (.*)", line)
        if m:
            for tok in ninja_paths(m.group(1)):
                if tok.startswith("-l"):
                    tok = run(["c++", f"-print-file-name=lib{tok[2:]}.so"]).stdout.strip()
                if os.path.isabs(tok) and os.path.isfile(tok):
                    used.setdefault(tok, "linked")
    for line in open(os.path.join(build, "CMakeCache.txt")):
        m = re.match(r"([^:#/]+):FILEPATH=(/.*)", line.strip())
        if m and os.path.isfile(m.group(2)):
            used.setdefault(m.group(2), f"found by configure ({m.group(1)})")
    return used


def runtime_libraries(build):
    used, bindir = {}, os.path.join(build, "bin")
    for name in sorted(os.listdir(bindir)) if os.path.isdir(bindir) else []:
        exe = os.path.join(bindir, name)
        if not (os.path.isfile(exe) and os.access(exe, os.X_OK)):
            continue
        for line in run(["ldd", exe]).stdout.splitlines():
            m = re.search(r"=> (/\S+)", line) or re.match(r"\s*(/\S+)", line)
            if m:
                used.setdefault(os.path.normpath(m.group(1)), f"loaded by bin/{name}")
    return used


# ---------------------------------------------------------------- what the tests call
SHELL_WRAPPERS = {"exec", "command", "time", "nohup", "setsid", "sudo", "env", "timeout", "xargs", "stdbuf",
                  "nice", "then", "do", "else", "elif", "if", "while", "until", "!", "{", "}"}


def tracked_files(*patterns):
    return run(["git", "-C", REPO, "ls-files", "--", *patterns]).stdout.split()


def split_heredocs(text):
    """Returns (shell text without heredoc bodies, [(opening line, body)])."""
    shell, docs, lines, i = [], [], text.splitlines(), 0
    while i < len(lines):
        line = lines[i]
        shell.append(line)
        m = re.search(r"<<-?\s*['\"]?(\w+)['\"]?", line)
        i += 1
        if m and not line.lstrip().startswith("#"):
            opener = line
            while line.endswith("\\") and i < len(lines):  # the command goes on; the body follows it
                line = lines[i]
                shell.append(line)
                i += 1
            body = []
            while i < len(lines) and lines[i].strip() != m.group(1):
                body.append(lines[i])
                i += 1
            docs.append((opener, "\n".join(body)))
            i += 1
    return "\n".join(shell), docs


def command_words(shell):
    """The words in command position of a shell text (first word of each simple command,
    after assignments and wrappers such as timeout or env)."""
    words = set()
    text = re.sub(r"(^|\s)#.*", "", shell, flags=re.M)
    for seg in re.split(r"\$\(|`|&&|\|\||[;|&()\n]", text):
        try:
            toks = shlex.split(seg)
        except ValueError:
            toks = seg.split()
        while toks and (toks[0] in SHELL_WRAPPERS or re.match(r"^\w+=", toks[0]) or toks[0].startswith("-")
                        or re.match(r"^[0-9.]+[smhd]?$", toks[0])):
            toks.pop(0)
        if toks and re.match(r"^[A-Za-z0-9_.+-]+$", toks[0]):
            words.add(toks[0])
    return words


def shell_functions(text):
    return set(re.findall(r"^\s*(?:function\s+)?([A-Za-z_][\w-]*)\s*\(\)", text, re.M))


def test_tools(build):
    """{path: why} for the programs the tests run, and {name: script} for command words
    that name no program on this machine."""
    used, missing = {}, {}
    out = run(["ctest", "--test-dir", build, "--show-only=json-v1"]).stdout
    for test in json.loads(out or "{}").get("tests", []):
        cmd = test.get("command") or []
        env = next((p["value"] for p in test.get("properties", []) if p["name"] == "ENVIRONMENT"), [])
        for tok in cmd[:1] + [w for e in env for w in e.partition("=")[2].split()]:
            if os.path.isabs(tok) and os.path.isfile(tok) and os.access(tok, os.X_OK):
                used.setdefault(tok, f"run by ctest ({test['name']})")
    scripts = tracked_files("*.sh", "*.sbatch")
    texts = {s: open(os.path.join(REPO, s)).read() for s in scripts}
    ours = set().union(*(shell_functions(t) for t in texts.values())) if texts else set()
    builtins = set(run(["bash", "-c", "compgen -b -k"]).stdout.split())
    for script, text in texts.items():
        shell, _ = split_heredocs(text)
        for word in sorted(command_words(shell) - ours - builtins):
            path = shutil.which(word)
            if path is None:
                missing.setdefault(word, script)
            elif not path.startswith(REPO + "/"):
                used.setdefault(path, f"called by {script}")
    return used, missing


def python_sources():
    """(where, code) for every Python file and every Python heredoc or -c string in a script."""
    out = [(f, open(os.path.join(REPO, f)).read()) for f in tracked_files("*.py")]
    for script in tracked_files("*.sh", "*.sbatch"):
        text = open(os.path.join(REPO, script)).read()
        for opener, body in split_heredocs(text)[1]:
            if re.search(r"python|\$PY\b|\$py\b", opener):
                out.append((script, body))
        for code in re.findall(r"python3?\S*\s+-c\s+'([^']*)'", text):
            out.append((script, code))
    return out


def python_imports():
    mods = {}
    for where, code in python_sources():
        try:
            tree = ast.parse(code)
        except SyntaxError as e:
            raise SystemExit(f"check-deps: cannot parse the Python in {where}: {e}")
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else []
            for n in names:
                mods.setdefault(n.split(".")[0], where)
    return mods


# ---------------------------------------------------------------- pip's view
def pip_closure(pips):
    """({listed distribution: None} for pip: lines not installed, {top-level path: distribution})
    for the pip: lines and everything they require. A requirement that is not installed was
    left out by its environment marker (python_version, platform), so it is skipped."""
    import importlib.metadata as md
    seen, todo, roots = {}, list(pips), {}
    while todo:
        name = todo.pop().lower().replace("_", "-")
        if name in seen:
            continue
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            if name in pips:
                seen[name] = None
            continue
        seen[name] = dist
        for req in dist.requires or []:
            if "extra ==" not in req:
                todo.append(re.split(r"[ ;<>=!~\[(]", req, 1)[0])
    for name, dist in seen.items():
        if dist is None:
            continue
        base = str(dist.locate_file(""))
        for f in dist.files or []:
            top = f.parts[0]
            if not top.endswith((".dist-info", ".data")) and top != "..":
                roots.setdefault(os.path.realpath(os.path.join(base, top)), name)
    return {k: v for k, v in seen.items() if v is None}, roots


def module_origin(mod):
    import importlib.util
    try:
        spec = importlib.util.find_spec(mod)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    return spec.origin if spec.origin not in (None, "built-in", "frozen") else \
        (list(spec.submodule_search_locations or [None])[0] or "built-in")


# ---------------------------------------------------------------- the audit
class Audit:
    def __init__(self, args):
        self.args = args
        self.build = os.path.abspath(args.build)
        self.debs, self.pips = read_package_list(args.packages)
        self.pkgs, self.providers = installed_packages()
        self.problems, self.counts = [], collections.Counter()
        self.outside = collections.defaultdict(list)  # owner -> [(path, why)] outside the list
        self.packages_used = collections.defaultdict(int)
        self.missing_pips, self.pip_roots = pip_closure(self.pips)
        self.cuda_roots = sorted({os.path.realpath(p) for p in ["/usr/local/cuda"] + [
            os.environ.get(v, "") for v in ("CUDA_HOME", "CUDA_PATH", "CUDAToolkit_ROOT")] if p and os.path.exists(p)})
        self.python_roots = sorted({os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)
                                    if os.path.realpath(p) not in ("/usr", "/")})
        # Debian's own python3 is checked as a Debian package like any other file.
        exe = os.path.realpath(sys.executable)
        self.python_exes = set() if exe.startswith("/usr/") else {exe}

    def allowed(self):
        roots = [p for p in self.debs if p in self.pkgs] + [p for p, v in self.pkgs.items() if v["base"]]
        for p in self.debs:
            if p not in self.pkgs:
                self.problems.append(f"{p} is listed in {self.rel(self.args.packages)} but not installed: "
                                     "run scripts/install-deps.sh")
        return allowed_closure(roots, self.pkgs, self.providers)

    def rel(self, path):
        return os.path.relpath(path, REPO) if path.startswith(REPO + "/") else path

    def under(self, path, roots):
        if path is None:
            return None
        real = os.path.realpath(path)
        return next((r for r in roots if real == r or real.startswith(r.rstrip("/") + "/")), None)

    def classify(self, used):
        """Sorts the used files into steps; returns {path: why} for those left to dpkg. A link
        from inside the repository (build/fmt-shim, .venv/bin/python3) counts as its target."""
        left = {}
        for path, why in used.items():
            real = os.path.realpath(path)
            if self.inside(path, REPO, self.build):
                path = real
            dist = next((d for r, d in self.pip_roots.items() if real == r or real.startswith(r + "/")), None)
            if dist:
                self.counts["pip"] += 1
            elif self.under(path, self.cuda_roots) or self.under(launcher_target(path), self.cuda_roots):
                self.counts["cuda"] += 1
            elif self.is_python(path):
                self.counts["python"] += 1
            elif self.inside(real, REPO, self.build):
                self.counts["repo"] += 1
            else:
                left[path] = why
        return left

    @staticmethod
    def inside(path, *folders):
        return any(path == f or path.startswith(f + "/") for f in folders)

    def is_python(self, path):
        """The interpreter install-deps uses, under any name that runs it (a pyenv shim, a
        venv link), and the files of its prefix when that is not the system's /usr."""
        if os.path.realpath(path) in self.python_exes or self.under(path, self.python_roots):
            return True
        if os.path.basename(path).startswith("python") and os.access(path, os.X_OK):
            r = run([path, "-c", "import sys; print(sys.executable)"])
            return r.returncode == 0 and os.path.realpath(r.stdout.strip()) in self.python_exes
        return False

    def check_debian(self, left, allowed):
        cands = {p: owner_candidates(p) for p in left}
        owners = dpkg_owners(sorted({c for cs in cands.values() for c in cs}))
        for path, why in sorted(left.items()):
            owner = next((owners[c] for c in cands[path] if c in owners), None)
            if owner is None:
                self.problems.append(f"{path} ({why}) belongs to no Debian package, and to no install "
                                     "step of install-deps (torch wheel, CUDA toolkit, Python)")
                continue
            ok = [o for o in owner if o in allowed]
            if ok:
                self.counts["debian"] += 1
                self.packages_used[ok[0]] += 1
            else:
                self.outside[", ".join(owner)].append((path, why))

    def check_python(self, allowed):
        # The repository's own modules (benchmarks/pytorch_reference.py, imported by tests
        # that put its folder on sys.path) are ours, like its other files.
        ours = {os.path.splitext(os.path.basename(f))[0] for f in tracked_files("*.py")}
        for mod, where in sorted(python_imports().items()):
            if mod in sys.stdlib_module_names or mod in sys.builtin_module_names:
                self.counts["python stdlib"] += 1
                continue
            if mod in ours:
                self.counts["repo"] += 1
                continue
            origin = module_origin(mod)
            if origin is None:
                self.problems.append(f"Python module '{mod}' (imported by {where}) is not installed for "
                                     f"{sys.executable}, and no pip: line of packages.txt provides it")
                continue
            if origin == "built-in":
                continue
            left = self.classify({origin: f"Python module '{mod}' imported by {where}"})
            self.check_debian(left, allowed)

    def run(self):
        allowed = self.allowed()
        for name, _ in self.missing_pips.items():
            self.problems.append(f"pip package {name} (from {self.rel(self.args.packages)}) is not installed "
                                 f"for {sys.executable}: run scripts/install-deps.sh")
        used = {}
        for part in (ninja_deps(self.build, self.args.deps_record), configure_inputs(self.build),
                     runtime_libraries(self.build)):
            for k, v in part.items():
                used.setdefault(k, v)
        tools, missing_tools = test_tools(self.build)
        for k, v in tools.items():
            used.setdefault(k, v)
        self.check_debian(self.classify(used), allowed)
        self.check_python(allowed)
        self.describe_outside()
        return missing_tools

    def describe_outside(self):
        """One problem per package outside the list: the files used, headers first."""
        kinds = ("header", "linked", "loaded", "found", "read", "run", "called", "Python")
        rank = lambda item: (next((i for i, k in enumerate(kinds) if item[1].startswith(k)), len(kinds)), item[0])
        show = None if self.args.verbose else 6
        for owner, files in sorted(self.outside.items()):
            files.sort(key=rank)
            lines = [f"    {p} ({why})" for p, why in files[:show]]
            if show and len(files) > show:
                lines.append(f"    and {len(files) - show} more (--verbose lists them)")
            self.problems.append(f"{owner}, which {self.rel(self.args.packages)} neither lists nor pulls in, owns "
                                 f"{len(files)} file(s) used:\n" + "\n".join(lines))

    def report(self, missing_tools):
        c = self.counts
        print(f"check-deps: {sum(c.values())} files and modules used by the build and the tests")
        print(f"  {c['debian']} from {len(self.packages_used)} Debian packages listed in "
              f"{self.rel(self.args.packages)} or pulled in by them")
        pipsum = sum(v for k, v in c.items() if k.startswith("pip"))
        print(f"  {pipsum} from pip ({', '.join(self.pips.values())} and its requirements): "
              "install-deps' pip step")
        print(f"  {c['cuda']} from the CUDA toolkit ({', '.join(self.cuda_roots) or 'none found'}): NVIDIA's "
              "installer, not install-deps; without it the build is CPU-only")
        print(f"  {c['python']} from the Python that install-deps uses ({sys.executable}), "
              f"{c['python stdlib']} stdlib modules, {c['repo']} from the repository and build/")
        if missing_tools and self.args.verbose:
            print("  command words in scripts that name no program here (functions, variables or "
                  "tools of other machines): " + ", ".join(f"{w} ({s})" for w, s in sorted(missing_tools.items())))
        if self.args.verbose:
            print("  files per Debian package: " + ", ".join(f"{p} {n}" for p, n in sorted(self.packages_used.items())))
        unused = sorted(set(self.debs) - set(self.packages_used))
        if unused and self.args.verbose:
            print("  listed packages no traced file came from directly: " + ", ".join(unused))
        for p in self.problems:
            print(f"check-deps: FAIL: {p}")
        print("check-deps: " + ("ok" if not self.problems else f"{len(self.problems)} problem(s)"))
        return 1 if self.problems else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=os.path.join(REPO, "build"), help="the configured, built build folder")
    ap.add_argument("--packages", default=os.path.join(REPO, "scripts", "packages.txt"))
    ap.add_argument("--deps-record", help="a file in `ninja -t deps` format to use instead of the build's")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    if not os.path.isfile(os.path.join(args.build, "build.ninja")):
        raise SystemExit(f"check-deps: {args.build} is not a configured Ninja build folder (run scripts/test.sh)")
    if not shutil.which("dpkg-query"):
        raise SystemExit("check-deps: dpkg-query not found: this check maps files to Debian packages")
    audit = Audit(args)
    sys.exit(audit.report(audit.run()))


if __name__ == "__main__":
    main()
