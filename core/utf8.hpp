#pragma once
// UTF-8 validation for text that goes into formats whose strings must be UTF-8 (safetensors' JSON
// header, TensorBoard's protocol buffers). Internal: not reachable from an installed header.
#include <cstddef>
#include <optional>
#include <string_view>

namespace gg {

// The first byte offset at which `s` is not valid UTF-8 (overlong forms, surrogates and code
// points above U+10FFFF are invalid, as in nlohmann::json's dump), or nullopt.
inline std::optional<size_t> invalid_utf8_at(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  for (size_t i = 0, n = s.size(); i < n;) {
    const unsigned c = p[i];
    size_t len = 0;
    unsigned lo = 0x80, hi = 0xbf;  // the allowed range of the second byte
    if (c < 0x80) {
      len = 1;
    } else if (c >= 0xc2 && c <= 0xdf) {
      len = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
      len = 3;
      if (c == 0xe0) lo = 0xa0;  // overlong
      if (c == 0xed) hi = 0x9f;  // surrogates
    } else if (c >= 0xf0 && c <= 0xf4) {
      len = 4;
      if (c == 0xf0) lo = 0x90;  // overlong
      if (c == 0xf4) hi = 0x8f;  // above U+10FFFF
    } else {
      return i;
    }
    if (len > n - i) return i;
    for (size_t j = 1; j < len; ++j) {
      const unsigned b = p[i + j];
      if (b < (j == 1 ? lo : 0x80) || b > (j == 1 ? hi : 0xbf)) return i;
    }
    i += len;
  }
  return std::nullopt;
}

}  // namespace gg
