"""Security: nothing in src/ or flows/ loads a model or a file in a way that can execute code,
trust_remote_code stays off unless one model's conf entry asks for it, and no credential is
committed. (The secret-in-logs check runs with the S3 fault scenario in test_faults.py.)"""

from __future__ import annotations

import ast
import inspect
import pickle
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("src", "flows")


def _python_files() -> list[Path]:
    return sorted(p for folder in SCANNED for p in (REPO_ROOT / folder).rglob("*.py") if ".egg-info" not in str(p))


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _keyword(call: ast.Call, name: str) -> ast.AST | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _is_true(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def unsafe_calls(source: str, filename: str = "<src>") -> list[str]:
    """Loader calls that can run code from a file: torch.load without weights_only=True,
    pickle/dill/joblib/marshal loads, pandas.read_pickle, numpy loads with allow_pickle=True,
    yaml.load without a safe loader, yaml.unsafe_load/full_load, eval/exec, and
    trust_remote_code=True passed or defaulted."""
    found = []
    tree = ast.parse(source, filename)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = _dotted(node.func)
            where = f"{filename}:{node.lineno}: {name}"
            if name.endswith("torch.load"):
                if not _is_true(_keyword(node, "weights_only")):
                    found.append(f"{where} without weights_only=True")
            elif name in {"pickle.load", "pickle.loads", "cPickle.load", "cPickle.loads", "dill.load", "dill.loads",
                          "joblib.load", "marshal.load", "marshal.loads", "pd.read_pickle", "pandas.read_pickle",
                          "shelve.open"}:
                found.append(f"{where} (unpickles)")
            elif name in {"np.load", "numpy.load"} and _is_true(_keyword(node, "allow_pickle")):
                found.append(f"{where} with allow_pickle=True")
            elif name in {"yaml.unsafe_load", "yaml.full_load", "yaml.load_all", "yaml.unsafe_load_all"}:
                found.append(f"{where} (not safe_load)")
            elif name == "yaml.load":
                loader = _keyword(node, "Loader") or (node.args[1] if len(node.args) > 1 else None)
                if _dotted(loader) not in {"yaml.SafeLoader", "yaml.CSafeLoader", "SafeLoader", "CSafeLoader"}:
                    found.append(f"{where} without Loader=SafeLoader")
            elif name in {"eval", "exec"}:
                found.append(f"{where} (runs code from a string)")
            if _is_true(_keyword(node, "trust_remote_code")):
                found.append(f"{where} with trust_remote_code=True")
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = node.args.args + node.args.kwonlyargs
            defaults = [None] * (len(node.args.args) - len(node.args.defaults)) + list(node.args.defaults) \
                + list(node.args.kw_defaults)
            for arg, default in zip(args, defaults):
                if arg.arg == "trust_remote_code" and _is_true(default):
                    found.append(f"{filename}:{node.lineno}: {node.name}(trust_remote_code=True) by default")
    return found


def test_the_scanner_finds_what_it_looks_for():
    bad = """
import torch, pickle, yaml, numpy as np
torch.load("m.pt")
torch.load("m.pt", weights_only=False)
pickle.load(open("x", "rb"))
yaml.load(text)
yaml.load(text, Loader=yaml.Loader)
np.load("x.npy", allow_pickle=True)
model = AutoModel.from_pretrained("x", trust_remote_code=True)
def build(model, trust_remote_code=True): ...
eval("1+1")
"""
    good = """
import torch, yaml, numpy as np
torch.load("m.pt", map_location="cpu", weights_only=True)
yaml.safe_load(text)
yaml.load(text, Loader=yaml.SafeLoader)
np.load("x.npy")
model = AutoModel.from_pretrained("x", trust_remote_code=False)
def build(model, trust_remote_code=False): ...
net.eval()
"""
    assert len(unsafe_calls(bad)) == 9, unsafe_calls(bad)
    assert unsafe_calls(good) == []


def test_no_code_executing_loader_in_src_or_flows():
    found = [hit for path in _python_files() for hit in unsafe_calls(path.read_text(), str(path.relative_to(REPO_ROOT)))]
    assert found == [], "\n".join(found)


def test_the_brisque_scaling_pickle_cannot_run_code(tmp_path):
    from models.quality.brisque_scorer import BrisqueScorer, bundled_model_dir

    class Exploit:
        def __reduce__(self):
            return (shutil.rmtree, (str(tmp_path / "victim"),))

    (tmp_path / "victim").mkdir()
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    shutil.copy(bundled_model_dir() / "svm.txt", model_dir / "svm.txt")
    (model_dir / "normalize.pickle").write_bytes(pickle.dumps({"min_": [0.0], "max_": [1.0], "x": Exploit()}))
    with pytest.raises(pickle.UnpicklingError, match="refusing to load shutil.rmtree"):
        BrisqueScorer(model_dir=model_dir)
    assert (tmp_path / "victim").exists()
    assert BrisqueScorer().model_dir == bundled_model_dir()  # the shipped plain-data pickle still loads


def test_trust_remote_code_is_off_unless_one_model_entry_sets_it():
    from models.perception.vlm import VisionLanguageModel

    for cls in [VisionLanguageModel, *VisionLanguageModel.__subclasses__()]:
        parameter = inspect.signature(cls.__init__).parameters.get("trust_remote_code")
        assert parameter is None or parameter.default is False, cls
    hits = []
    for path in sorted((REPO_ROOT / "conf").rglob("*.yml")):
        text = path.read_text()
        if "trust_remote_code" in text:
            from pipelines.config_checks import check_parameters

            problems = check_parameters(yaml.safe_load(text) or {})
            hits += [f"{path}: {p}" for p in problems if "trust_remote_code" in p]
    assert hits == []


# Credentials: cloud keys, tokens, private keys, and literal secrets in the conf's credentials.
SECRET_PATTERNS = {
    "AWS access key id": re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),
    "AWS secret access key": re.compile(r"(?i)aws_secret_access_key\s*[:=]\s*['\"]?[A-Za-z0-9/+]{40}\b"),
    "private key": re.compile(r"-----BEGIN (RSA |EC |OPENSSH |DSA |ENCRYPTED )?PRIVATE KEY-----"),
    "GitHub token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36}\b"),
    "Hugging Face token": re.compile(r"\bhf_[A-Za-z0-9]{34}\b"),
    "Slack token": re.compile(r"\bxox[baprs]-[A-Za-z0-9-]{10,}"),
}


def _repo_files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO_ROOT, capture_output=True,
                            text=True, check=True).stdout.split("\n")
    return [REPO_ROOT / p for p in listed if p and (REPO_ROOT / p).is_file()]


def test_no_credentials_in_the_repository():
    files = _repo_files()
    assert len(files) > 50
    hits = []
    for path in files:
        if path.stat().st_size > 2 << 20:
            continue
        text = path.read_bytes().decode("utf-8", errors="ignore")
        hits += [f"{path.relative_to(REPO_ROOT)}: {kind}" for kind, pattern in SECRET_PATTERNS.items()
                 if pattern.search(text) and path.name != "test_security.py"]
    # conf credentials are read from the environment, never written in
    for path in sorted((REPO_ROOT / "conf").rglob("credentials*.yml")):
        if path.parent.name == "local" and path.name == "credentials.yml":
            continue  # git-ignored, the user's own
        for key, value in _leaves(yaml.safe_load(path.read_text()) or {}):
            if key.rsplit(".", 1)[-1] in {"key", "secret", "token", "password", "aws_secret_access_key"} \
                    and value not in (None, "") and not str(value).startswith("${oc.env:"):
                hits.append(f"{path.relative_to(REPO_ROOT)}: {key} is a literal value")
    assert hits == [], hits
    ignored = subprocess.run(["git", "check-ignore", "-q", "conf/local/credentials.yml"], cwd=REPO_ROOT)
    assert ignored.returncode == 0, "conf/local/credentials.yml must be git-ignored"


def _leaves(value, prefix: str = ""):
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, value


# Known advisories that are justified (package -> advisory ids), each explained in docs/reliability.md's
# "Reliability and security" section. Empty: none so far.
JUSTIFIED_ADVISORIES: dict[str, set[str]] = {}


@pytest.mark.slow
def test_dependency_audit_of_the_lock_file(tmp_path):
    """pip-audit over requirements.lock (pinned, no resolution). Skipped when pip-audit is not in
    the environment or no vulnerability service answers (every package comes back unaudited)."""
    import json
    import sys

    audit = Path(sys.executable).parent / "pip-audit"
    if not audit.exists():
        pytest.skip("pip-audit is not installed in this environment")
    report = tmp_path / "audit.json"
    subprocess.run([str(audit), "-r", str(REPO_ROOT / "requirements.lock"), "--no-deps", "--disable-pip",
                    "--progress-spinner", "off", "-f", "json", "-o", str(report)], capture_output=True, timeout=600)
    dependencies = json.loads(report.read_text())["dependencies"]
    audited = [d for d in dependencies if "skip_reason" not in d]
    if not audited:
        pytest.skip(f"no vulnerability service reachable: all {len(dependencies)} pins unaudited "
                    f"({dependencies[0].get('skip_reason', '')})")
    open_findings = [f"{d['name']} {d['version']}: {v['id']} (fixed in {v.get('fix_versions')})"
                     for d in audited for v in d.get("vulns", [])
                     if v["id"] not in JUSTIFIED_ADVISORIES.get(d["name"], set())]
    assert open_findings == [], "\n".join(open_findings)
