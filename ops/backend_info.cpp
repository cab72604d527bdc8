// The public backend report (ops/backend_info.hpp) from the oneDNN context.
#include "backend_info.hpp"

#include "onednn/context.hpp"

namespace gg::backend {

std::string isa_name() { return onednn::isa_name(onednn::effective_isa()); }

bool native_bf16() { return onednn::native_bf16(); }

}  // namespace gg::backend
