#pragma once
// One exception type for every user-facing failure: the message is a single
// line naming the thing that is wrong (file, field, value, allowed range).
// The CLI prints it as "evoopt: error: <message>" and exits non-zero.
#include <stdexcept>
#include <string>

namespace evoopt {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

}  // namespace evoopt
