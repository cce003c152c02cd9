// Segment a PNG image with a TorchScript model written by export.py, in C++ with libtorch.
//
//   drivseg_segment model.pt street.png street_mask.png [--threads N]
//
// The model file carries its classes, palette, normalisation and input scale (the extra file
// drivseg.json); the steps are those of predict.py without test-time augmentation:
// RGB / 255 -> resize by image_scale (bilinear) -> (x - mean) / std -> logits -> softmax ->
// resize back to the image size (bilinear) -> argmax -> palette PNG (pixel value = class id).

#include <ATen/Parallel.h>
#include <torch/script.h>

#include <array>
#include <chrono>
#include <cstdlib>
#include <cmath>
#include <cstdint>
#include <iostream>
#include <stdexcept>
#include <string>
#include <vector>

#include "json_value.h"
#include "png_io.h"

namespace {

using drivseg::JsonValue;

const char* kMetadataFile = "drivseg.json";  // drivseg.export.TORCHSCRIPT_METADATA

struct ModelInfo {
  std::vector<std::string> class_names;
  std::vector<std::array<uint8_t, 3>> palette;
  std::vector<float> mean, std;
  double image_scale = 1.0;
};

const JsonValue& member(const JsonValue& meta, const std::string& key, const std::string& path) {
  const JsonValue* v = meta.find(key);
  if (v == nullptr)
    throw std::runtime_error(path + ": the metadata " + kMetadataFile + " has no '" + key +
                             "'; export the model with export.py --format torchscript");
  return *v;
}

std::vector<float> three_floats(const JsonValue& v, const std::string& key, const std::string& path) {
  if (v.type != JsonValue::Type::Array || v.array.size() != 3)
    throw std::runtime_error(path + ": metadata '" + key + "' should be 3 numbers (R, G, B)");
  std::vector<float> out;
  for (const auto& x : v.array) out.push_back(static_cast<float>(x.number));  // float32, as in Python
  return out;
}

ModelInfo read_model_info(const std::string& json_text, const std::string& path) {
  if (json_text.empty())
    throw std::runtime_error(path + " holds no " + std::string(kMetadataFile) +
                             "; it was not written by export.py --format torchscript");
  const JsonValue meta = drivseg::parse_json(json_text);
  ModelInfo info;
  for (const auto& name : member(meta, "class_names", path).array) info.class_names.push_back(name.string);
  for (const auto& colour : member(meta, "palette", path).array) {
    if (colour.array.size() != 3)
      throw std::runtime_error(path + ": every palette entry should be [R, G, B]");
    std::array<uint8_t, 3> rgb{};
    for (int k = 0; k < 3; ++k) rgb[k] = static_cast<uint8_t>(colour.array[k].number);
    info.palette.push_back(rgb);
  }
  if (info.class_names.empty() || info.palette.size() != info.class_names.size())
    throw std::runtime_error(path + ": metadata has " + std::to_string(info.class_names.size()) +
                             " classes and " + std::to_string(info.palette.size()) +
                             " palette colours; expected one colour per class");
  info.mean = three_floats(member(meta, "mean", path), "mean", path);
  info.std = three_floats(member(meta, "std", path), "std", path);
  const JsonValue* scale = meta.find("image_scale");
  if (scale != nullptr && scale->type == JsonValue::Type::Number) info.image_scale = scale->number;
  return info;
}

// The kernel F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False) runs.
torch::Tensor bilinear(const torch::Tensor& x, int64_t height, int64_t width) {
  return at::upsample_bilinear2d(x, {height, width}, /*align_corners=*/false);
}

// (H, W) class ids of `image`, computed as drivseg.inference.ModelMember does.
std::vector<uint8_t> segment(torch::jit::Module& model, const ModelInfo& info, drivseg::RgbImage& image) {
  const int64_t h = image.height, w = image.width;
  torch::Tensor x = torch::from_blob(image.pixels.data(), {1, h, w, 3}, torch::kUInt8)
                        .permute({0, 3, 1, 2})
                        .to(torch::kFloat32)
                        .div(255);
  if (info.image_scale != 1.0) {
    // std::nearbyint rounds half to even, like Python's round() in drivseg.inference.rescale
    x = bilinear(x, std::max<int64_t>(1, static_cast<int64_t>(std::nearbyint(h * info.image_scale))),
                 std::max<int64_t>(1, static_cast<int64_t>(std::nearbyint(w * info.image_scale))));
  }
  const torch::Tensor mean = torch::tensor(info.mean).view({1, 3, 1, 1});
  const torch::Tensor std = torch::tensor(info.std).view({1, 3, 1, 1});
  torch::Tensor logits = model.forward({(x - mean) / std}).toTensor();  // (1, C, h', w')
  if (logits.size(1) != static_cast<int64_t>(info.class_names.size()))
    throw std::runtime_error("the model returned " + std::to_string(logits.size(1)) + " channels for " +
                             std::to_string(info.class_names.size()) + " classes");
  torch::Tensor probs = logits.to(torch::kFloat32).softmax(1);
  if (probs.size(2) != h || probs.size(3) != w) probs = bilinear(probs, h, w);
  const torch::Tensor ids = probs.argmax(1)[0].to(torch::kUInt8).contiguous();
  return std::vector<uint8_t>(ids.data_ptr<uint8_t>(), ids.data_ptr<uint8_t>() + h * w);
}

int usage(const char* program) {
  std::cerr << "usage: " << program << " MODEL.pt INPUT.png OUTPUT.png [--threads N]\n"
            << "  MODEL.pt: python export.py --ckpt CKPT --format torchscript --output MODEL.pt\n"
            << "  OUTPUT.png: palette PNG, pixel value = class id, colours = the dataset palette\n";
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  int threads = 0;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--threads" && i + 1 < args.size()) {
      threads = std::atoi(args[i + 1].c_str());
      if (threads < 1) return usage(argv[0]);
      args.erase(args.begin() + static_cast<long>(i), args.begin() + static_cast<long>(i) + 2);
      break;
    }
  }
  if (args.size() != 3) return usage(argv[0]);
  const std::string &model_path = args[0], &input_path = args[1], &output_path = args[2];
  try {
    if (threads > 0) at::set_num_threads(threads);
    torch::jit::ExtraFilesMap extra{{kMetadataFile, ""}};
    torch::jit::Module model = torch::jit::load(model_path, torch::kCPU, extra);
    model.eval();
    const ModelInfo info = read_model_info(extra[kMetadataFile], model_path);
    drivseg::RgbImage image = drivseg::read_png_rgb(input_path);

    const auto start = std::chrono::steady_clock::now();
    std::vector<uint8_t> mask;
    {
      torch::InferenceMode no_autograd;
      mask = segment(model, info, image);
    }
    const std::chrono::duration<double, std::milli> ms = std::chrono::steady_clock::now() - start;
    drivseg::write_palette_png(output_path, mask, image.width, image.height, info.palette);
    std::cout << "Wrote " << output_path << " (" << image.width << "x" << image.height << ", "
              << info.class_names.size() << " classes, " << ms.count() << " ms)\n";
  } catch (const c10::Error& err) {
    std::cerr << "error: " << err.what_without_backtrace() << "\n";
    return 1;
  } catch (const std::exception& err) {
    std::cerr << "error: " << err.what() << "\n";
    return 1;
  }
  return 0;
}
