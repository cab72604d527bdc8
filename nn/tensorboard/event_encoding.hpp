#pragma once
// The byte-level parts of TensorBoard's event files that need no protobuf: CRC32C, the TFRecord
// framing every event is written in, and the histogram TensorBoard is given for a tensor. Internal
// (not installed): SummaryWriter uses it, the tests check it byte for byte.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace gg::tensorboard {

// CRC-32C (Castagnoli, reflected, as iSCSI and TFRecord use it) of the bytes.
uint32_t crc32c(std::string_view bytes);
// TFRecord's masked CRC: the CRC rotated right by 15 bits plus 0xa282ead8, so that a CRC of data
// that holds CRCs does not look like one.
uint32_t masked_crc32c(std::string_view bytes);
// One TFRecord: the payload's length as little-endian uint64, the masked CRC of those 8 bytes,
// the payload, the masked CRC of the payload (both CRCs little-endian uint32).
std::string frame_record(std::string_view payload);

// The fields of TensorBoard's HistogramProto.
struct Histogram {
  double min = 0, max = 0, num = 0, sum = 0, sum_squares = 0;
  std::vector<double> bucket_limit;  // each bucket's right edge
  std::vector<double> bucket;        // its count
};
// The bucket edges PyTorch's add_histogram uses by default (bins="tensorflow"): 0, and +-1e-12
// grown by factors of 1.1 while below 1e20, ascending.
const std::vector<double>& default_bucket_edges();
// The histogram of n values over ascending edges, as PyTorch gives it to TensorBoard: counts as
// numpy.histogram (bins [e_i, e_i+1), the last one closed; values outside the edges and NaN are
// not counted), trimmed to the buckets from the first to the last non-empty one plus the empty
// (or preceding) bucket on their left; min, max, sum and sum of squares over all n values.
// Throws gg::Error when n is 0 or no value falls inside the edges.
Histogram make_histogram(const double* values, int64_t n, const std::vector<double>& edges);

}  // namespace gg::tensorboard
