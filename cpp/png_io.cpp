#include "png_io.h"

#include <zlib.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <stdexcept>

namespace drivseg {

namespace {

const uint8_t kSignature[8] = {137, 80, 78, 71, 13, 10, 26, 10};

uint32_t read_be32(const uint8_t* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}

void append_be32(std::vector<uint8_t>& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<uint8_t>(v >> shift));
}

int paeth(int a, int b, int c) {
  int p = a + b - c, pa = std::abs(p - a), pb = std::abs(p - b), pc = std::abs(p - c);
  if (pa <= pb && pa <= pc) return a;
  return pb <= pc ? b : c;
}

// Undo the per-row PNG filters in place; `raw` holds height rows of (1 filter byte + stride).
std::vector<uint8_t> unfilter(const std::vector<uint8_t>& raw, size_t stride, int height, size_t bpp,
                              const std::string& path) {
  std::vector<uint8_t> out(stride * height);
  for (int y = 0; y < height; ++y) {
    const uint8_t filter = raw[y * (stride + 1)];
    const uint8_t* in = &raw[y * (stride + 1) + 1];
    uint8_t* row = &out[y * stride];
    const uint8_t* up = y > 0 ? &out[(y - 1) * stride] : nullptr;
    for (size_t x = 0; x < stride; ++x) {
      int a = x >= bpp ? row[x - bpp] : 0, b = up ? up[x] : 0, c = (up && x >= bpp) ? up[x - bpp] : 0;
      int predictor = 0;
      switch (filter) {
        case 0: predictor = 0; break;
        case 1: predictor = a; break;
        case 2: predictor = b; break;
        case 3: predictor = (a + b) / 2; break;
        case 4: predictor = paeth(a, b, c); break;
        default: throw std::runtime_error(path + ": unknown PNG row filter " + std::to_string(filter));
      }
      row[x] = static_cast<uint8_t>(in[x] + predictor);
    }
  }
  return out;
}

// Sample number `i` of a row of `bits`-bit samples (bits 1, 2, 4, 8 or 16: high byte).
int sample(const uint8_t* row, size_t i, int bits) {
  if (bits == 8) return row[i];
  if (bits == 16) return row[2 * i];
  const size_t per_byte = 8 / bits;
  const int shift = 8 - bits * static_cast<int>(i % per_byte + 1);
  return (row[i / per_byte] >> shift) & ((1 << bits) - 1);
}

void write_chunk(std::ofstream& f, const char* type, const std::vector<uint8_t>& data) {
  std::vector<uint8_t> head;
  append_be32(head, static_cast<uint32_t>(data.size()));
  head.insert(head.end(), type, type + 4);
  uLong crc = crc32(0L, reinterpret_cast<const Bytef*>(type), 4);
  if (!data.empty()) crc = crc32(crc, data.data(), static_cast<uInt>(data.size()));
  std::vector<uint8_t> tail;
  append_be32(tail, static_cast<uint32_t>(crc));
  f.write(reinterpret_cast<const char*>(head.data()), static_cast<std::streamsize>(head.size()));
  f.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
  f.write(reinterpret_cast<const char*>(tail.data()), static_cast<std::streamsize>(tail.size()));
}

}  // namespace

RgbImage read_png_rgb(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error(path + " cannot be opened");
  const std::vector<uint8_t> file((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (file.size() < 8 || !std::equal(kSignature, kSignature + 8, file.begin()))
    throw std::runtime_error(path + " is not a PNG file (convert it to PNG first)");

  int width = 0, height = 0, bits = 0, colour = -1, interlace = 0;
  std::vector<uint8_t> idat, plte;
  for (size_t pos = 8; pos + 12 <= file.size();) {
    const uint32_t length = read_be32(&file[pos]);
    const std::string type(reinterpret_cast<const char*>(&file[pos + 4]), 4);
    if (pos + 12 + length > file.size()) throw std::runtime_error(path + ": truncated PNG chunk " + type);
    const uint8_t* data = &file[pos + 8];
    if (crc32(crc32(0L, &file[pos + 4], 4), data, length) != read_be32(data + length))
      throw std::runtime_error(path + ": PNG chunk " + type + " fails its CRC check (corrupt file)");
    if (type == "IHDR") {
      width = static_cast<int>(read_be32(data));
      height = static_cast<int>(read_be32(data + 4));
      bits = data[8];
      colour = data[9];
      interlace = data[12];
    } else if (type == "PLTE") {
      plte.assign(data, data + length);
    } else if (type == "IDAT") {
      idat.insert(idat.end(), data, data + length);
    } else if (type == "IEND") {
      break;
    }
    pos += 12 + length;
  }
  if (width <= 0 || height <= 0) throw std::runtime_error(path + ": PNG without a valid IHDR chunk");
  if (interlace != 0)
    throw std::runtime_error(path + ": interlaced PNGs are not supported; re-save it without interlacing");
  int channels = 0;
  switch (colour) {
    case 0: channels = 1; break;  // grey
    case 2: channels = 3; break;  // RGB
    case 3: channels = 1; break;  // palette
    case 4: channels = 2; break;  // grey + alpha
    case 6: channels = 4; break;  // RGBA
    default: throw std::runtime_error(path + ": unknown PNG colour type " + std::to_string(colour));
  }
  if (colour == 0 && bits == 16)
    throw std::runtime_error(path + ": 16-bit greyscale PNGs are not supported; save it as 8-bit");
  if (colour == 3 && plte.empty()) throw std::runtime_error(path + ": palette PNG without a PLTE chunk");

  const size_t stride = (static_cast<size_t>(width) * channels * bits + 7) / 8;
  uLongf raw_size = static_cast<uLongf>((stride + 1) * height);
  std::vector<uint8_t> raw(raw_size);
  if (uncompress(raw.data(), &raw_size, idat.data(), static_cast<uLong>(idat.size())) != Z_OK ||
      raw_size != raw.size())
    throw std::runtime_error(path + ": the PNG image data does not decompress to its declared size");
  const size_t bpp = std::max<size_t>(1, static_cast<size_t>(channels * bits / 8));
  const std::vector<uint8_t> pixels = unfilter(raw, stride, height, bpp, path);

  RgbImage image;
  image.width = width;
  image.height = height;
  image.pixels.resize(static_cast<size_t>(width) * height * 3);
  const int grey_scale = bits < 8 ? 255 / ((1 << bits) - 1) : 1;
  for (int y = 0; y < height; ++y) {
    const uint8_t* row = &pixels[y * stride];
    for (int x = 0; x < width; ++x) {
      uint8_t* out = &image.pixels[(static_cast<size_t>(y) * width + x) * 3];
      const size_t i = static_cast<size_t>(x) * channels;
      if (colour == 3) {
        const size_t index = static_cast<size_t>(sample(row, i, bits));
        if (3 * index + 2 >= plte.size())
          throw std::runtime_error(path + ": palette index beyond the PLTE chunk");
        for (int k = 0; k < 3; ++k) out[k] = plte[3 * index + k];
      } else if (channels <= 2) {
        const uint8_t v = static_cast<uint8_t>(sample(row, i, bits) * grey_scale);
        out[0] = out[1] = out[2] = v;
      } else {
        for (int k = 0; k < 3; ++k) out[k] = static_cast<uint8_t>(sample(row, i + k, bits));
      }
    }
  }
  return image;
}

void write_palette_png(const std::string& path, const std::vector<uint8_t>& indices, int width, int height,
                       const std::vector<std::array<uint8_t, 3>>& palette) {
  if (palette.empty() || palette.size() > 256)
    throw std::runtime_error("a palette PNG holds 1 to 256 colours, not " + std::to_string(palette.size()));
  std::vector<uint8_t> ihdr;
  append_be32(ihdr, static_cast<uint32_t>(width));
  append_be32(ihdr, static_cast<uint32_t>(height));
  ihdr.insert(ihdr.end(), {8, 3, 0, 0, 0});  // 8-bit, palette, deflate, adaptive filters, no interlace
  std::vector<uint8_t> plte;
  for (const auto& c : palette) plte.insert(plte.end(), c.begin(), c.end());

  std::vector<uint8_t> raw;  // every row: filter type 0 (none), then the indices
  raw.reserve(static_cast<size_t>(width + 1) * height);
  for (int y = 0; y < height; ++y) {
    raw.push_back(0);
    raw.insert(raw.end(), indices.begin() + static_cast<long>(y) * width,
               indices.begin() + static_cast<long>(y + 1) * width);
  }
  uLongf packed_size = compressBound(static_cast<uLong>(raw.size()));
  std::vector<uint8_t> packed(packed_size);
  if (compress2(packed.data(), &packed_size, raw.data(), static_cast<uLong>(raw.size()), 6) != Z_OK)
    throw std::runtime_error("zlib failed to compress the mask");
  packed.resize(packed_size);

  std::ofstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error(path + " cannot be written");
  f.write(reinterpret_cast<const char*>(kSignature), 8);
  write_chunk(f, "IHDR", ihdr);
  write_chunk(f, "PLTE", plte);
  write_chunk(f, "IDAT", packed);
  write_chunk(f, "IEND", {});
  if (!f) throw std::runtime_error(path + ": write failed (disk full?)");
}

}  // namespace drivseg
