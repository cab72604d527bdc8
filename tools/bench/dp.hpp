#pragma once
// The dp workload: a training step of examples/train_multihead's model on 1 and on 2 processes
// (one OpenMP thread each), each process with its own batch, plain and wrapped in
// DistributedDataParallel; step time, tokens/s, the share of the step spent in communication
// (DistributedDataParallel::last_step_stats()), bytes per step, and the all-to-all volume expert
// parallelism would move for the same model and routing (computed, not measured).
//
// The bench cannot be an MPI rank and the launcher of the ranks at once, so `bench -w dp` runs
// itself under mpirun once per process count (`mpirun --oversubscribe -np N bench --dp-worker
// --dp-out FILE ...`, with the environment of tests/distributed/CMakeLists.txt, root included),
// and reads the summary rank 0 writes.
#include <string>
#include <vector>

#include "report.hpp"

namespace gg::bench {

struct DpOptions {
  std::string data;  // the example's word list
  int64_t batch_size = 64;
  int warmup = 5, reps = 30;
  std::vector<double> bucket_mb{25, 0.125};  // one DDP variant per bucket cap (MiB)
};

// Whether this bench can launch MPI jobs (groupgrad built with MPI, mpirun found by CMake).
bool dp_available();
// bench -w dp: launches the workers for 1 and 2 processes and adds their results to `report`
// (two tables, notes, and report.extra["dp"] with each run's summary).
void run_dp_workload(const DpOptions& o, Report& report);
// bench --dp-worker: one rank of such a job. Times the variants in alternating rounds; rank 0
// writes the summary as JSON to out_path. Exceptions are left to gg::distributed's terminate
// handler, which ends the whole job.
void dp_worker(const DpOptions& o, const std::string& out_path);

}  // namespace gg::bench
