"""bitnetmcu-sweep: architecture and recipe search over bitnetmcu-train configurations
(spec: sweep files; runner: one run; results: the atomic results table; backends: local pool and
Slurm job arrays; frontier: Pareto tables and plots; cli: the command line)."""
