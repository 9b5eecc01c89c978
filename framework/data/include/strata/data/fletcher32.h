// The Fletcher-32 checksum as HDF5's fletcher32 filter computes it, so SliceStore's
// direct chunk reads can verify chunks without going through the HDF5 library.
//
// HDF5 sums the data as big-endian 16-bit words (an odd last byte is the high byte of
// a final word), folds both sums every 360 words, and appends the 32-bit result
// (sum2 << 16 | sum1) to each chunk in little-endian byte order.
#pragma once

#include <cstddef>
#include <cstdint>

namespace strata::data {

uint32_t fletcher32(const void* data, size_t bytes);

// The checksum HDF5 stored after a chunk: the 4 trailing bytes, little-endian.
inline uint32_t stored_fletcher32(const unsigned char* trailer) {
  return static_cast<uint32_t>(trailer[0]) | static_cast<uint32_t>(trailer[1]) << 8 |
         static_cast<uint32_t>(trailer[2]) << 16 | static_cast<uint32_t>(trailer[3]) << 24;
}

}  // namespace strata::data
