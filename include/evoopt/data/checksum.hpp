#pragma once
#include <cstddef>
#include <string>

#include "evoopt/common/files.hpp"

namespace evoopt::data {

// Lower-case hex digests (OpenSSL's EVP).
std::string sha256_hex(const void* data, std::size_t size);
inline std::string sha256_hex(const Bytes& b) { return sha256_hex(b.data(), b.size()); }
std::string md5_hex(const void* data, std::size_t size);
inline std::string md5_hex(const Bytes& b) { return md5_hex(b.data(), b.size()); }

}  // namespace evoopt::data
