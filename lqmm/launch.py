"""Launches one command as the processes of a multi-process JAX run: on this machine, a TPU
slice or a SLURM GPU cluster.

Every process runs the same command, typically an experiment's
`python -m experiments.<name>.train --config=... --workdir=...`. Each gets
`LQMM_DISTRIBUTED=1`, so `lqmm.train.run_experiment` calls `jax.distributed.initialize()`
before anything else. The processes then build one global mesh, train the same seeds on
slices of every batch, and write one checkpoint together. Rerunning the same command resumes
from it.

    # Two CPU processes on this machine over loopback (gloo collectives):
    python -m lqmm.launch --processes=2 -- \\
        .venv/bin/python -m experiments.tmc_handwritten.train \\
        --config=experiments/tmc_handwritten/configs/default.py --workdir=$PWD/workdir/tmc2
    # Every worker of a TPU VM slice (JAX discovers the cluster), printed, not run:
    python -m lqmm.launch --cluster=tpu --tpu=my-v4-16 --zone=us-central2-b --dry_run -- \\
        bash tpu_scripts/run.sh tmc_handwritten gs://bucket/lqmm/tmc
    # A SLURM allocation of GPU nodes, one process per GPU (JAX reads SLURM's variables):
    python -m lqmm.launch --cluster=slurm --nodes=2 --processes_per_node=8 -- \\
        .venv/bin/python -m experiments.tmc_handwritten.train ...

With `--grid`, the processes do not form one JAX run: each is an independent shard of a grid
(`LQMM_SHARD_INDEX`, `LQMM_SHARD_COUNT`) and `python -m lqmm.bench` trains its share of the
methods x seed blocks and merges them on shard 0 (see `lqmm.bench.harness`):

    python -m lqmm.launch --grid --processes=2 -- \
        .venv/bin/python -m lqmm.bench --config=lqmm/bench/configs/fusion.py --workdir=$PWD/w

Clusters:
- `local` (default): starts `--processes` processes here, with `LQMM_COORDINATOR`
  (127.0.0.1 and a free port), `LQMM_NUM_PROCESSES` and `LQMM_PROCESS_ID` set, and, with
  `--devices_per_process`, that many CPU devices each. It waits for all of them. If one fails,
  it stops the others and exits with the failed one's status.
- `tpu`: one `gcloud compute tpus tpu-vm ssh --worker=all` that runs the command in
  `--remote_dir` on every worker.
- `slurm`: one `srun` with a task per process.

`--dry_run` prints the commands (with their environment) instead of running them.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence

CLUSTERS = ('local', 'tpu', 'slurm')


def free_port() -> int:
  """A TCP port on 127.0.0.1 that nothing listens on now."""
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
    sock.bind(('127.0.0.1', 0))
    return sock.getsockname()[1]


def local_environments(processes: int, *, port: int | None = None,
                       devices_per_process: int | None = None, grid: bool = False,
                       base: dict | None = None) -> list[dict[str, str]]:
  """The environment of each local process (`base`, default `os.environ`, plus lqmm's):
  one `jax.distributed` run over 127.0.0.1:`port`, or with `grid` independent shards of a
  grid (`LQMM_SHARD_INDEX`, `LQMM_SHARD_COUNT`; no `jax.distributed`)."""
  base = dict(os.environ if base is None else base)
  out = []
  for index in range(processes):
    if grid:
      env = dict(base, LQMM_DISTRIBUTED='0', LQMM_SHARD_INDEX=str(index),
                 LQMM_SHARD_COUNT=str(processes))
    else:
      env = dict(base, LQMM_DISTRIBUTED='1', LQMM_COORDINATOR=f'127.0.0.1:{port}',
                 LQMM_NUM_PROCESSES=str(processes), LQMM_PROCESS_ID=str(index))
    if devices_per_process is not None:
      flags = [flag for flag in env.get('XLA_FLAGS', '').split()
               if not flag.startswith('--xla_force_host_platform_device_count')]
      flags.append(f'--xla_force_host_platform_device_count={devices_per_process}')
      env['XLA_FLAGS'] = ' '.join(flags)
      env['JAX_PLATFORMS'] = 'cpu'
    out.append(env)
  return out


def cluster_command(args, command: Sequence[str]) -> list[str]:
  """The one command that starts every process on a TPU slice or under SLURM."""
  inner = shlex.join(command)
  if args.cluster == 'tpu':
    folder = args.remote_dir
    # Quoted, except a leading ~/ (the remote shell expands it to the worker's home).
    folder = ('~/' + shlex.quote(folder[2:]) if folder.startswith('~/')
              else shlex.quote(folder))
    remote = f'cd {folder} && LQMM_DISTRIBUTED=1 {inner}'
    project = [f'--project={args.project}'] if args.project else []
    return ['gcloud', 'compute', 'tpus', 'tpu-vm', 'ssh', args.tpu, f'--zone={args.zone}',
            *project, '--worker=all', f'--command={remote}']
  srun = ['srun', f'--nodes={args.nodes}', f'--ntasks-per-node={args.processes_per_node}']
  if args.grid:   # each task its shard, from SLURM's task id and count
    return [*srun, 'bash', '-c', 'LQMM_SHARD_INDEX=$SLURM_PROCID LQMM_SHARD_COUNT=$SLURM_NTASKS '
            f'exec {inner}']
  return [*srun, 'env', 'LQMM_DISTRIBUTED=1', *command]


def _changed(env: dict, base: dict) -> str:
  names = sorted(name for name in env if base.get(name) != env[name])
  return ' '.join(f'{name}={shlex.quote(env[name])}' for name in names)


def run_local(command: Sequence[str], environments: Sequence[dict], *,
              grace_s: float = 10.0) -> int:
  """Runs `command` once per environment; returns 0, or the first failure's exit status.

  After a failure the other processes get `grace_s` to end by themselves (every process of a
  run stopped by `config.train.stop_after_epochs` exits non-zero once the checkpoint is
  written), then SIGTERM, then SIGKILL after another `grace_s`.
  """
  processes = [subprocess.Popen(list(command), env=env) for env in environments]
  status = 0
  try:
    while True:
      codes = [process.poll() for process in processes]
      failed = [code for code in codes if code not in (None, 0)]
      if failed:
        status = failed[0]
        break
      if all(code == 0 for code in codes):
        return 0
      time.sleep(0.1)
  except KeyboardInterrupt:
    status = 128 + signal.SIGINT
  for stop in (None, 'terminate', 'kill'):
    if stop is not None:
      for process in processes:
        if process.poll() is None:
          getattr(process, stop)()
    deadline = time.monotonic() + grace_s
    for process in processes:
      try:
        process.wait(timeout=max(deadline - time.monotonic(), 0.0))
      except subprocess.TimeoutExpired:
        pass
  return status


def parse(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
  """The launcher's options and the command after `--`; exits with a usage error (status 2)
  on a bad option, a missing command or a missing cluster setting."""
  parser = argparse.ArgumentParser(prog='python -m lqmm.launch', description=(
      'Run a command as the processes of a multi-process JAX run (see the module docstring).'))
  parser.add_argument('--cluster', choices=CLUSTERS, default='local')
  parser.add_argument('--processes', type=int, default=2,
                      help='local: how many processes to start here (default 2).')
  parser.add_argument('--devices_per_process', type=int, default=None,
                      help='local: CPU devices per process (sets XLA_FLAGS and JAX_PLATFORMS).')
  parser.add_argument('--port', type=int, default=None,
                      help='local: the coordinator port (default: a free one).')
  parser.add_argument('--tpu', help='tpu: the TPU VM name.')
  parser.add_argument('--zone', help='tpu: its zone.')
  parser.add_argument('--project', default=None, help='tpu: its project (default: gcloud\'s).')
  parser.add_argument('--remote_dir', default='~/lqmm',
                      help='tpu: the repository on every worker (default ~/lqmm).')
  parser.add_argument('--nodes', type=int, default=1, help='slurm: nodes.')
  parser.add_argument('--processes_per_node', type=int, default=1,
                      help='slurm: processes per node (one per GPU).')
  parser.add_argument('--grid', action='store_true', help=(
      'independent processes that split a grid (lqmm.bench): each gets LQMM_SHARD_INDEX and '
      'LQMM_SHARD_COUNT instead of jax.distributed (local or slurm).'))
  parser.add_argument('--dry_run', action='store_true',
                      help='print the commands instead of running them.')
  argv = list(argv)
  split = argv.index('--') if '--' in argv else len(argv)
  args, command = parser.parse_args(argv[:split]), argv[split + 1:]
  if not command:
    parser.error('give the command to run after --, e.g. -- .venv/bin/python -m '
                 'experiments.tmc_handwritten.train --config=... --workdir=...')
  for name, minimum in (('processes', 1), ('devices_per_process', 1), ('nodes', 1),
                        ('processes_per_node', 1), ('port', 1)):
    value = getattr(args, name)
    if value is not None and value < minimum:
      parser.error(f'--{name} must be >= {minimum}; got {value}.')
  if args.cluster == 'tpu' and not (args.tpu and args.zone):
    parser.error('--cluster=tpu needs --tpu and --zone.')
  if args.cluster == 'tpu' and args.grid:
    parser.error('--grid runs with --cluster=local or slurm (a TPU worker has no shard index '
                 'here); on TPU hosts set LQMM_SHARD_INDEX and LQMM_SHARD_COUNT yourself.')
  return args, command


def main(argv: Sequence[str] | None = None) -> int:
  args, command = parse(sys.argv[1:] if argv is None else argv)
  if args.cluster != 'local':
    line = cluster_command(args, command)
    if args.dry_run:
      print(shlex.join(line))
      return 0
    return subprocess.call(line)
  port = None if args.grid else (args.port if args.port is not None else free_port())
  environments = local_environments(args.processes, port=port,
                                    devices_per_process=args.devices_per_process,
                                    grid=args.grid)
  if args.dry_run:
    for env in environments:
      print(f'{_changed(env, dict(os.environ))} {shlex.join(command)}')
    return 0
  return run_local(command, environments)


if __name__ == '__main__':
  sys.exit(main())
