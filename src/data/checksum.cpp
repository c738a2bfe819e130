#include "evoopt/data/checksum.hpp"

#include <openssl/evp.h>

#include "evoopt/common/error.hpp"

namespace evoopt::data {
namespace {
std::string digest_hex(const EVP_MD* md, const void* data, std::size_t size) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data, size, out, &len, md, nullptr) != 1) throw Error("checksum computation failed");
  static const char* hex = "0123456789abcdef";
  std::string s;
  s.reserve(len * 2);
  for (unsigned int i = 0; i < len; ++i) {
    s.push_back(hex[out[i] >> 4]);
    s.push_back(hex[out[i] & 15]);
  }
  return s;
}
}  // namespace

std::string sha256_hex(const void* data, std::size_t size) { return digest_hex(EVP_sha256(), data, size); }
std::string md5_hex(const void* data, std::size_t size) { return digest_hex(EVP_md5(), data, size); }

}  // namespace evoopt::data
