"""Running: one network, batches, the sweep, its workers and backends, requeue, SLURM."""
