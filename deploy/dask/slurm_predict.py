"""Photo-z catalogues for every tile of a survey on a SLURM cluster.

Starts a Dask scheduler here (the login node, or a small CPU job), submits ``--jobs`` SLURM
jobs that each run one dask-cuda worker on one GPU, writes a scheduler file once the first
worker has joined, and runs ``dpz predict --scheduler-file FILE`` with every argument after
``--``. Workers that start later join the running prediction. When it ends (or on Ctrl-C)
the jobs are cancelled.

    python deploy/dask/slurm_predict.py --jobs 8 --partition gpu --account ACCOUNT \\
        --walltime 04:00:00 --prologue "source $HOME/venvs/dpz/bin/activate" \\
        -- --store $SCRATCH/kids-dr4.zarr --bundle $SCRATCH/bundles/deepz-10x5 \\
           --out $SCRATCH/catalogues/deepz-10x5

``--dry-run`` prints the job script and the ``dpz`` command without submitting anything.
Needs ``pip install 'distributed_pz[slurm]'`` (dask-jobqueue >= 0.8.2 for ``worker_command``,
cryptography for TLS) in the environment that runs this script; the workers need the same
environment (``--prologue``).

Security: scheduler, workers and the ``dpz predict`` client talk TLS with a temporary
self-signed certificate made for this run (``distributed.Security.temporary()``), so nobody
else on the cluster's network can connect and submit tasks (Dask tasks are pickled code). The
workers read the certificate from ``--shared-temp-directory`` (files readable by you only); the
client gets it through its environment. The dashboard listens on 127.0.0.1 unless asked:
view it with ``ssh -L 8787:127.0.0.1:8787 LOGIN-NODE``.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distributed_pz.infer.cli import Connection
from distributed_pz.options import add_options, option, specs

RESERVED_PREDICT_OPTIONS = tuple(f"--{spec.flag}" for spec in specs(Connection))
"""The connection options of `dpz predict`, which this script sets itself."""
SLURM, DASK = "SLURM jobs (one GPU worker each)", "Dask"


@dataclass(frozen=True)
class SlurmOptions:
    """The jobs this script submits and the Dask cluster they form."""

    jobs: int = option(4, group=SLURM, help="number of worker jobs (GPUs) to submit")
    partition: str | None = option(None, group=SLURM, help="SLURM partition (queue) with GPUs")
    account: str | None = option(None, group=SLURM, help="SLURM account to charge")
    walltime: str = option("04:00:00", group=SLURM, help="per-job time limit")
    cores: int = option(8, group=SLURM, help="CPU cores per job (data loading, decoding)")
    memory: str = option("64GB", group=SLURM, help="host memory per job")
    gres: str = option("gpu:1", group=SLURM, help="GPU request per job (#SBATCH --gres=...)")
    job_directive: tuple[str, ...] = option(
        (),
        append=True,
        metavar="OPTION",
        group=SLURM,
        help="extra #SBATCH option, repeatable, e.g. --job-directive=--constraint=a100",
    )
    prologue: tuple[str, ...] = option(
        (),
        append=True,
        metavar="COMMAND",
        group=SLURM,
        help="shell command run in each job before the worker (module load, venv activate), repeatable",
    )
    local_directory: str = option("${TMPDIR:-/tmp}", group=SLURM, help="node-local scratch for Dask spill")
    log_directory: str = option("dask-logs", group=SLURM, help="where SLURM writes the jobs' logs")
    worker: str = option(
        "cuda",
        choices=("cuda", "cpu"),
        group=SLURM,
        help="dask-cuda worker on a GPU, or a plain Dask worker (CPU partitions: also pass --gres '')",
    )
    interface: str | None = option(
        None, group=DASK, help="network interface the scheduler and workers use (e.g. ib0)"
    )
    dashboard_address: str = option(
        "127.0.0.1:8787",
        group=DASK,
        help="scheduler dashboard (ssh -L 8787:127.0.0.1:8787 to view it; ':8787' serves every interface)",
    )
    shared_temp_directory: str = option(
        "dask-logs",
        group=DASK,
        help="directory every job sees, where the run's temporary TLS certificate is written (mode 600)",
    )
    scheduler_file: Path | None = option(
        None, group=DASK, help="write the scheduler file here (default: a temp file)"
    )
    min_workers: int = option(1, group=DASK, help="workers to wait for before predicting")
    wait_timeout: float = option(3600, group=DASK, help="seconds to wait for them (queue time)")
    dry_run: bool = option(False, help="print the job script and dpz command, submit nothing")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="slurm_predict.py",
        description=__doc__.split("\n\n")[0],
        epilog="Arguments after `--` go to `dpz predict` (--store, --bundle, --out, --tile, ...).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_options(parser, [SlurmOptions])
    parser.add_argument(
        "predict_args", nargs=argparse.REMAINDER, help="`--` then the arguments of `dpz predict`"
    )
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.predict_args = args.predict_args[1:] if args.predict_args[:1] == ["--"] else args.predict_args
    if not args.predict_args:
        parser.error("give the `dpz predict` arguments after `--` (at least --store, --bundle, --out)")
    for option_string in RESERVED_PREDICT_OPTIONS:
        if any(arg == option_string or arg.startswith(option_string + "=") for arg in args.predict_args):
            parser.error(f"{option_string} is set by this script; remove it from the `dpz predict` arguments")
    return args


def predict_argv(args: argparse.Namespace, scheduler_file: Path) -> list[str]:
    """The `dpz` command line (without the program name) this script runs."""
    return ["predict", "--scheduler-file", str(scheduler_file), *args.predict_args]


def cluster_kwargs(args: argparse.Namespace) -> dict:
    """Keyword arguments of ``dask_jobqueue.SLURMCluster`` for ``--jobs`` identical jobs."""
    cuda = args.worker == "cuda"
    directives = [f"--gres={args.gres}"] if args.gres else []
    return {
        "job_name": "dpz-worker",
        "queue": args.partition,
        "account": args.account,
        "walltime": args.walltime,
        # cuda: one single-threaded worker per GPU (`python -m dask_cuda.cli` is `dask cuda
        # worker`: GPU pinned, device-memory spilling), the job's cores feed its data loading.
        # cpu: one single-threaded worker per core (torch on CPU is fastest that way).
        "cores": 1 if cuda else args.cores,
        "processes": 1 if cuda else args.cores,
        "job_cpu": args.cores,
        "memory": args.memory,
        "worker_command": "dask_cuda.cli" if cuda else "distributed.cli.dask_worker",
        "job_extra_directives": directives + args.job_directive,
        "job_script_prologue": args.prologue,
        "local_directory": args.local_directory,
        "log_directory": args.log_directory,
        "interface": args.interface,
        "death_timeout": 120,
        "scheduler_options": {"dashboard_address": args.dashboard_address},
    }


def client_tls_environment(security: Any, directory: Path) -> dict[str, str]:
    """Dask settings (environment variables) that make a client use ``security``'s TLS.

    The certificate and key are written to ``directory`` (which must be private) as files.
    """
    config = security.get_tls_config_for_role("client")
    env = {"DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION": "True"}
    for key, name in (("ca_file", "CA_FILE"), ("cert", "CLIENT__CERT"), ("key", "CLIENT__KEY")):
        path = directory / f"client-{key}.pem"
        path.write_text(config[key])
        path.chmod(0o600)
        env[f"DASK_DISTRIBUTED__COMM__TLS__{name}"] = str(path)
    return env


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Imported here so that --help and the checks above work without dask-jobqueue.
    from dask_jobqueue import SLURMCluster
    from distributed import Client, Security

    security = Security.temporary()
    Path(args.shared_temp_directory).mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory(prefix="dpz-slurm-") as tmp,
        SLURMCluster(
            **cluster_kwargs(args), security=security, shared_temp_directory=args.shared_temp_directory
        ) as cluster,
        Client(cluster, security=security) as client,
    ):
        scheduler_file = args.scheduler_file or Path(tmp) / "scheduler.json"
        command = [sys.executable, "-m", "distributed_pz.cli", *predict_argv(args, scheduler_file)]
        if args.dry_run:
            print(cluster.job_script())
            print(shlex.join(command))
            return 0
        cluster.scale(jobs=args.jobs)
        print(f"submitted {args.jobs} jobs; dashboard {cluster.dashboard_link}", flush=True)
        client.wait_for_workers(args.min_workers, timeout=args.wait_timeout)
        client.write_scheduler_file(str(scheduler_file))
        print("running:", shlex.join(command), flush=True)
        env = {**os.environ, **client_tls_environment(security, Path(tmp))}
        return subprocess.run(command, check=False, env=env).returncode


if __name__ == "__main__":
    sys.exit(main())
