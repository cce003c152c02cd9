// PNG in and out with zlib only: read any non-interlaced PNG as 8-bit RGB, write index masks
// as palette PNGs (pixel value = class id, palette = the dataset's colours), losslessly.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace drivseg {

struct RgbImage {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> pixels;  // row-major, 3 bytes (R, G, B) per pixel
};

// Reads `path` and converts it to RGB the way PIL's Image.convert("RGB") does: grey is
// replicated (1/2/4-bit grey scaled to 0..255), alpha dropped, palette looked up, 16-bit RGB
// channels keep their high byte. Throws std::runtime_error naming the file and the problem
// (e.g. interlaced or 16-bit greyscale files, which this reader does not decode).
RgbImage read_png_rgb(const std::string& path);

// Writes `indices` (height x width, row-major) as an 8-bit palette PNG with `palette` colours.
void write_palette_png(const std::string& path, const std::vector<uint8_t>& indices, int width, int height,
                       const std::vector<std::array<uint8_t, 3>>& palette);

}  // namespace drivseg
