// Fletcher-32 in HDF5's word order and folding schedule (see fletcher32.h).
#include "strata/data/fletcher32.h"

namespace strata::data {

uint32_t fletcher32(const void* data, size_t bytes) {
  const auto* p = static_cast<const unsigned char*>(data);
  size_t words = bytes / 2;
  uint32_t sum1 = 0, sum2 = 0;
  // 360 words is the longest run whose sums cannot overflow 32 bits before folding.
  while (words > 0) {
    size_t block = words > 360 ? 360 : words;
    words -= block;
    for (size_t i = 0; i < block; ++i, p += 2) {
      sum1 += static_cast<uint32_t>(p[0]) << 8 | p[1];
      sum2 += sum1;
    }
    sum1 = (sum1 & 0xffff) + (sum1 >> 16);
    sum2 = (sum2 & 0xffff) + (sum2 >> 16);
  }
  if (bytes % 2) {
    sum1 += static_cast<uint32_t>(*p) << 8;
    sum2 += sum1;
    sum1 = (sum1 & 0xffff) + (sum1 >> 16);
    sum2 = (sum2 & 0xffff) + (sum2 >> 16);
  }
  sum1 = (sum1 & 0xffff) + (sum1 >> 16);
  sum2 = (sum2 & 0xffff) + (sum2 >> 16);
  return sum2 << 16 | sum1;
}

}  // namespace strata::data
