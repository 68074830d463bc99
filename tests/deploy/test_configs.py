"""deploy/: every manifest parses, every `dpz` command line in it exists, and nothing leaks.

Command lines are collected from the YAML files (strings and Kubernetes command/args lists),
the shell code blocks of deploy/README.md, the Dockerfile and the SLURM driver script, and
parsed by the real ``dpz`` parser with ``${PLACEHOLDER}`` values filled in.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import re
import shlex
import sys
from pathlib import Path

import pytest
import yaml

from distributed_pz import cli

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
README = DEPLOY / "README.md"
DOCKERFILE = DEPLOY / "docker" / "Dockerfile"
SLURM_SCRIPT = DEPLOY / "dask" / "slurm_predict.py"

FILES = sorted(p for p in DEPLOY.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
YAML_FILES = [p for p in FILES if p.suffix in (".yaml", ".yml")]

# Subcommands other engineers are landing: checked against their module until `dpz` dispatches
# them, skipped (with the reason) while that module does not exist.
PENDING = {"train": "distributed_pz.train.cli", "predict": "distributed_pz.infer.cli"}

# ${VAR}, $VAR (shell, envsubst) and $(VAR) (Kubernetes env expansion) -> a value every option accepts.
PLACEHOLDER = re.compile(r"\$\{[^}]*\}|\$\([A-Za-z_]\w*\)|\$[A-Za-z_]\w*")
PLACEHOLDER_VALUE = "1"
SHELL_OPERATOR_CHARS = set(";&|<>()")
FENCED_BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)
DPZ_IMAGE_REF = re.compile(r"(^|/)dpz:[\w.-]+$")  # `docker run dpz:0.1.0 ARGS` runs `dpz ARGS`
# What may precede a program name in command position (`ray job submit -- dpz ...`, `do dpz ...`).
COMMAND_PREFIXES = {"--", "do", "then", "else", "exec", "time", "nohup", "env"}
ASSIGNMENT = re.compile(r"[A-Za-z_]\w*=\S*")


def shell_commands(text: str) -> list[list[str]]:
    """Simple commands of shell text as argv lists: continuations joined, comments dropped,
    split at operators (; && | ...); command strings (sbatch --wrap, bash -c, ray exec) too."""
    text = PLACEHOLDER.sub(PLACEHOLDER_VALUE, text.replace("\\\n", " "))
    commands: list[list[str]] = []
    for line in text.splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        current: list[str] = []
        for token in lexer:
            if set(token) <= SHELL_OPERATOR_CHARS:
                commands.append(current)
                current = []
            else:
                if current[-1:] in (["--wrap"], ["-c"]) or (
                    current[:2] == ["ray", "exec"] and len(current) == 3
                ):
                    commands.extend(shell_commands(token))
                current.append(token)
        commands.append(current)
    return [command for command in commands if command]


def dpz_invocations(argv: list[str]) -> list[list[str]]:
    """The arguments of each `dpz` (or `docker run ... dpz:TAG`) run by the simple command ``argv``."""
    found = []
    for i, token in enumerate(argv):
        head = argv[:i]
        in_command_position = head[-1:] == ["--"] or all(
            t in COMMAND_PREFIXES or ASSIGNMENT.fullmatch(t) for t in head
        )
        if (token == "dpz" or token.endswith("/bin/dpz")) and in_command_position:
            found.append(argv[i + 1 :])
        elif argv[:2] == ["docker", "run"] and DPZ_IMAGE_REF.search(token):
            found.append(argv[i + 1 :])
    return found


def yaml_argvs(node) -> list[list[str]]:
    """Command lines in a YAML document: Kubernetes command+args lists and every string."""
    found: list[list[str]] = []
    if isinstance(node, dict):
        listed = [*(node.get("command") or []), *(node.get("args") or [])]
        if isinstance(node.get("command"), list) and all(isinstance(item, str) for item in listed):
            found.append([PLACEHOLDER.sub(PLACEHOLDER_VALUE, item) for item in listed])
        for value in node.values():
            found += yaml_argvs(value)
    elif isinstance(node, list):
        for item in node:
            found += yaml_argvs(item)
    elif isinstance(node, str):
        found += shell_commands(node)
    return found


def readme_shell_text() -> str:
    return "\n".join(
        body for lang, body in FENCED_BLOCK.findall(README.read_text()) if lang in ("", "bash", "sh", "shell")
    )


def load_slurm_script():
    spec = importlib.util.spec_from_file_location("slurm_predict", SLURM_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # as an import does: its dataclasses resolve their annotations here
    spec.loader.exec_module(module)
    return module


def docstring_code(doc: str) -> str:
    """The indented (literal-block) lines of a docstring."""
    return "\n".join(line for line in doc.splitlines() if line.startswith("    "))


def slurm_invocations() -> list[tuple[str, list[str]]]:
    """(where, arguments) of every `slurm_predict.py` invocation in the README and its docstring."""
    texts = {
        "README.md": readme_shell_text(),
        "slurm_predict.py docstring": docstring_code(load_slurm_script().__doc__),
    }
    return [
        (f"{where}: slurm_predict.py #{i}", argv[j + 1 :])
        for where, text in texts.items()
        for i, argv in enumerate(shell_commands(text))
        for j, token in enumerate(argv)
        if token.endswith("slurm_predict.py")
    ]


def dpz_command_lines() -> list[tuple[str, list[str]]]:
    """(where, argv after `dpz`) for every dpz command line under deploy/."""
    sources: list[tuple[str, list[list[str]]]] = []
    for path in YAML_FILES:
        sources.append(
            (path.name, [argv for doc in yaml.safe_load_all(path.read_text()) for argv in yaml_argvs(doc)])
        )
    sources.append(("README.md", shell_commands(readme_shell_text())))
    for path in FILES:
        if path.suffix not in (".yaml", ".yml", ".md", ".py"):
            sources.append((path.name, shell_commands(path.read_text())))
    slurm = load_slurm_script()
    sources.append(
        (
            "slurm_predict.py",
            [
                ["dpz", *slurm.predict_argv(slurm.parse_args(args), Path("scheduler.json"))]
                for _, args in slurm_invocations()
            ],
        )
    )
    return [
        (f"{where}: dpz {' '.join(args[:1])} #{i}", args)
        for where, argvs in sources
        for i, argv in enumerate(argvs)
        for args in dpz_invocations(argv)
        if args
    ]


def skip_if_not_landed(module_name: str) -> None:
    """Skip when ``module_name`` (or a distributed_pz module it imports) does not exist yet."""
    try:
        importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith("distributed_pz"):
            raise
        pytest.skip(f"{module_name} is not importable yet ({exc})")


DPZ_COMMAND_LINES = dpz_command_lines()


def test_every_yaml_file_parses():
    assert YAML_FILES, "no YAML files under deploy/"
    for path in YAML_FILES:
        documents = [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
        assert documents, f"{path} is empty"
        for doc in documents:
            assert isinstance(doc, dict), f"{path}: a document is not a mapping"


def test_command_lines_were_found():
    found = {where.split(":")[0] for where, _ in DPZ_COMMAND_LINES}
    expected = {"aws-gpu.yaml", "kuberay-rayjob.yaml", "kubernetes-predict.yaml", "README.md", "Dockerfile"}
    assert expected | {"slurm_predict.py"} <= found
    assert {args[0] for _, args in DPZ_COMMAND_LINES} >= {"train", "predict", "simulate"}


@pytest.mark.parametrize(
    "args", [args for _, args in DPZ_COMMAND_LINES], ids=[w for w, _ in DPZ_COMMAND_LINES]
)
def test_dpz_command_line_parses(args, monkeypatch, capsys):
    name = None if args[0].startswith("-") else args[0]
    commands = {}
    if name in cli.COMMANDS:
        commands = {name: cli.COMMANDS[name]}
    elif name in PENDING:  # not dispatched by `dpz` yet: its module's options, same parser
        commands = {name: (PENDING[name], f"{name} (not yet in distributed_pz.cli)")}
    elif name is not None:
        pytest.fail(f"`dpz {name}` is not a dpz subcommand (have: {', '.join(cli.COMMANDS)})")
    if name is not None:
        skip_if_not_landed(commands[name][0])
    # The real parser with only this subcommand wired in: another one's state cannot fail it.
    monkeypatch.setattr(cli, "COMMANDS", commands)
    try:
        cli.build_parser().parse_args(args)
    except SystemExit as exc:
        assert exc.code == 0, f"`dpz {shlex.join(args)}` does not parse:\n{capsys.readouterr().err}"


SLURM_INVOCATIONS = slurm_invocations()


@pytest.mark.parametrize(
    "args", [args for _, args in SLURM_INVOCATIONS], ids=[w for w, _ in SLURM_INVOCATIONS]
)
def test_slurm_driver_invocation_parses(args):
    script = load_slurm_script()
    parsed = script.parse_args(args)
    assert parsed.predict_args and script.cluster_kwargs(parsed)["worker_command"]


def test_slurm_job_script_runs_a_dask_cuda_worker_per_gpu():
    jobqueue = pytest.importorskip("dask_jobqueue.slurm", reason="dask-jobqueue is a deploy-time dependency")
    script = load_slurm_script()
    kwargs = script.cluster_kwargs(script.parse_args(["--partition", "gpu", "--", "--store", "s"]))
    kwargs.pop("scheduler_options")
    job_script = jobqueue.SLURMJob(scheduler="tcp://10.0.0.1:8786", name="w0", **kwargs).job_script()
    assert "#SBATCH --gres=gpu:1" in job_script and "#SBATCH --cpus-per-task=8" in job_script
    assert "-m dask_cuda.cli tcp://10.0.0.1:8786" in job_script and "--nthreads 1" in job_script


def test_slurm_driver_refuses_connection_options():
    script = load_slurm_script()
    for argv in (["--", "--store", "s", "--scheduler", "tcp://x:1"], ["--"]):
        with pytest.raises(SystemExit):
            script.parse_args(argv)


SECRETS = {
    "AWS access key id": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "AWS secret key with a literal value": re.compile(
        r"aws_secret_access_key\s*[:=]\s*(?![\"']?[$<])[\"']?[^\s\"']+", re.I
    ),
    "private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "GCP service-account key": re.compile(r"\"private_key(_id)?\"\s*:"),
}
# Container-internal home directories are fine; a developer's or site's paths are not.
SITE_PATHS = re.compile(r"/home/(?!dpz\b)[\w.-]+|/Users/|/work/|[A-Z]:\\Users\\")


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(DEPLOY)) for p in FILES])
def test_no_secrets_or_site_paths(path):
    text = path.read_text()
    for what, pattern in SECRETS.items():
        assert not pattern.search(text), f"{path}: {what}: {pattern.search(text).group(0)[:12]}..."
    assert not SITE_PATHS.search(text), f"{path}: site-specific path {SITE_PATHS.search(text).group(0)!r}"


def pod_specs(node):
    if isinstance(node, dict):
        if "containers" in node:
            yield node
        for value in node.values():
            yield from pod_specs(value)
    elif isinstance(node, list):
        for item in node:
            yield from pod_specs(item)


def test_kubernetes_pods_run_as_non_root_without_literal_secrets():
    manifests = [
        doc for p in YAML_FILES for doc in yaml.safe_load_all(p.read_text()) if doc and "apiVersion" in doc
    ]
    pods = [pod for doc in manifests for pod in pod_specs(doc)]
    assert len(pods) >= 5  # Ray head + workers, Dask scheduler + workers, predict Job
    secret_name = re.compile(r"KEY|SECRET|TOKEN|PASSWORD", re.I)
    for pod in pods:
        assert pod.get("securityContext", {}).get("runAsNonRoot") is True, json.dumps(pod)[:200]
        assert pod.get("serviceAccountName") == "dpz", json.dumps(pod)[:200]
        for container in pod["containers"]:
            for env in container.get("env", []):
                assert not (secret_name.search(env["name"]) and "value" in env), f"literal {env['name']}"


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def test_dockerfile_installs_the_package_as_non_root_with_dpz_entrypoint():
    instructions = dockerfile_instructions()
    users = [args.split(":")[0].strip() for op, args in instructions if op == "USER"]
    assert users and users[-1] not in ("root", "0"), f"final USER is {users[-1:]}"

    # The build context root (`.` or where a RUN bind-mounts it) must be pip-installed.
    installs = []
    for op, args in instructions:
        if op == "RUN" and "pip install" in args:
            roots = {".", "./"} | set(re.findall(r"--mount=type=bind,source=\.,target=([^,\s]+)", args))
            tokens = shlex.split(PLACEHOLDER.sub(PLACEHOLDER_VALUE, args))
            installs += [t for t in tokens if re.sub(r"\[[^\]]*\]$", "", t) in roots]
    assert installs, "no RUN pip-installs the package from the build context"

    entrypoint = [json.loads(args) for op, args in instructions if op == "ENTRYPOINT"]
    assert entrypoint and entrypoint[-1][-1] == "dpz", entrypoint


def test_dockerignore_keeps_only_what_the_build_needs():
    lines = (DEPLOY / "docker" / "Dockerfile.dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert patterns[0] == "*", "start from an empty context (allow-list)"
    assert {"!pyproject.toml", "!README.md", "!constraints-cpu.txt", "!distributed_pz/"} <= set(patterns)
