// Writes the events tests/tensorboard/read_events.py reads back with TensorBoard's own reader:
//   write_events DIR
// Values are chosen so the script can recompute every one of them independently.
#include <cstdio>
#include <exception>

#include "groupgrad.hpp"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: write_events DIR\n");
    return 2;
  }
  try {
    gg::SummaryWriter w(argv[1], gg::SummaryWriterOptions().max_queue(7).flush_secs(3600));
    for (int step = 0; step < 20; ++step) {
      w.add_scalar("train/loss", 10.0 / (step + 1), step);  // not all exact in float32
      w.add_scalar("lr", 0.001 * step, step * 10);
    }
    w.add_scalars("loss", {{"train", 1.25}, {"val", 2.5}}, 7);
    w.add_scalars("loss", {{"train", 0.75}, {"val", 1.5}}, 8);
    // arange(-50, 50) / 7 in float32, and an int tensor with exact zeros and a 2-D shape.
    w.add_histogram("weights", gg::arange(-50, 50, 1, gg::kFloat32) / 7.0, 3);
    w.add_histogram("counts", gg::arange(0, 12, 1, gg::kInt64).reshape({3, 4}), 4);
    w.add_text("notes",
               "groupgrad \xc3\xa9"
               "crit du texte",
               5);
    w.flush();
    // The last record: the test truncates the file inside it.
    w.add_scalar("last", 42.0, 99);
    w.close();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  return 0;
}
