"""What the scale benchmarks share: paths, the CPU's name, the environment mpirun needs as root."""
import os

HERE = os.path.dirname(os.path.abspath(__file__))
MIXQ = os.path.join(HERE, "..", "..", "build", "mixq")
RESULTS = os.path.join(HERE, "..", "results", "scale")
CORES = os.cpu_count()
# mpirun refuses root unless told twice (CI containers and these machines run as root).
MPI_ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")


def cpu_name():
    return next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")


def mpi_configs(nps):
    """(ranks, threads each): one process on all cores, one on one thread, then each N of `nps`."""
    return [(1, CORES), (1, 1)] + [(int(n), max(1, CORES // int(n))) for n in nps.split(",")]
